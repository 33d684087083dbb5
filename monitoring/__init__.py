"""Endpoint health: presence, call quality, pre-flight checks, metrics and reports."""
