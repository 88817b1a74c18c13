"""example: a FastAPI service."""
