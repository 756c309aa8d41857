"""Use cases: glue between the HTTP handlers, the pure engine and the store."""
