"""newstack: generate a runnable Python web service wired to the right server."""

__version__ = "0.1.0"

# Where the template is published; recorded in generated projects for `copier update`.
# tests/test_sync.py checks that pyproject.toml's [project.urls] Repository agrees.
REPOSITORY = "https://github.com/newstack-dev/newstack.git"
