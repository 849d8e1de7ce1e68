"""Strategy experiments: A/B tests of strategy versions, their assignment and their analysis."""
