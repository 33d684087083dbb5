"""vcbridge: the shared core (settings, database, roster, auth, audit) and the
composition root that wires the `scheduler`, `bridge` and `monitoring` packages
into one aiohttp application."""

__version__ = "0.1.0"
