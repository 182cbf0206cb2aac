"""The embedded engine: a small instruct model on the CPU through llama.cpp."""
