"""Engines turn one Messages request into one Message; the router picks one by model name."""
