"""The report machinery: where outputs go, executing notebooks, staleness, the README, reproduce, the site."""
