"""example: a Django service."""
