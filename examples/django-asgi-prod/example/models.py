"""An example model, end to end with items.py (its JSON API) and migrations/0001_items.py. Delete
the three (and its admin.py entry) to start from an empty project."""

from django.db import models
from django.utils import timezone


class Item(models.Model):
    name = models.CharField(max_length=100)
    note = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)  # aware, UTC (USE_TZ)

    class Meta:
        db_table = "items"
        ordering = ["-id"]  # newest first

    def __str__(self) -> str:
        return self.name

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
        }
