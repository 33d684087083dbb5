"""The browser pages: one site for every user group, a client of the public API."""
