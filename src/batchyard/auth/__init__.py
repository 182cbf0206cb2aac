"""Who is calling: API keys, workspaces, rate limits."""
