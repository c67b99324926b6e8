"""Runner: a bounded thread pool that runs plugins with a timeout and retries.

A timed-out plugin thread cannot be killed. Its slot stays taken until the plugin
returns (it is counted as abandoned meanwhile), and when every slot is taken new
requests get RunnerSaturated (503) at once instead of queueing without bound.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import queue
import random
import threading
import time
import traceback
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask

from bridge import clock, logs
from bridge.config import Config, longest_run, retry_delay
from bridge.counters import Counters
from bridge.errors import (
    ExecutionCanceled,
    NoCapacity,
    PluginBusy,
    PluginReportedError,
    PluginTimeout,
    RunnerSaturated,
)
from bridge.model import AttemptRecord, ErrorType, Outcome, Run, Status
from bridge.registry import LoadedPlugin
from bridge.tracking.classify import classify, described

log = logging.getLogger(__name__)


@dataclass
class _Call:
    plugin: str = ""
    finished: bool = False
    abandoned: bool = False
    traceback: str = ""


class Job:
    """A call handed to a pool thread, and its result for the one thread that waits.

    A pre-acquired lock is the whole hand-off: the pool thread releases it when the
    call returns; the waiter acquires it with a timeout. (concurrent.futures' Future
    builds a Condition per call and another lock per wait, which the hot path paid
    for on every request.)"""

    __slots__ = ("_args", "_done", "_error", "_fn", "_value")

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self._fn, self._args = fn, args
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def run(self) -> None:
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:
            self._error = exc
        finally:
            # An idle pool thread would otherwise hold its last job's arguments (a
            # run's parsed body, ~10 MB for 1 MB of JSON) until its next job.
            self._fn = self._args = None
            self._done.release()

    def cancel(self) -> None:
        """Never run (the pool shut down first): the waiter gets CancelledError."""
        self._fn = self._args = None
        self._error = CancelledError()
        self._done.release()

    def result(self, timeout: float | None = None) -> Any:
        """The call's return value, or its exception; TimeoutError after `timeout`."""
        if not self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise TimeoutError
        self._done.release()  # a second look answers at once
        if self._error is not None:
            raise self._error
        return self._value


class DaemonPool:
    """A fixed set of daemon threads: a hung plugin thread never blocks process exit.

    The runner's slots bound what is submitted, so work never waits here for long.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    def submit(self, fn: Any, *args: Any) -> Job:
        job = Job(fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            if not self._started:
                for i in range(self._size):
                    threading.Thread(
                        target=self._work, name=f"{self._name}-{i}", daemon=True
                    ).start()
                self._started = True
            self._queue.put(job)
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.run()
            del job

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            started = self._started
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
        if started:
            for _ in range(self._size):
                self._queue.put(None)


_ENTITY_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def plain_headers(headers: Any) -> dict[str, str]:
    """The request's headers as a plain dict for the plugin, read straight from the
    WSGI environ when there is one (what werkzeug's EnvironHeaders yields, at half the
    cost per request)."""
    environ = getattr(headers, "environ", None)
    if not isinstance(environ, dict):
        return dict(headers.items())
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key[5:] not in _ENTITY_HEADERS:
                out[key[5:].replace("_", "-").title()] = value
        elif key in _ENTITY_HEADERS and value:
            out[key.replace("_", "-").title()] = value
    return out


_LOGGERS: dict[str, logging.Logger] = {}


def _plugin_logger(name: str) -> logging.Logger:
    """`plugins.<name>`, kept: getLogger takes logging's module lock on every call."""
    logger = _LOGGERS.get(name)
    if logger is None:
        logger = _LOGGERS[name] = logging.getLogger(f"plugins.{name}")
    return logger


def normalize_result(value: Any) -> tuple[dict[str, Any], str]:
    """The plugin's result as a JSON-safe dict and its JSON text. NaN and infinities,
    which JSON has no spelling for, become null."""
    if not isinstance(value, dict):
        value = {"result": value}
    try:
        text = json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), default=str, ensure_ascii=False, allow_nan=False)
    return json.loads(text), text


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (the rare path)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class RunLifecycle(Protocol):
    """What the runner tells about each run it starts (the tracker implements it)."""

    def start(self, run: Run, status: Status) -> None: ...

    def mark_running(self, run: Run) -> None: ...

    def finish(self, run: Run, outcome: Outcome) -> None: ...

    def close_own_runs(self) -> int: ...


