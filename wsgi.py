"""gunicorn entry point (`gunicorn -c gunicorn.conf.py wsgi:app`): the one place that
builds the application at import time, once in each worker. gunicorn.conf.py sets up
logging and starts the app's services in each worker (post_worker_init)."""

from bridge import create_app

app = create_app()
