"""Adapters to DynamoDB (PynamoDB). Importing this binds the models to the tables in the settings."""
