"""The local stack: DynamoDB Local, tables and routes from template.yaml, local JWTs, an HTTP API emulator."""
