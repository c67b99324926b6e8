"""The SQLite schema as an ordered list of named migrations (sqlite-utils style).

Each is applied in the transaction that records its name in the `migrations` table, and
a database's applied migrations are found by name. Released migrations are never
edited: a change is a new migration at the end. Times are integer microseconds since
the epoch (see connection.py).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime

log = logging.getLogger("bridge.storage.sqlite")


MIGRATIONS: list[tuple[str, str]] = [
    (
        "create_executions",
        """
        CREATE TABLE executions (
            seq          INTEGER PRIMARY KEY,
            id           TEXT NOT NULL UNIQUE,
            plugin_name  TEXT NOT NULL,
            http_method  TEXT NOT NULL,
            start_time   INTEGER NOT NULL,
            end_time     INTEGER,
            status       TEXT NOT NULL,
            input        TEXT NOT NULL DEFAULT '',
            output       TEXT NOT NULL DEFAULT '',
            error        TEXT NOT NULL DEFAULT '',
            error_type   TEXT NOT NULL DEFAULT '',
            duration     INTEGER NOT NULL DEFAULT 0,
            attempts     INTEGER NOT NULL DEFAULT 0,
            retry_count  INTEGER NOT NULL DEFAULT 0,
            trace_id     TEXT NOT NULL DEFAULT '',
            user_agent   TEXT NOT NULL DEFAULT '',
            remote_ip    TEXT NOT NULL DEFAULT '',
            tags         TEXT NOT NULL DEFAULT '{}',
            metadata     TEXT NOT NULL DEFAULT '{}',
            created_at   INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL,
            worker       TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX ix_executions_start ON executions (start_time);
        CREATE INDEX ix_executions_plugin_start ON executions (plugin_name, start_time);
        CREATE INDEX ix_executions_status_start ON executions (status, start_time);
        CREATE INDEX ix_executions_plugin_status_start
            ON executions (plugin_name, status, start_time);
        CREATE INDEX ix_executions_error_type_start ON executions (error_type, start_time);
        CREATE INDEX ix_executions_trace ON executions (trace_id);
    """,
    ),
    (
        "create_execution_attempts",
        """
        CREATE TABLE execution_attempts (
            execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
            number       INTEGER NOT NULL,
            start_time   INTEGER NOT NULL,
            end_time     INTEGER NOT NULL,
            status       TEXT NOT NULL,
            error        TEXT NOT NULL DEFAULT '',
            error_type   TEXT NOT NULL DEFAULT '',
            duration     INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (execution_id, number)
        ) WITHOUT ROWID;
    """,
    ),
    (
        "create_execution_metrics",
        """
        CREATE TABLE execution_metrics (
            plugin_name  TEXT NOT NULL,
            hour_start   INTEGER NOT NULL,
            total        INTEGER NOT NULL,
            completed    INTEGER NOT NULL,
            failed       INTEGER NOT NULL,
            timeout      INTEGER NOT NULL,
            canceled     INTEGER NOT NULL,
            duration_sum INTEGER NOT NULL,
            duration_min INTEGER NOT NULL,
            duration_max INTEGER NOT NULL,
            histogram    TEXT NOT NULL,
            error_types  TEXT NOT NULL,
            PRIMARY KEY (plugin_name, hour_start)
        ) WITHOUT ROWID;
        CREATE INDEX ix_execution_metrics_hour ON execution_metrics (hour_start);
    """,
    ),
    (
        "create_bridge_state",
        """
        CREATE TABLE bridge_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    ),
    (
        "add_idempotency",
        """
        ALTER TABLE executions ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
        ALTER TABLE executions ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE deliveries (
            plugin_name  TEXT NOT NULL,
            key          TEXT NOT NULL,
            execution_id TEXT NOT NULL,
            created_at   INTEGER NOT NULL,
            PRIMARY KEY (plugin_name, key)
        ) WITHOUT ROWID;
        CREATE INDEX ix_deliveries_created ON deliveries (created_at);
    """,
    ),
    # Days merged from the hourly rollups, per plugin and for all plugins ('*'), so that
    # 90-day stats merge 90 rows instead of 43,200. Filled by the next rollup.
    (
        "create_execution_metrics_daily",
        """
        CREATE TABLE execution_metrics_daily (
            plugin_name  TEXT NOT NULL,
            day_start    INTEGER NOT NULL,
            total        INTEGER NOT NULL,
            completed    INTEGER NOT NULL,
            failed       INTEGER NOT NULL,
            timeout      INTEGER NOT NULL,
            canceled     INTEGER NOT NULL,
            duration_sum INTEGER NOT NULL,
            duration_min INTEGER NOT NULL,
            duration_max INTEGER NOT NULL,
            histogram    TEXT NOT NULL,
            error_types  TEXT NOT NULL,
            PRIMARY KEY (plugin_name, day_start)
        ) WITHOUT ROWID;
    """,
    ),
    # Covers the list's estimated totals: sums over hours without reading histograms.
    (
        "index_execution_metrics_counts",
        """
        CREATE INDEX ix_execution_metrics_counts ON execution_metrics
            (hour_start, plugin_name, total, completed, failed, timeout, canceled, error_types);
    """,
    ),
    # A claim says how its run ended and what a repeat is answered with, so that a repeat
    # is decided by the claim alone, and answered after cleanup took the record.
    (
        "add_delivery_outcome",
        """
        ALTER TABLE deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'running';
        ALTER TABLE deliveries ADD COLUMN answer TEXT NOT NULL DEFAULT '';
        UPDATE deliveries SET state = coalesce((SELECT CASE WHEN e.status = 'completed'
            THEN 'completed' WHEN e.status IN ('running', 'pending') THEN 'running'
            ELSE 'failed' END FROM executions e WHERE e.id = deliveries.execution_id),
            'running');
    """,
    ),
    # Each tag of each run, for the list's and stats' tag filter (an index on key, value
    # and start, so a filter reads only the runs that carry the tag). Filled from the
    # runs already stored.
    (
        "create_execution_tags",
        """
        CREATE TABLE execution_tags (
            key          TEXT NOT NULL,
            value        TEXT NOT NULL,
            start_time   INTEGER NOT NULL,
            execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
            PRIMARY KEY (key, value, start_time, execution_id)
        ) WITHOUT ROWID;
        CREATE INDEX ix_execution_tags_execution ON execution_tags (execution_id);
        INSERT OR IGNORE INTO execution_tags (key, value, start_time, execution_id)
            SELECT j.key, CAST(j.value AS TEXT), e.start_time, e.id
            FROM executions e, json_each(e.tags) j WHERE e.tags NOT IN ('', '{}');
    """,
    ),
    # Alerts: each rule × plugin's state (a version guards its changes) and the history
    # of alert events, kept by retention like runs.
    (
        "create_alerts",
        """
        CREATE TABLE alert_state (
            rule        TEXT NOT NULL,
            plugin      TEXT NOT NULL,
            state       TEXT NOT NULL,
            value       REAL,
            since       INTEGER,
            fired_at    INTEGER,
            notified_at INTEGER,
            clear_since INTEGER,
            resolved_at INTEGER,
            updated_at  INTEGER,
            version     INTEGER NOT NULL,
            PRIMARY KEY (rule, plugin)
        ) WITHOUT ROWID;
        CREATE TABLE alert_events (
            id        INTEGER PRIMARY KEY,
            at        INTEGER NOT NULL,
            rule      TEXT NOT NULL,
            plugin    TEXT NOT NULL,
            kind      TEXT NOT NULL,
            severity  TEXT NOT NULL DEFAULT '',
            value     REAL,
            threshold REAL,
            channel   TEXT NOT NULL DEFAULT '',
            detail    TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX ix_alert_events_at ON alert_events (at);
    """,
    ),
    # Issue 16: a failure's fingerprint and the run a replay repeats, stored with the
    # run; runs retried and the time spent retrying (ns), kept with the run and summed
    # in the rollups; each error group's failures per hour,
    # rolled up like the stats so that a group outlives its raw rows. Times of
    # error_group_hours: hour_start in seconds, first/last seen in microseconds.
    (
        "add_error_groups_and_replays",
        """
        ALTER TABLE executions ADD COLUMN error_group TEXT NOT NULL DEFAULT '';
        ALTER TABLE executions ADD COLUMN replay_of TEXT NOT NULL DEFAULT '';
        CREATE INDEX ix_executions_error_group_start ON executions (error_group, start_time)
            WHERE error_group != '';
        CREATE INDEX ix_executions_replay_of ON executions (replay_of) WHERE replay_of != '';
        ALTER TABLE executions ADD COLUMN retry_time INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics ADD COLUMN retried INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics ADD COLUMN retry_time INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics_daily ADD COLUMN retried INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE execution_metrics_daily ADD COLUMN retry_time INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE error_group_hours (
            fingerprint  TEXT NOT NULL,
            hour_start   INTEGER NOT NULL,
            plugin_name  TEXT NOT NULL,
            error_type   TEXT NOT NULL,
            message      TEXT NOT NULL,
            count        INTEGER NOT NULL,
            first_seen   INTEGER NOT NULL,
            last_seen    INTEGER NOT NULL,
            example_id   TEXT NOT NULL,
            PRIMARY KEY (fingerprint, hour_start)
        ) WITHOUT ROWID;
        CREATE INDEX ix_error_group_hours_hour ON error_group_hours (hour_start);
    """,
    ),
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations not yet recorded (by name), each in the transaction that
    records it; returns the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        for number, (name, sql) in enumerate(MIGRATIONS, start=1):
            if name in done:
                continue
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            log.info("Applied migration %03d_%s", number, name)
        unknown = done - {name for name, _ in MIGRATIONS}
        if unknown:
            log.warning(
                "The database has migrations this version does not know (a newer "
                "version applied them): %s",
                ", ".join(sorted(unknown)),
            )
        # A write that changes nothing: a database that cannot be written (a read-only
        # file or mount) fails here, at start-up, rather than at the first run.
        conn.execute("DELETE FROM migrations WHERE 0")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return schema_version(conn)


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of the latest migration applied (its row's id)."""
    return conn.execute("SELECT max(id) FROM migrations").fetchone()[0] or 0
