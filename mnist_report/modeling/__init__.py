"""What decides a run's numbers: the networks, the training loop, and resuming a killed run."""
