"""The MySQL schema as numbered migrations, recorded in `schema_version`.

They are applied at start-up under `GET_LOCK` on the database's migration lock: bridges
starting at once on one database wait for each other, and the second finds the
first's versions recorded, so each migration runs exactly once. MySQL commits every
DDL statement on its own, so a migration cannot share a transaction with its row; each
is recorded as soon as its statements have run. A released migration is never edited:
a change is a new one at the end.

Text is utf8mb4 with a binary collation that does not pad (ids, plugin names and keys
compare as the other backends compare them: case and trailing spaces matter). Indexed
text is VARCHAR of the lengths the API allows (a key of InnoDB's is at most 3072 bytes,
4 per character). Times are DATETIME(6) in UTC; durations BIGINT nanoseconds; tags,
metadata, rollup histograms, error types and state are JSON.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

log = logging.getLogger("bridge.storage.mysql")

LOCK_PREFIX = "webhook-bridge"
MIGRATE_WAIT_S = 120  # another host's migrations may take this long
# The first the server has: MariaDB's, then MySQL 8's, then one that pads.
COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")

_ROLLUP_COLUMNS = """
    total        BIGINT NOT NULL,
    completed    BIGINT NOT NULL,
    failed       BIGINT NOT NULL,
    timeout      BIGINT NOT NULL,
    canceled     BIGINT NOT NULL,
    duration_sum BIGINT NOT NULL,
    duration_min BIGINT NOT NULL,
    duration_max BIGINT NOT NULL,
    histogram    JSON NOT NULL,
    error_types  JSON NOT NULL
