"""gunicorn entry point (`gunicorn -c gunicorn.conf.py wsgi:app`): the one place that
builds the application at import time, once in each worker."""

from bridge import create_app

app = create_app()
