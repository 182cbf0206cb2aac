"""The deterministic fake engine, for tests and load."""
