"""batchyard: a self-hosted server for the Anthropic Message Batches API."""

__version__ = "0.1.0"
