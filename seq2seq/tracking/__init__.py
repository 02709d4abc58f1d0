"""What a run shows on dashboards: the W&B logger, the dashboard callback, attention maps."""
