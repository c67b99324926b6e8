"""Export: the runs a list filter matches, as CSV, JSON or NDJSON, streamed.

Runs are read a page at a time on the list's keyset (newest first), each page in its
own short read, so memory stays flat however many runs match, the first bytes leave
after the first page, and nothing is held on the database between pages: a client
that goes away mid-export holds no cursor. The API and `flask bridge export` both
write what `chunks` yields.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import Enum
from typing import Any

from bridge import clock
from bridge.model import ExecutionFilter, ExecutionRecord
from bridge.storage.base import ExecutionStore

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
# Every column but the payloads, in the list's order; input and output on request.
FIELDS = (
    "id",
    "plugin_name",
    "http_method",
    "start_time",
    "end_time",
    "status",
    "error",
    "error_type",
    "duration",
    "attempts",
    "retry_count",
    "trace_id",
    "user_agent",
    "remote_ip",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
    "idempotency_key",
    "replays",
    "error_group",
    "replay_of",
)
PAYLOADS = ("input", "output")
JSON_TEXT = ("input", "output", "tags", "metadata")
PAGE = 500
# A spreadsheet runs a cell starting with one of these as a formula (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def pages(
    store: ExecutionStore, flt: ExecutionFilter, size: int | None = None
) -> Iterator[list[ExecutionRecord]]:
    """The matching runs newest first, a page of `size` (default PAGE) at a time, each
    page its own read."""
    cursor: str | None = None
    while True:
        with store.snapshot() as reader:
            batch, cursor = reader.page(flt, size or PAGE, 0, cursor)
        if batch:
            yield batch
        if cursor is None:
            return


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return clock.rfc3339(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _json_value(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a
    leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def chunks(
    pages: Iterable[list[ExecutionRecord]], fmt: str, fields: tuple[str, ...]
) -> Iterator[bytes]:
    """The export's bytes, a chunk per page of runs (the first with the header or the
    opening bracket). CSV: RFC 4180 (CRLF, quoted where needed), UTF-8 with a BOM so
    that spreadsheets read it as UTF-8, JSON text columns as text. JSON and NDJSON:
    JSON text columns as the values they hold."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
    if writer is not None:
        out.write("\ufeff")
        writer.writerow(fields)
    elif fmt == "json":
        out.write("[")
    first = True
    for page in pages:
        for record in page:
            if writer is not None:
                writer.writerow([safe_cell(_plain(getattr(record, f))) for f in fields])
                continue
            item = {
                f: _json_value(getattr(record, f)) if f in JSON_TEXT else _plain(getattr(record, f))
                for f in fields
            }
            text = json.dumps(item, ensure_ascii=False)
            if fmt == "json":
                out.write(("\n" if first else ",\n") + text)
                first = False
            else:
                out.write(text + "\n")
        yield out.getvalue().encode("utf-8", "replace")
        out.seek(0)
        out.truncate()
    if fmt == "json":
        out.write("]\n" if first else "\n]\n")
    yield out.getvalue().encode("utf-8", "replace")


def filename(flt: ExecutionFilter, fmt: str, now: datetime) -> str:
    """executions[-plugin-x][-status-y]...-YYYY-MM-DD.fmt: what was exported, and when."""
    parts = ["executions"]
    for name, value in (
        ("plugin", flt.plugin),
        ("status", flt.status.value if flt.status else None),
        ("error_type", flt.error_type),
        ("error_group", flt.error_group),
        ("trace", flt.trace_id),
        ("replays_of", flt.replay_of),
        ("since", flt.since.date().isoformat() if flt.since else None),
        ("until", flt.until.date().isoformat() if flt.until else None),
    ):
        if value:
            parts.append(f"{name}-{value}")
    parts += [f"tag-{k}-{v}" for k, v in flt.tags]
    stem = _UNSAFE_NAME.sub("_", "-".join(parts))[:150].strip("_")
    return f"{stem}-{now.date().isoformat()}.{fmt}"
