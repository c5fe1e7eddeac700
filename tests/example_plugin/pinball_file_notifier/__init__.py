"""A Pinball notifier that records events as JSON lines in a file."""