class Runner:
    """Runs plugins; the tracker hears about every run it starts."""

    def __init__(self, config: Config, tracker: RunLifecycle, counters: Counters) -> None:
        self.max_workers = config.runner.max_workers
        self.max_pending = config.runner.max_pending
        self.retry_after = config.runner.retry_after
        self.default_timeout = float(config.plugins.timeout)
        self.default_attempts = config.runner.max_attempts
        self.default_backoff = float(config.runner.backoff)
        self.max_backoff = float(config.runner.max_backoff)
        self.default_retry_on = tuple(config.runner.retry_on)
        self.default_plugin_limit = config.runner.default_plugin_limit
        self.tracker = tracker
        self.counters = counters
        self._slots = threading.Semaphore(self.max_workers)
        self._pool = DaemonPool(self.max_workers, "plugin")
        self._async_pool = DaemonPool(self.max_pending, "async")
        self._lock = threading.Lock()
        self._share_freed = threading.Condition(self._lock)
        self._plugin_busy: dict[str, int] = {}
        self._busy = 0
        self._abandoned = 0
        self._pending = 0
        self._active: set[threading.Event] = set()
        self._stop = threading.Event()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.runner"] = self

    # -- slots -------------------------------------------------------------
    def plugin_limit(self, plugin: LoadedPlugin) -> int:
        s = plugin.settings
        return s.max_concurrency if s and s.max_concurrency else self.default_plugin_limit

    def _acquire(self, plugin: LoadedPlugin, wait: float | None) -> None:
        """Take the plugin's share, then a runner slot; both are held until the plugin
        thread returns (even after a timeout), so a hung plugin uses up only its share."""
        name, limit = plugin.name, self.plugin_limit(plugin)
        deadline = None if wait is None else time.monotonic() + wait
        with self._lock:
            while self._plugin_busy.get(name, 0) >= limit:
                remaining = 0.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    self.counters.inc("runner.plugin_busy")
                    raise PluginBusy(name, limit, self.retry_after)
                self._share_freed.wait(remaining)
            self._plugin_busy[name] = self._plugin_busy.get(name, 0) + 1
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        acquired = (
            self._slots.acquire(blocking=False)
            if remaining is None
            else self._slots.acquire(timeout=remaining)
        )
        with self._lock:
            if not acquired:
                self.counters.inc("runner.saturated")
                self._give_back_share(name)
                raise RunnerSaturated(self.retry_after)
            self._busy += 1

    def _give_back_share(self, name: str) -> None:
        """With the lock held."""
        left = self._plugin_busy.get(name, 1) - 1
        if left:
            self._plugin_busy[name] = left
        else:
            self._plugin_busy.pop(name, None)
        self._share_freed.notify_all()

    def _release(self, call: _Call) -> None:
        with self._lock:
            call.finished = True
            self._busy -= 1
            if call.abandoned:
                self._abandoned -= 1
            self._give_back_share(call.plugin)
        self._slots.release()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "max_workers": self.max_workers,
                "busy": self._busy,
                "abandoned": self._abandoned,
                "pending": self._pending,
                "saturated_rejections": self.counters.get("runner.saturated"),
                "plugin_limit_rejections": self.counters.get("runner.plugin_busy"),
                "plugins_running": dict(self._plugin_busy),
                "closing": self._stop.is_set(),
            }

    # -- running -----------------------------------------------------------
    def run(self, run: Run) -> Outcome:
        """Run now in the caller's request, or raise RunnerSaturated without recording."""
        if self._stop.is_set():
            raise ExecutionCanceled(run.plugin.name)
        self._acquire(run.plugin, wait=None)
        try:
            self.tracker.start(run, Status.RUNNING)
        except BaseException:
            self._release(_Call(run.plugin.name))
            raise
        outcome = self._attempts(run, first_slot_held=True)
        self.tracker.finish(run, outcome)
        return outcome

    def run_async(self, run: Run) -> None:
        """Accept the run as `pending` and return; it starts when a slot frees."""
        if self._stop.is_set():
            raise ExecutionCanceled(run.plugin.name)
        with self._lock:
            if self._pending >= self.max_pending:
                self.counters.inc("runner.saturated")
                raise RunnerSaturated(self.retry_after, what="async queue")
            self._pending += 1
        try:
            self.tracker.start(run, Status.PENDING)
            self._async_pool.submit(self._run_pending, run)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise

    def _run_pending(self, run: Run) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._acquire(run.plugin, wait=0.5)
                    break
                except NoCapacity:
                    continue
            if self._stop.is_set():
                detail = "Canceled: the server shut down before the run started"
                self.tracker.finish(
                    run, Outcome.interrupted(Status.CANCELED, detail, clock.utcnow())
                )
                return
            self.tracker.mark_running(run)
            self.tracker.finish(run, self._attempts(run, first_slot_held=True))
        except Exception:
            log.exception(
                "Async run %s of %s failed in the runner", run.execution_id, run.plugin.name
            )
        finally:
            with self._lock:
                self._pending -= 1

    def _settings(self, plugin: LoadedPlugin) -> tuple[float, int, float, tuple[str, ...]]:
        s = plugin.settings
        timeout = s.timeout if s and s.timeout else self.default_timeout
        attempts = s.max_attempts if s and s.max_attempts else self.default_attempts
        backoff = s.backoff if s and s.backoff is not None else self.default_backoff
        retry_on = s.retry_on if s and s.retry_on is not None else self.default_retry_on
        return timeout, attempts, backoff, retry_on

    def longest_run(self, plugin: LoadedPlugin) -> float:
        """Seconds a run of `plugin` can take at most: every attempt and its backoff."""
        timeout, attempts, backoff, _ = self._settings(plugin)
        return longest_run(timeout, attempts, backoff, self.max_backoff)

    def _attempts(self, run: Run, first_slot_held: bool) -> Outcome:
        timeout, max_attempts, backoff, retry_on = self._settings(run.plugin)
        attempts: list[AttemptRecord] = []
        start, t0 = clock.utcnow(), time.perf_counter_ns()
        result: dict[str, Any] | None = None
        output_json, error, call = "", None, _Call(run.plugin.name)
        status = Status.FAILED
        for number in range(1, max_attempts + 1):
            if number > 1 or not first_slot_held:
                try:
                    self._acquire(run.plugin, wait=timeout)
                except NoCapacity as exc:
                    error = exc
                    break
            cancel, call = threading.Event(), _Call(run.plugin.name)
            with self._lock:
                self._active.add(cancel)
            data = run.data if number == 1 else copy.deepcopy(run.data)
            a_start, a_t0 = clock.utcnow(), time.perf_counter_ns()
            error = None
            try:
                job = self._pool.submit(self._call, run, data, cancel, number, call)
            except RuntimeError:  # the pool is shut down
                self._release(call)
                error, status = ExecutionCanceled(run.plugin.name), Status.CANCELED
            else:
                try:
                    result, output_json = job.result(timeout=timeout)
                    status = Status.COMPLETED
                except TimeoutError:
                    cancel.set()
                    with self._lock:
                        if not call.finished:
                            call.abandoned = True
                            self._abandoned += 1
                    error, status = PluginTimeout(run.plugin.name, timeout), Status.TIMEOUT
                    log.warning(
                        "Plugin %s timed out after %gs (execution %s)",
                        run.plugin.name,
                        timeout,
                        run.execution_id,
                    )
                except BaseException as exc:
                    error, status = exc, Status.FAILED
                    if self._stop.is_set():
                        status = Status.CANCELED
            finally:
                with self._lock:
                    self._active.discard(cancel)
            error_type = "" if error is None else classify(error)
            a_end = clock.utcnow()
            attempts.append(
                AttemptRecord(
                    number=number,
                    start_time=a_start,
                    end_time=a_end,
                    status=status,
                    error="" if error is None else described(error),
                    error_type=error_type,
                    duration=time.perf_counter_ns() - a_t0,
                )
            )
            if error is None or status is Status.CANCELED:
                break
            if error_type not in retry_on or number == max_attempts:
                break
            # Jittered, so that runs that failed together do not retry together.
            delay = random.uniform(0.5, 1.0) * retry_delay(backoff, self.max_backoff, number)
            log.info(
                "Retrying plugin %s (attempt %d of %d failed with %s) in %gs",
                run.plugin.name,
                number,
                max_attempts,
                error_type,
                delay,
            )
            if self._stop.wait(delay):
                status = Status.CANCELED
                break
        if isinstance(error, NoCapacity):
            status = Status.FAILED
        detail = ""
        if error is not None:
            detail = described(error)
            if call.traceback:
                detail = call.traceback
        if isinstance(error, PluginReportedError):
            result = error.result
        return Outcome(
            status=status,
            start_time=start,
            end_time=clock.utcnow(),
            duration=time.perf_counter_ns() - t0,
            attempts=attempts,
            result=result,
            output_json=output_json,
            error=error,
            error_type=""
            if error is None
            else (ErrorType.INTERRUPTED.value if status is Status.CANCELED else classify(error)),
            error_detail=detail,
        )

    def _call(
        self,
        run: Run,
        data: dict[str, Any],
        cancel: threading.Event,
        attempt: int,
        call: _Call,
    ) -> tuple[dict[str, Any], str]:
        """In a pool thread: build the plugin, run its handler, normalise the result."""
        with logs.bind(
            plugin=run.plugin.name, execution_id=run.execution_id, trace_id=run.trace_id
        ):
            try:
                plugin_class = run.plugin.plugin_class
                assert plugin_class is not None
                instance = plugin_class(data, _plugin_logger(run.plugin.name), run.method)
                instance.cancel_event = cancel
                settings = run.plugin.settings
                instance.options = {**instance.options, **((settings and settings.options) or {})}
                instance.context = {
                    "execution_id": run.execution_id,
                    "trace_id": run.trace_id,
                    "attempt": attempt,
                    "headers": plain_headers(run.headers),
                    "query": run.query,
                    "plugin": run.plugin.name,
                }
                value = instance.execute()
                result, text = normalize_result(value)
                if result.get("status") == "error":
                    raise PluginReportedError(run.plugin.name, result)
                return result, text
            except BaseException:
                call.traceback = traceback.format_exc()
                raise
            finally:
                self._release(call)

    # -- shutdown ----------------------------------------------------------
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking runs, let in-flight plugins finish up to `timeout`, cancel the rest."""
        if self._stop.is_set():
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy - self._abandoned <= 0 and self._pending == 0:
                    break
            time.sleep(0.05)
        with self._lock:
            for event in self._active:
                event.set()
        self._pool.shutdown()
        self._async_pool.shutdown()
        self.tracker.close_own_runs()
