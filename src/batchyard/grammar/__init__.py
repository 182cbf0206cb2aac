"""Answers in the shape asked for: JSON schemas (and regex patterns) as GBNF grammars
that llama.cpp's sampler enforces token by token."""
