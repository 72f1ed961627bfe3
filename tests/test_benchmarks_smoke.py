"""The benchmark command runs and prints its table (timings are not asserted: CI is noisy)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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


def test_capture_reports_a_setting_it_cannot_run_as_not_available(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not installed, only run from the checkout
    from benchmarks import _idle
    from benchmarks.capture import POLLING, setting_row

    row = setting_row("1 capture", POLLING, {"bare": [], "alone": [], "flags": []})
    assert row.result == "n/a"
    assert row.figure.startswith("caller-thread CPU, idle CPUs polling")
    assert _idle.describe().startswith("cpuidle ")


def test_one_cpu_puts_every_thread_on_one_cpu_and_gives_them_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import _idle

    if not _idle.can_pin():
        pytest.skip("needs Linux and more than one CPU")
    allowed = os.sched_getaffinity(0)
    started = threading.Event()
    stop = threading.Event()

    def idle() -> None:
        started.set()
        stop.wait(10)

    before = threading.Thread(target=idle)
    before.start()
    started.wait(5)
    assert before.native_id is not None
    with _idle.one_cpu():
        assert os.sched_getaffinity(0) == {min(allowed)}
        assert os.sched_getaffinity(before.native_id) == {min(allowed)}
        during = threading.Thread(target=idle)  # inherits the one CPU
        during.start()
        assert during.native_id is not None
        assert os.sched_getaffinity(during.native_id) == {min(allowed)}
    assert os.sched_getaffinity(0) == allowed
    assert os.sched_getaffinity(before.native_id) == allowed
    assert os.sched_getaffinity(during.native_id) == allowed
    stop.set()
    before.join(5)
    during.join(5)


def test_median_interval_uses_the_order_statistics_of_the_binomial_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks._harness import median_interval

    assert median_interval([5.0, 1.0, 4.0, 2.0, 3.0]) == (1.0, 5.0)  # too few for 95%: the range
    assert median_interval([float(v) for v in range(1, 13)]) == (3.0, 10.0)  # 12 rounds: 3rd..10th
    assert median_interval([float(v) for v in range(1, 21)]) == (6.0, 15.0)
