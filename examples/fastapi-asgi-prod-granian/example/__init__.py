"""example: a FastAPI service."""

from dotenv import load_dotenv

# Settings from a .env file in the working directory, if there is one, for every way in: the
# servers, manage.py or the migrations, the tests. A variable already in the environment wins
# over the file.
load_dotenv(".env")
