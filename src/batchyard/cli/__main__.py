"""`python -m batchyard.cli`."""

from batchyard.cli.main import main

main()
