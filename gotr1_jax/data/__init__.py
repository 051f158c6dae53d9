"""Data: the chain format, ShapesWorld and tfds data sources."""
