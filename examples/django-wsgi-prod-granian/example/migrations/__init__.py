"""The schema in steps: after a model changes, `python manage.py makemigrations` writes the
next one."""
