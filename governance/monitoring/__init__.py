"""Trust and monitoring: trust metrics per channel, objectives and burn-rate alerts, strategy
health, feature drift, and alerts that open escalations."""
