"""Alembic's entry point: migrates the database DATABASE_URL names, read as the app reads it
(example/db.py), to the tables of the models (example.db.Base)."""

from logging.config import fileConfig
from typing import Any

from alembic import context

from example import db, items

# The models, imported so that their tables are in db.Base.metadata: add yours.
MODELS = (items.Item,)

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)  # alembic.ini's [loggers]
url = db.database_url()
# SQLite alters a table by copying it: batch mode writes migrations that way
options: dict[str, Any] = {
    "target_metadata": db.Base.metadata,
    "render_as_batch": url.get_backend_name() == "sqlite",
}

if context.is_offline_mode():  # `alembic upgrade head --sql`: the SQL, printed
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = db.make_engine(url, size=1)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
