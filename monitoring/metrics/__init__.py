"""Prometheus metrics of one process: the families, what feeds them, and `GET /metrics`."""
