"""Background jobs on APScheduler: cleanup, hourly rollups, closing stale runs, alerts.

Under gunicorn every worker builds the app, but exactly one runs the jobs: the one
holding the store's leader lock (for SQLite, a file lock beside the database). The
others stand by and try the lock again every few seconds, so if the leader's process
dies (its lock is freed) another worker takes over.

Each job's latest run is kept in the database too (state `job:<name>`), so that
`/health` answered by any worker, or any host, says when a job failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from bridge import clock
from bridge.alerts import Alerts
from bridge.config import Config
from bridge.events import JobFinished
from bridge.storage import Storage
from bridge.storage.alerts import AlertStore
from bridge.storage.base import LeaderLock
from bridge.storage.cleanup import cleanup
from bridge.storage.rollup import rollup
from bridge.tracking.tracker import Tracker, worker_id

log = logging.getLogger(__name__)

JOB_STATE = "job:"  # + the job's name: its latest run, whichever process ran it
MAX_ERROR_CHARS = 500


class Scheduler:
    def __init__(
        self, config: Config, storage: Storage, tracker: Tracker, alerts: Alerts | None = None
    ) -> None:
        self.config = config
        self.alerts = alerts
        self.storage = storage
        self.tracker = tracker
        self.enabled = config.scheduler.enabled and config.execution_tracking.enabled
        self.takeover_interval = float(config.scheduler.takeover_interval)
        self._leader: LeaderLock | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._standby: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_runs: dict[str, dict[str, Any]] = {}

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.scheduler"] = self

    @property
    def is_leader(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Lead the jobs if no other process does, else stand by to take over. Without
        a store yet, nothing: this runs again when the store opens."""
        if not self.enabled or self.storage.store is None or self._leader is not None:
            return
        self._leader = self.storage.store.leader_lock("scheduler", self.config.scheduler.lock_path)
        if self._leader.try_acquire():
            self._start_jobs()
        else:
            log.info(
                "Background jobs run in another worker; this one (pid %d) stands by", os.getpid()
            )
        self._standby = threading.Thread(target=self._watch, name="scheduler-watch", daemon=True)
        self._standby.start()

    def _watch(self) -> None:
        """Every takeover_interval: a standby tries to take the lead; the leader checks
        it still holds the lock (its session may have been ended by the database, which
        then lets another host lead) and stops its jobs if it does not. Asking also
        keeps the lock's session from idling out."""
        assert self._leader is not None
        while not self._stop.wait(self.takeover_interval):
            held = self._leader.try_acquire()
            if held and self._scheduler is None:
                log.info("Worker %d takes over the background jobs", os.getpid())
                self._start_jobs()
            elif not held and self._scheduler is not None:
                log.warning(
                    "Worker %d lost the scheduler's lock; another process leads now",
                    os.getpid(),
                )
                self._stop_jobs()

    def _stop_jobs(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            with contextlib.suppress(Exception):
                scheduler.shutdown(wait=False)

    def _jobs(self) -> tuple[tuple[str, Any, Any, bool], ...]:
        """The jobs the leader runs: name, function, interval, and whether it also runs
        a second after start-up."""
        tracking = self.config.execution_tracking
        jobs = (
            ("cleanup", self.run_cleanup, tracking.cleanup_interval, True),
            ("rollup", self.run_rollup, tracking.metrics_aggregation_interval, True),
            ("stale", self.tracker.recover_stale, tracking.stale_check_interval, False),
        )
        if self.alerts is not None and self.alerts.enabled:
            jobs += (("alerts", self.alerts.evaluate, self.alerts.interval, True),)
        return jobs

    def _start_jobs(self) -> None:
        scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        soon = clock.utcnow() + timedelta(seconds=1)
        for name, fn, interval, at_start in self._jobs():
            scheduler.add_job(
                self._job,
                "interval",
                args=[name, fn],
                id=name,
                seconds=float(interval),
                **({"next_run_time": soon} if at_start else {}),
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("✅ Execution cleanup worker started")

    def _job(self, name: str, fn: Any) -> None:
        run: dict[str, Any] = {"at": clock.utcnow().isoformat(), "worker": worker_id()}
        try:
            run.update(ok=True, result=fn())
        except Exception as exc:
            run.update(ok=False, error=str(exc)[:MAX_ERROR_CHARS])
            if self._stop.is_set():  # the process is stopping: its store closed under the job
                log.warning("Background job %s was cut short by shutdown: %s", name, exc)
            else:
                log.exception("Background job %s failed", name)
        self.last_runs[name] = run
        store = self.storage.live_store
        if store is not None:
            try:
                store.write(lambda w: w.set_state(f"{JOB_STATE}{name}", run))
            except Exception as exc:  # /health of this process still has it
                log.debug("The outcome of job %s was not stored: %s", name, exc)
        self.tracker.events.emit(JobFinished(name, run["ok"]))

    def latest_runs(self) -> dict[str, dict[str, Any]]:
        """Each job's latest run, whichever process ran it: the database's, or this
        process's where it is later (or the database cannot be read)."""
        runs: dict[str, dict[str, Any]] = {}
        store = self.storage.live_store
        if self.enabled and store is not None:
            try:
                with store.snapshot() as reader:
                    kept = reader.states(JOB_STATE)
                runs = {key[len(JOB_STATE) :]: run for key, run in kept.items()}
            except Exception as exc:  # the storage check says why
                log.debug("The jobs' latest runs were not read: %s", exc)
        for name, run in self.last_runs.items():
            if name not in runs or str(runs[name].get("at")) < run["at"]:
                runs[name] = run
        return {name: runs[name] for name, *_ in self._jobs() if name in runs}

    def health(self) -> dict[str, Any]:
        """/health's scheduler check: degraded while a job's latest run failed."""
        runs = self.latest_runs()
        failed = [
            f"job {name} failed at {run.get('at')} ({run.get('worker')}): {run.get('error')}"
            for name, run in runs.items()
            if not run.get("ok")
        ]
        return {
            "status": "degraded" if failed else "healthy",
            "message": "; ".join(failed),
            **self.status(),
            "last_runs": runs,
        }

    def status(self) -> dict[str, Any]:
        """This process's part: whether it leads, and its jobs' next runs."""
        jobs = [
            {
                "id": job.id,
                "next_run_time": job.next_run_time.isoformat() if job.next_run_time else None,
            }
            for job in (self._scheduler.get_jobs() if self._scheduler is not None else ())
        ]
        return {"enabled": self.enabled, "leader": self.is_leader, "pid": os.getpid(), "jobs": jobs}

    def run_cleanup(self) -> int:
        store = self.storage.require()
        result = cleanup(store, self.config.retention_days, clock.utcnow())
        log.info(
            "Cleanup deleted %d executions older than %s", result.deleted, result.cutoff.isoformat()
        )
        window = float(self.config.idempotency.window)
        store.purge_deliveries(clock.utcnow() - timedelta(seconds=window))
        AlertStore(store).delete_events(result.cutoff)  # alert history: the runs' retention
        return result.deleted

    def run_rollup(self) -> int:
        return rollup(self.storage.require(), clock.utcnow())

    def shutdown(self) -> None:
        self._stop.set()
        self._stop_jobs()
        if self._leader is not None:
            self._leader.release()
