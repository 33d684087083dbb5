"""HTTP handlers of the shared core: login, users, roster, tokens, audit, health, OpenAPI."""
