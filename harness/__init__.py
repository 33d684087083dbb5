"""A real vcbridge service process and a headless Chromium, for the tests and the benchmarks.

Neither product nor test: `tests/` and `bench/` both import it, and bench never imports tests."""
