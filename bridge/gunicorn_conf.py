"""gunicorn settings, read from the bridge's own config.yaml: `make run` takes them
through gunicorn.conf.py, the `webhook-bridge` command (bridge.serve) directly.

gthread workers that receive each request whole before a thread takes it
(bridge.server.worker); a worker timeout above the longest plugin timeout; a graceful
shutdown that lets in-flight plugins finish (up to server.graceful_timeout); access
logs on stdout, query strings redacted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import logging.config
import os
import shutil
import signal
import sys
import tempfile
import threading

from bridge import shutdown_app, start_services
from bridge.auth import exposure_warning, local_only_notice
from bridge.config import flush_warnings, load
from bridge.errors import ConfigError
from bridge.logs import dict_config
from bridge.prometheus import MULTIPROC_ENV, mark_dead
from bridge.server.access_log import access_logger

_log = logging.getLogger("bridge.security")

try:
    _config = load(os.environ.get("BRIDGE_CONFIG"))
except ConfigError as exc:  # one line naming the key and the value, no traceback
    sys.exit(f"Invalid configuration: {exc}")
# Prometheus figures of every worker in one folder, a new one for each start (removed at
# exit), set before any worker imports prometheus_client (bridge.prometheus). Not
# beside the database: a database folder that cannot be used must not stop the start.
_metrics_dir = ""
if _config.metrics.enabled and not os.environ.get(MULTIPROC_ENV):
    try:
        _metrics_dir = tempfile.mkdtemp(prefix="webhook-bridge-metrics-")
        os.environ[MULTIPROC_ENV] = _metrics_dir
    except OSError as exc:
        _log.warning("Prometheus metrics will count each worker apart: %s", exc)
# One format for gunicorn's lines, the access log and the app's (logging.format).
logconfig_dict = dict_config(_config.logging.level, _config.logging.format)
logging.config.dictConfig(logconfig_dict)  # the master's own start-up lines too
flush_warnings()
bind = os.environ.get("BRIDGE_BIND", f"{_config.server.host}:{_config.server.port}")
if not bind.startswith(("unix:", "fd://")):
    _warning = exposure_warning(_config, bind.rpartition(":")[0] or bind)
    if _warning:
        _log.warning("%s", _warning)
    elif local_only_notice(_config):
        _log.info("%s", local_only_notice(_config))
# gthread, with each request received whole before a thread takes it (slow clients
# hold no thread; 408 past server.request_timeout) and gunicorn's own errors as JSON.
worker_class = "bridge.server.worker.BufferingWorker"
workers = int(os.environ.get("BRIDGE_WORKERS", _config.server.workers))
threads = int(os.environ.get("BRIDGE_THREADS", _config.server.threads))
timeout = int(_config.longest_run + 30)
graceful_timeout = int(float(_config.server.graceful_timeout))
# gunicorn's control socket (gunicornc) beside this bridge's database, not the one path
# every gunicorn on the host shares; off where that path is too long for a socket.
control_socket = f"{_config.database_path.resolve()}.gunicorn.ctl"
control_socket_disable = len(control_socket.encode()) > 100
keepalive = 5
accesslog = "-"
# Query strings in access lines are redacted as stored input is.
logger_class = access_logger(_config.execution_tracking.redact_fields)
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms trace=%({x-request-id}o)s'
errorlog = "-"
loglevel = _config.logging.level.lower()


def child_exit(server, worker):
    """In the master, as a worker exits: its figures stop counting as live."""
    mark_dead(worker.pid)


def on_exit(server):
    """The master stops: the metrics folder it made goes with it."""
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def worker_exit(server, worker):
    """Runs still open in this worker after the graceful wait become `canceled`."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        shutdown_app(app, timeout=1.0)


_M_ARENA_MAX, _M_MMAP_THRESHOLD = -8, -3  # glibc's mallopt parameters


def post_fork(server, worker):
    """glibc gives each allocating thread a malloc arena of its own and, once a large
    buffer is freed, serves later ones from those arenas instead of fresh mappings: a
    worker's memory then stays near its peak of large request bodies. Two arenas and a
    fixed mmap threshold hand large buffers back to the OS when they are freed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def post_worker_init(worker):
    """Start the app's services in this worker. On SIGTERM, give in-flight runs most of
    the graceful timeout, then mark what is still open `canceled` before the arbiter
    kills the worker."""
    original = worker.handle_exit
    app = worker.wsgi
    start_services(app)

    def handle_exit(sig, frame):
        original(sig, frame)
        wait = max(0.0, float(_config.server.graceful_timeout) - 1.5)
        threading.Thread(target=shutdown_app, args=(app, wait), daemon=True).start()

    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)
