"""The `batchyard` command line: serve, worker, keys, the client commands, doctor."""
