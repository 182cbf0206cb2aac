"""Translations between the Anthropic Messages format and other wire formats."""
