"""The one table of figures, ratios and targets, for the terminal and for RESULTS.md."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    section: str
    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: a figure without a target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.met]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, section: str, figure: str, value: str, target: str = "", met: bool | None = None
    ) -> None:
        self.rows.append(Row(section, figure, value, target, met))

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def missed(self) -> list[Row]:
        return [r for r in self.rows if r.met is False]

    def table(self) -> str:
        """A GitHub-flavoured Markdown table: readable in a terminal, rendered on GitHub."""
        head = ("section", "figure", "value", "target", "result")
        cells = [head] + [(r.section, r.figure, r.value, r.target, r.verdict) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

        def line(values: tuple[str, ...]) -> str:
            return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

        return "\n".join(
            [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
            + [line(c) for c in cells[1:]]
        )


def machine() -> str:
    model = "unknown CPU"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc), {model}; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )


def markdown(report: Report, command: str, settings: str, elapsed_s: float) -> str:
    missed = report.missed
    summary = (
        "Every target met."
        if not missed
        else "Targets missed: "
        + "; ".join(f"{r.figure} ({r.value}, target {r.target})" for r in missed)
        + "."
    )
    parts = [
        "# Benchmark results",
        "",
        f"- When: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Settings: {settings}",
        f"- Took: {elapsed_s / 60:.1f} min",
        "",
        report.table(),
        "",
        f"**{summary}**",
    ]
    if report.notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(parts) + "\n"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def command_line() -> str:
    return " ".join(["python", "-m", "bench", *sys.argv[1:]])
