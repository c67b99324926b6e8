"""Error fingerprints: failures that are the same error share one, so they can be
counted as a group however their ids, numbers and paths differ.

A fingerprint hashes the plugin, the error type, the error message with its variable
parts normalised, and the innermost frame of the plugin's traceback (file and
function, not the line: an edit above it does not split the group). It is computed
when a failed run's record is written (`Tracker.end_run`) and stored with it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

FINGERPRINT_CHARS = 16
FINGERPRINT_PATTERN = r"^[0-9a-f]{16}$"
MAX_MESSAGE = 300
# Only the message's start is normalised: what is cut to MAX_MESSAGE after placeholders
# replaced ids and paths, with room for many of them. An error may be megabytes long.
MAX_SCANNED = 4096

# Most specific first: a UUID holds hex and numbers, a URL holds a path.
# Full (8 groups) or compressed with "::" (so that a time like 12:30:00 is not one).
_IPV6 = (
    r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"
    r"|\b(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?"
)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    # A scheme starts where a run of its characters does: tried at every letter of a long
    # word, the match took time that grew with the square of the word's length.
    (re.compile(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(_IPV6), "<ip>"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
        ),
        "<time>",
    ),
    # A quoted word is a value (a key, a name); a quoted sentence keeps its words.
    (re.compile(r"'[^'\s]+'"), "'<value>'"),
    (re.compile(r'"[^"\s]+"'), '"<value>"'),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@~+-]+){2,}[/\\]?"), "<path>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"), "<n>"),
)
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<function>.+)$')
# Frames of the bridge itself and of installed libraries are not the plugin's.
_NOT_PLUGIN = re.compile(
    r"[/\\](?:bridge|webhook_bridge|site-packages|dist-packages)[/\\]|[/\\]lib[/\\]python3"
)


@dataclass(frozen=True)
class ErrorGroupKey:
    fingerprint: str
    message: str  # normalised
    frame: str  # "file.py:function", or "" without a plugin frame


def normalise(message: str) -> str:
    """The message with its variable parts (ids, numbers, quoted values, paths, IPs,
    times) replaced by placeholders, whitespace collapsed, cut to MAX_MESSAGE."""
    text = " ".join(message[: 2 * MAX_SCANNED].split())[:MAX_SCANNED]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text[:MAX_MESSAGE]


def error_message(detail: str) -> str:
    """The error's message out of a record's error text: the last line of a
    traceback ("ValueError: bad input"), or the text's first line."""
    lines = [line for line in detail.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        tail = [line for line in lines if not line.startswith(" ")]
        return tail[-1] if tail else lines[-1]
    return lines[0]


def plugin_frame(detail: str) -> str:
    """The innermost traceback frame in the plugin's own code, as "file.py:function"."""
    found = ""
    for line in detail.splitlines():
        match = _FRAME.match(line)
        if match and not _NOT_PLUGIN.search(match["file"]):
            name = re.split(r"[/\\]", match["file"])[-1]
            found = f"{name}:{match['function'].strip()}"
    return found


def error_group(plugin: str, error_type: str, detail: str) -> ErrorGroupKey:
    message = normalise(error_message(detail))
    frame = plugin_frame(detail)
    digest = hashlib.sha256(
        "\x1f".join((plugin, error_type, message, frame)).encode("utf-8", "surrogatepass")
    )
    return ErrorGroupKey(digest.hexdigest()[:FINGERPRINT_CHARS], message, frame)
