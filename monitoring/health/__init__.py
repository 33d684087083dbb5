"""Endpoint health: heartbeats in, the health model, its rows and history, readiness, the API."""
