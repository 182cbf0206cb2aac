"""Remote engines: OpenAI-compatible servers and Anthropic upstreams, their errors and concurrency."""
