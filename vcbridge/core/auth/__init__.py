"""Authentication (passwords, tokens, login rate limits) and authorisation (roles)."""
