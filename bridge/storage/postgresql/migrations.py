"""The PostgreSQL schema as numbered migrations, recorded in `schema_version`.

All of them are applied at start-up in one transaction that first takes a
transaction-level advisory lock on the schema: bridges starting at once on one
database wait for each other, and the second finds the first's versions recorded, so
each migration runs exactly once. A released migration is never edited: a change is
a new one at the end.

Times are `timestamptz` (see connection.py); durations bigint nanoseconds; tags,
metadata, rollup histograms and error types are `jsonb`.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

log = logging.getLogger("bridge.storage.postgresql")

LOCK_PREFIX = "webhook-bridge"  # advisory lock keys: hash of prefix, purpose, schema

_ROLLUP_COLUMNS = """
    total        bigint NOT NULL,
    completed    bigint NOT NULL,
    failed       bigint NOT NULL,
    timeout      bigint NOT NULL,
    canceled     bigint NOT NULL,
    duration_sum bigint NOT NULL,
    duration_min bigint NOT NULL,
    duration_max bigint NOT NULL,
    histogram    jsonb NOT NULL,
    error_types  jsonb NOT NULL
"""

MIGRATIONS: list[tuple[str, str]] = [
    # Ordered indexes end in seq, the insertion order: the list's keyset
    # (start_time, seq) is then read from one index, for every filter.
    (
        "create_executions",
        """
        CREATE TABLE executions (
            seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id              text NOT NULL UNIQUE,
            plugin_name     text NOT NULL,
            http_method     text NOT NULL,
            start_time      timestamptz NOT NULL,
            end_time        timestamptz,
            status          text NOT NULL,
            input           text NOT NULL DEFAULT '',
            output          text NOT NULL DEFAULT '',
            error           text NOT NULL DEFAULT '',
            error_type      text NOT NULL DEFAULT '',
            duration        bigint NOT NULL DEFAULT 0,
            attempts        integer NOT NULL DEFAULT 0,
            retry_count     integer NOT NULL DEFAULT 0,
            trace_id        text NOT NULL DEFAULT '',
            user_agent      text NOT NULL DEFAULT '',
            remote_ip       text NOT NULL DEFAULT '',
            tags            jsonb DEFAULT '{}',
            metadata        jsonb DEFAULT '{}',
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL,
            worker          text NOT NULL DEFAULT '',
            idempotency_key text NOT NULL DEFAULT '',
            replays         integer NOT NULL DEFAULT 0
        );
        CREATE INDEX ix_executions_start ON executions (start_time, seq);
        CREATE INDEX ix_executions_plugin_start ON executions (plugin_name, start_time, seq);
        CREATE INDEX ix_executions_status_start ON executions (status, start_time, seq);
        CREATE INDEX ix_executions_plugin_status_start
            ON executions (plugin_name, status, start_time, seq);
        CREATE INDEX ix_executions_error_type_start ON executions (error_type, start_time, seq);
        CREATE INDEX ix_executions_trace ON executions (trace_id);
        """,
    ),
    (
        "create_execution_attempts",
        """
        CREATE TABLE execution_attempts (
            execution_id text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
            number       integer NOT NULL,
            start_time   timestamptz NOT NULL,
            end_time     timestamptz NOT NULL,
            status       text NOT NULL,
            error        text NOT NULL DEFAULT '',
            error_type   text NOT NULL DEFAULT '',
            duration     bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (execution_id, number)
        );
        """,
    ),
    # Each tag of each run, for the tag filter: the index on (key, value, start_time)
    # reads only the runs that carry the tag.
    (
        "create_execution_tags",
        """
        CREATE TABLE execution_tags (
            key          text NOT NULL,
            value        text NOT NULL,
            start_time   timestamptz NOT NULL,
            execution_id text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
            PRIMARY KEY (key, value, start_time, execution_id)
        );
        CREATE INDEX ix_execution_tags_execution ON execution_tags (execution_id);
        """,
    ),
    (
        "create_execution_metrics",
        f"""
        CREATE TABLE execution_metrics (
            plugin_name  text NOT NULL,
            hour_start   timestamptz NOT NULL,
            {_ROLLUP_COLUMNS},
            PRIMARY KEY (plugin_name, hour_start)
        );
        CREATE INDEX ix_execution_metrics_counts ON execution_metrics (hour_start, plugin_name)
            INCLUDE (total, completed, failed, timeout, canceled);
        CREATE TABLE execution_metrics_daily (
            plugin_name  text NOT NULL,
            day_start    timestamptz NOT NULL,
            {_ROLLUP_COLUMNS},
            PRIMARY KEY (plugin_name, day_start)
        );
        CREATE INDEX ix_execution_metrics_daily_day ON execution_metrics_daily (day_start);
        """,
    ),
    (
        "create_bridge_state",
        "CREATE TABLE bridge_state (key text PRIMARY KEY, value jsonb NOT NULL);",
    ),
    (
        "create_deliveries",
        """
        CREATE TABLE deliveries (
            plugin_name  text NOT NULL,
            key          text NOT NULL,
            execution_id text NOT NULL,
            created_at   timestamptz NOT NULL,
            state        text NOT NULL DEFAULT 'running',
            answer       text NOT NULL DEFAULT '',
            PRIMARY KEY (plugin_name, key)
        );
        CREATE INDEX ix_deliveries_created ON deliveries (created_at);
        """,
    ),
    (
        "create_alerts",
        """
        CREATE TABLE alert_state (
            rule        text NOT NULL,
            plugin      text NOT NULL,
            state       text NOT NULL,
            value       double precision,
            since       timestamptz,
            fired_at    timestamptz,
            notified_at timestamptz,
            clear_since timestamptz,
            resolved_at timestamptz,
            updated_at  timestamptz,
            version     integer NOT NULL,
            PRIMARY KEY (rule, plugin)
        );
        CREATE TABLE alert_events (
            id        bigserial PRIMARY KEY,
            at        timestamptz NOT NULL,
            rule      text NOT NULL,
            plugin    text NOT NULL,
            kind      text NOT NULL,
            severity  text NOT NULL DEFAULT '',
            value     double precision,
            threshold double precision,
            channel   text NOT NULL DEFAULT '',
            detail    jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ix_alert_events_at ON alert_events (at);
        """,
    ),
    # Issue 16: a failure's fingerprint and the run a replay repeats, stored with the
    # run; runs retried and the time spent retrying (ns), kept with the run and summed
    # in the rollups; each error group's failures per hour,
    # rolled up like the stats so that a group outlives its raw rows.
    (
        "add_error_groups_and_replays",
        """
        ALTER TABLE executions ADD COLUMN error_group text NOT NULL DEFAULT '';
        ALTER TABLE executions ADD COLUMN replay_of text NOT NULL DEFAULT '';
        CREATE INDEX ix_executions_error_group_start ON executions (error_group, start_time, seq)
            WHERE error_group <> '';
        CREATE INDEX ix_executions_replay_of ON executions (replay_of) WHERE replay_of <> '';
        ALTER TABLE executions ADD COLUMN retry_time bigint NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics ADD COLUMN retried bigint NOT NULL DEFAULT 0,
            ADD COLUMN retry_time bigint NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics_daily ADD COLUMN retried bigint NOT NULL DEFAULT 0,
            ADD COLUMN retry_time bigint NOT NULL DEFAULT 0;
        CREATE TABLE error_group_hours (
            fingerprint  text NOT NULL,
            hour_start   timestamptz NOT NULL,
            plugin_name  text NOT NULL,
            error_type   text NOT NULL,
            message      text NOT NULL,
            count        bigint NOT NULL,
            first_seen   timestamptz NOT NULL,
            last_seen    timestamptz NOT NULL,
            example_id   text NOT NULL,
            PRIMARY KEY (fingerprint, hour_start)
        );
        CREATE INDEX ix_error_group_hours_hour ON error_group_hours (hour_start);
        """,
    ),
]


def lock_key(purpose: str, schema: str) -> str:
    """The text whose hash is an advisory lock's key: advisory locks are per database,
    so the schema is part of it (two bridges in two schemas do not share locks)."""
    return f"{LOCK_PREFIX}:{purpose}:{schema}"


def migrate(conn: psycopg.Connection[Any], schema: str) -> int:
    """Apply the migrations not yet recorded, under the schema's migration lock;
    returns the schema version."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (lock_key("migrate", schema),),
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {v for (v,) in conn.execute("SELECT version FROM schema_version")}
        for version, (name, sql) in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            conn.execute(sql)  # no parameters: several statements in one call
            conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, name)
            )
            log.info("Applied migration %03d_%s", version, name)
        unknown = sorted(v for v in done if v > len(MIGRATIONS))
        if unknown:
            log.warning(
                "The database has migrations this version does not know (a newer "
                "version applied them): %s",
                ", ".join(map(str, unknown)),
            )
        # A write that changes nothing: a read-only user or a standby server fails
        # here, at start-up, rather than at the first run.
        conn.execute("DELETE FROM schema_version WHERE false")
    return schema_version(conn)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0
