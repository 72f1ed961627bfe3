"""The benchmark command runs and prints its table (timings are not asserted: CI is noisy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_benchmarks(*args: str, timeout: float = 180) -> str:
    """``python -m benchmarks ARGS`` from the repository root; its stdout, after exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quick_ld_hook_benchmark_prints_the_table() -> None:
    pytest.importorskip("ldclient")
    out = run_benchmarks("--quick", "--only", "ld_hook")
    header = out[out.index("scenario") :].splitlines()[0].split()
    assert header == ["scenario", "figure", "median", "ratio", "budget", "result"], out
    rows = [line for line in out.splitlines() if line.startswith("2 LD variation()")]
    assert len(rows) == 4, out
    assert any(("pass" in row or "MISSED" in row) for row in rows), out
    assert "ERROR" not in out
    assert "nproc" in out
    assert "sentry-sdk" in out


def test_quick_middleware_benchmark_shows_its_noise_floor() -> None:
    pytest.importorskip("flask")
    pytest.importorskip("django")
    out = run_benchmarks("--quick", "--only", "middleware")
    for framework in ("django", "flask"):
        rows = [line for line in out.splitlines() if line.startswith(f"5 {framework} per request")]
        assert len(rows) == 4, out
        assert any("A/A" in row for row in rows), out
        assert any("measured directly" in row for row in rows), out
    assert "vendor clients: SDK defaults" in out
    assert "ERROR" not in out


def test_quick_openfeature_hook_benchmark_prints_the_table() -> None:
    pytest.importorskip("openfeature")
    out = run_benchmarks("--quick", "--only", "of_hook")
    rows = [line for line in out.splitlines() if line.startswith("7 OpenFeature get_boolean_value()")]
    assert len(rows) == 5, out  # no hook, no-op hook, sentry-sdk's, ours, ours with before()
    assert any(("pass" in row or "MISSED" in row) for row in rows), out
    assert "our own work" in out
    assert "openfeature-sdk" in out
    assert "ERROR" not in out


def test_help_names_every_option() -> None:
    out = run_benchmarks("--help", timeout=60)
    for option in ("--quick", "--only", "--strict", "--fast-vendors"):
        assert option in out


def test_capture_reports_the_polling_rounds_as_not_available_where_it_cannot_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not installed, only run from the checkout
    from benchmarks import _idle
    from benchmarks.capture import polling_row

    row = polling_row("1 capture", {"bare": [], "alone": [], "flags": []})
    assert row.result == "n/a"
    assert row.figure.startswith("caller-thread CPU, idle CPUs polling")
    assert _idle.describe().startswith("cpuidle ")
