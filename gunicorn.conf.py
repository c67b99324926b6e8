"""gunicorn settings for `make run` (`gunicorn -c gunicorn.conf.py wsgi:app`): the ones
the package ships in bridge/gunicorn_conf.py, which the `webhook-bridge` command of an
installed package uses too."""

from bridge.gunicorn_conf import *  # noqa: F403
