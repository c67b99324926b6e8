"""Dispatcher: every delivery goes through `Dispatcher.deliver`, wherever it came from.

A webhook request, a replay of a stored run or a CLI command builds a `Delivery`; the
dispatcher finds the plugin, checks the method and the signature, parses the data,
settles idempotency, and hands the run to the runner (now, or in the background).
It raises the bridge's errors for deliveries that cannot run; what a run ended as is
the `Result`, which each caller turns into its own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from bridge import clock
from bridge.counters import Counters
from bridge.errors import (
    ExecutionCanceled,
    MethodNotAllowed,
    NoCapacity,
    SignatureInvalid,
)
from bridge.idempotency import Deliveries
from bridge.model import Delivery, ErrorType, Outcome, Replay, Run
from bridge.registry import PluginRegistry
from bridge.runner import Runner
from bridge.signatures import signed_identity, verify
from bridge.tracking.ids import uuid7
from bridge.tracking.tracker import Tracker


@dataclass(frozen=True)
class Result:
    """What became of a delivery: it ran (`outcome`), was accepted to run in the
    background (`outcome` None), or repeated one already seen (`replayed`)."""

    run: Run | None
    outcome: Outcome | None = None
    replayed: Replay | None = None
    async_mode: bool = False


class Dispatcher:
    def __init__(
        self,
        registry: PluginRegistry,
        runner: Runner,
        tracker: Tracker,
        deliveries: Deliveries,
        counters: Counters,
    ) -> None:
        self.registry = registry
        self.runner = runner
        self.tracker = tracker
        self.deliveries = deliveries
        self.counters = counters

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.dispatcher"] = self

    def deliver(self, delivery: Delivery) -> Result:
        """Run the delivery's plugin, or answer it from the run it repeats."""
        plugin = self.registry.get(delivery.plugin)
        if delivery.method not in plugin.supported_methods:
            raise MethodNotAllowed(plugin.name, delivery.method, plugin.supported_methods)
        run = Run(
            plugin=plugin,
            method=delivery.method,
            data={},
            execution_id=str(uuid7()),
            trace_id=delivery.trace_id or uuid7().hex,
            start_time=clock.utcnow(),
            user_agent=delivery.user_agent,
            remote_ip=delivery.remote_ip,
            tags=delivery.tags,
            metadata=dict(delivery.metadata),
            headers=delivery.headers,
            replay_of=delivery.replay_of,
        )
        spec = plugin.settings.signature if plugin.settings else None
        if spec is not None and not delivery.trusted:
            try:  # on the raw bytes, before anything parses them
                verify(spec, delivery.headers, delivery.body)
            except SignatureInvalid as exc:
                self.counters.inc("webhook.signature_rejected")
                run.metadata["rejected"] = "signature"
                self.tracker.reject(run, exc, ErrorType.UNAUTHORIZED.value)
                raise
        body, input_json = delivery.parse()
        if spec is not None or not delivery.query:
            run.data = body  # what a signature covers, and nothing else
        else:
            run.data, input_json = {**delivery.query, **body}, None
        run.query = delivery.query
        if self.tracker.store is not None:  # else nobody reads it: let it go with parsing
            run.input_json = input_json
        if not delivery.trusted:
            signed_id = None if spec is None else signed_identity(spec, delivery.headers, body)
            run.idempotency_key = self.deliveries.key_from(delivery.headers, signed_id)
        longest = self.runner.longest_run(plugin)
        replayed = self.deliveries.claim(run, longest, delivery.async_mode)
        if replayed is not None:
            self.counters.inc("webhook.replayed")
            return Result(None, replayed=replayed, async_mode=delivery.async_mode)
        try:
            if delivery.async_mode:
                self.runner.run_async(run)
                return Result(run, async_mode=True)
            return Result(run, self.runner.run(run))
        except (NoCapacity, ExecutionCanceled):
            self.deliveries.release(run)  # nothing ran: a retry of this delivery must run
            raise
