"""Numbers from predictions: metrics, studies over seeds, tests, the recipe, verdicts and figures."""
