"""The site's side: the unattended endpoint agent (`vcbridge agent`) and the client
pieces it is built from (also used by tests and benchmarks to play a site)."""