"""
_TABLE = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}"

# Each migration: its name and its statements. Ordered indexes end in seq, the
# insertion order: the list's keyset (start_time, seq) is read from one index.
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "create_executions",
        [
            f"""CREATE TABLE executions (
                seq             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                id              VARCHAR(64) NOT NULL,
                plugin_name     VARCHAR(100) NOT NULL,
                http_method     VARCHAR(16) NOT NULL,
                start_time      DATETIME(6) NOT NULL,
                end_time        DATETIME(6) NULL,
                status          VARCHAR(16) NOT NULL,
                input           LONGTEXT NOT NULL,
                output          LONGTEXT NOT NULL,
                error           MEDIUMTEXT NOT NULL,
                error_type      VARCHAR(200) NOT NULL DEFAULT '',
                duration        BIGINT NOT NULL DEFAULT 0,
                attempts        INT NOT NULL DEFAULT 0,
                retry_count     INT NOT NULL DEFAULT 0,
                trace_id        VARCHAR(200) NOT NULL DEFAULT '',
                user_agent      TEXT NOT NULL,
                remote_ip       VARCHAR(64) NOT NULL DEFAULT '',
                tags            JSON NULL,
                metadata        JSON NULL,
                created_at      DATETIME(6) NOT NULL,
                updated_at      DATETIME(6) NOT NULL,
                worker          VARCHAR(255) NOT NULL DEFAULT '',
                idempotency_key VARCHAR(200) NOT NULL DEFAULT '',
                replays         INT NOT NULL DEFAULT 0,
                UNIQUE KEY ux_executions_id (id),
                KEY ix_executions_start (start_time, seq),
                KEY ix_executions_plugin_start (plugin_name, start_time, seq),
                KEY ix_executions_status_start (status, start_time, seq),
                KEY ix_executions_plugin_status_start (plugin_name, status, start_time, seq),
                KEY ix_executions_error_type_start (error_type, start_time, seq),
                KEY ix_executions_trace (trace_id)
            ) {_TABLE}""",
        ],
    ),
    (
        "create_execution_attempts",
        [
            f"""CREATE TABLE execution_attempts (
                execution_id VARCHAR(64) NOT NULL,
                number       INT NOT NULL,
                start_time   DATETIME(6) NOT NULL,
                end_time     DATETIME(6) NOT NULL,
                status       VARCHAR(16) NOT NULL,
                error        MEDIUMTEXT NOT NULL,
                error_type   VARCHAR(200) NOT NULL DEFAULT '',
                duration     BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (execution_id, number),
                FOREIGN KEY (execution_id) REFERENCES executions (id) ON DELETE CASCADE
            ) {_TABLE}""",
        ],
    ),
    # Each tag of each run, for the tag filter: the key (key, value, start_time) reads
    # only the runs that carry the tag.
    (
        "create_execution_tags",
        [
            f"""CREATE TABLE execution_tags (
                `key`        VARCHAR(64) NOT NULL,
                value        VARCHAR(256) NOT NULL,
                start_time   DATETIME(6) NOT NULL,
                execution_id VARCHAR(64) NOT NULL,
                PRIMARY KEY (`key`, value, start_time, execution_id),
                KEY ix_execution_tags_execution (execution_id),
                FOREIGN KEY (execution_id) REFERENCES executions (id) ON DELETE CASCADE
            ) {_TABLE}""",
        ],
    ),
    (
        "create_execution_metrics",
        [
            f"""CREATE TABLE execution_metrics (
                plugin_name VARCHAR(100) NOT NULL,
                hour_start  DATETIME(6) NOT NULL,
                {_ROLLUP_COLUMNS},
                PRIMARY KEY (plugin_name, hour_start),
                KEY ix_execution_metrics_hour (hour_start, plugin_name)
            ) {_TABLE}""",
            f"""CREATE TABLE execution_metrics_daily (
                plugin_name VARCHAR(100) NOT NULL,
                day_start   DATETIME(6) NOT NULL,
                {_ROLLUP_COLUMNS},
                PRIMARY KEY (plugin_name, day_start),
                KEY ix_execution_metrics_daily_day (day_start)
            ) {_TABLE}""",
        ],
    ),
    (
        "create_bridge_state",
        [
            "CREATE TABLE bridge_state (`key` VARCHAR(64) PRIMARY KEY, value JSON NOT NULL) "
            + _TABLE
        ],
    ),
    (
        "create_deliveries",
        [
            f"""CREATE TABLE deliveries (
                plugin_name  VARCHAR(100) NOT NULL,
                `key`        VARCHAR(200) NOT NULL,
                execution_id VARCHAR(64) NOT NULL,
                created_at   DATETIME(6) NOT NULL,
                state        VARCHAR(16) NOT NULL DEFAULT 'running',
                answer       MEDIUMTEXT NOT NULL,
                PRIMARY KEY (plugin_name, `key`),
                KEY ix_deliveries_created (created_at)
            ) {_TABLE}""",
        ],
    ),
    (
        "create_alerts",
        [
            f"""CREATE TABLE alert_state (
                rule        VARCHAR(100) NOT NULL,
                plugin      VARCHAR(100) NOT NULL,
                state       VARCHAR(16) NOT NULL,
                value       DOUBLE,
                since       DATETIME(6),
                fired_at    DATETIME(6),
                notified_at DATETIME(6),
                clear_since DATETIME(6),
                resolved_at DATETIME(6),
                updated_at  DATETIME(6),
                version     INT NOT NULL,
                PRIMARY KEY (rule, plugin)
            ) {_TABLE}""",
            f"""CREATE TABLE alert_events (
                id        BIGINT AUTO_INCREMENT PRIMARY KEY,
                at        DATETIME(6) NOT NULL,
                rule      VARCHAR(100) NOT NULL,
                plugin    VARCHAR(100) NOT NULL,
                kind      VARCHAR(32) NOT NULL,
                severity  VARCHAR(16) NOT NULL DEFAULT '',
                value     DOUBLE,
                threshold DOUBLE,
                channel   VARCHAR(100) NOT NULL DEFAULT '',
                detail    JSON NOT NULL,
                KEY ix_alert_events_at (at)
            ) {_TABLE}""",
        ],
    ),
    # Issue 16: a failure's fingerprint and the run a replay repeats, stored with the
    # run; runs retried and the time spent retrying (ns), kept with the run and summed
    # in the rollups; each error group's failures per hour,
    # rolled up like the stats so that a group outlives its raw rows.
    (
        "add_error_groups_and_replays",
        [
            "ALTER TABLE executions ADD COLUMN error_group VARCHAR(32) NOT NULL DEFAULT '', "
            "ADD COLUMN replay_of VARCHAR(64) NOT NULL DEFAULT '', "
            "ADD COLUMN retry_time BIGINT NOT NULL DEFAULT 0, "
            "ADD KEY ix_executions_error_group_start (error_group, start_time, seq), "
            "ADD KEY ix_executions_replay_of (replay_of)",
            "ALTER TABLE execution_metrics ADD COLUMN retried BIGINT NOT NULL DEFAULT 0, "
            "ADD COLUMN retry_time BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE execution_metrics_daily ADD COLUMN retried BIGINT NOT NULL DEFAULT 0, "
            "ADD COLUMN retry_time BIGINT NOT NULL DEFAULT 0",
            f"""CREATE TABLE error_group_hours (
                fingerprint  VARCHAR(32) NOT NULL,
                hour_start   DATETIME(6) NOT NULL,
                plugin_name  VARCHAR(100) NOT NULL,
                error_type   VARCHAR(200) NOT NULL,
                message      TEXT NOT NULL,
                count        BIGINT NOT NULL,
                first_seen   DATETIME(6) NOT NULL,
                last_seen    DATETIME(6) NOT NULL,
                example_id   VARCHAR(64) NOT NULL,
                PRIMARY KEY (fingerprint, hour_start),
                KEY ix_error_group_hours_hour (hour_start)
            ) {_TABLE}""",
        ],
    ),
    # InnoDB stores a table in its primary key's order. The hourly rollups are read by
    # hour range far more than by plugin (the list's estimate, stats, the series): in
    # hour order a range of hours is one sequential read, where by (plugin, hour) it was
    # a secondary-index lookup per row (~400 for the day of hours an estimate reads:
    # 2.4 -> 0.8 ms on the bench's history). A plugin's hours use the new index.
    (
        "cluster_hourly_rollups_by_hour",
        [
            "ALTER TABLE execution_metrics DROP PRIMARY KEY, "
            "ADD PRIMARY KEY (hour_start, plugin_name), "
            "DROP KEY ix_execution_metrics_hour, "
            "ADD KEY ix_execution_metrics_plugin (plugin_name, hour_start)",
        ],
    ),
]


def lock_name(purpose: str, database: str) -> str:
    """A GET_LOCK name: locks are per server, so the database is part of it; hashed,
    as a name is at most 64 characters."""
    digest = hashlib.sha256(f"{purpose}:{database}".encode()).hexdigest()[:40]
    return f"{LOCK_PREFIX}:{digest}"


def collation(cur: Any) -> str:
    cur.execute("SELECT collation_name FROM information_schema.collations")
    have = {row[0] for row in cur.fetchall()}
    return next(c for c in COLLATIONS if c in have)


def migrate(conn: Any, database: str) -> int:
    """Apply the migrations not yet recorded, under the database's migration lock;
    returns the schema version."""
    name = lock_name("migrate", database)
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s)", (name, MIGRATE_WAIT_S))
        row = cur.fetchone()
        if not (row and row[0] == 1):
            raise TimeoutError(f"another bridge held the migration lock for {MIGRATE_WAIT_S}s")
        try:
            _apply(cur)
            # A write that changes nothing: a read-only user or server fails here, at
            # start-up, rather than at the first run.
            cur.execute("DELETE FROM schema_version WHERE 1 = 0")
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
    return schema_version(conn)


def _apply(cur: Any) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INT PRIMARY KEY, "
        "name VARCHAR(100) NOT NULL, applied_at DATETIME(6) NOT NULL "
        "DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
    cur.execute("SELECT version FROM schema_version")
    done = {v for (v,) in cur.fetchall()}
    pending = [v for v in range(1, len(MIGRATIONS) + 1) if v not in done]
    chosen = collation(cur) if pending else ""
    for version in pending:
        name, statements = MIGRATIONS[version - 1]
        for sql in statements:
            cur.execute(sql.format(collation=chosen))
        cur.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, name))
        log.info("Applied migration %03d_%s", version, name)
    unknown = sorted(v for v in done if v > len(MIGRATIONS))
    if unknown:
        log.warning(
            "The database has migrations this version does not know (a newer version "
            "applied them): %s",
            ", ".join(map(str, unknown)),
        )


def schema_version(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = cur.fetchone()
    return int(row[0]) if row else 0
