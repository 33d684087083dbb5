"""Database: the ORM models, engine and sessions, and schema migrations."""
