"""HTTP plumbing shared by every API: the error contract, request parsing, auth middleware."""
