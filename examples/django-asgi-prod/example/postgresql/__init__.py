"""Django's PostgreSQL backend, failing fast while the database is away (base.py)."""
