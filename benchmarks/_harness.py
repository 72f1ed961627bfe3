"""Timing, interleaved rounds, and the result table shared by every scenario.

Rules every scenario follows:

* Variants of one scenario run in the same process, interleaved round by round (the order
  rotates each round), so drift on this shared machine hits them equally.
* Timed loops use ``time.perf_counter_ns`` with the garbage collector disabled (a
  ``gc.collect()`` runs just before each loop, untimed). The memory scenario is the
  exception: it runs with gc on, as an app would.
* Figures are medians over rounds; ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

PASS = "pass"
MISSED = "MISSED"
INFO = ""
NOT_AVAILABLE = "n/a"
ERROR = "ERROR"
NOTE = "note"  # printed under the table, not in it


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    scenario: str
    figure: str
    median: str
    ratio: str = ""
    budget: str = ""
    result: str = INFO

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def note(cls, scenario: str, text: str) -> Row:
        return cls(scenario, text, "", result=NOTE)


def verdict(ok: bool) -> str:
    return PASS if ok else MISSED


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the results."""
    print(f"  [bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def gc_off() -> Iterator[None]:
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def per_op_ns(loop: Callable[[int], Any], n: int) -> float:
    """Run ``loop(n)`` once with gc off; nanoseconds per operation."""
    with gc_off():
        start = time.perf_counter_ns()
        loop(n)
        elapsed = time.perf_counter_ns() - start
    return elapsed / n


def interleave(
    variants: Mapping[str, Callable[[], T]],
    rounds: int,
    *,
    between: Optional[Callable[[str], None]] = None,
) -> dict[str, list[T]]:
    """Call each variant once per round, rotating the order; collect what each returns."""
    names = list(variants)
    samples: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(variants[name]())
            if between is not None:
                between(name)
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-round ratios."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics k and n + 1 - k,
    with k the largest rank whose binomial tail stays within the confidence. With fewer
    than 6 values no such k exists and the interval is the whole range."""
    ordered = sorted(values)
    n = len(ordered)
    tail, k = 0.0, 0
    while k < n // 2:
        tail += math.comb(n, k) / 2**n  # P(fewer than k + 1 values below the median)
        if tail > (1 - confidence) / 2:
            break
        k += 1
    k = max(k, 1)
    return ordered[k - 1], ordered[n - k]


def paired_diff(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of the per-round differences ``a - b``."""
    return statistics.median(x - y for x, y in zip(a, b))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..100."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


def render(rows: Sequence[Row]) -> str:
    """The table, then the notes (counters, explanations) scenario by scenario."""
    header = ("scenario", "figure", "median", "ratio", "budget", "result")
    table = [r for r in rows if r.result != NOTE]
    cells = [header, *[(r.scenario, r.figure, r.median, r.ratio, r.budget, r.result) for r in table]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for i, cell in enumerate(cells):
        lines.append("  ".join(text.ljust(width) for text, width in zip(cell, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [r for r in rows if r.result == NOTE]
    if notes:
        lines += ["", "notes:"]
        lines += [f"  {r.scenario}: {r.figure}" for r in notes]
    return "\n".join(lines)
