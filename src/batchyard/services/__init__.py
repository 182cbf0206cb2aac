"""The use cases that the API, the dashboard and the CLI call: each concept in the module
named after it (`message_batches`, `openai_batches`, `files`, `webhooks`, `usage`,
`dashboard`, `health`), each reaching the store only through its port. Built once, in
`batchyard.composition.build_services`."""
