"""The set-up commands the README gives: what they say about themselves and about a bad Python.

They run with VENV pointing at a directory that does not exist and PYTHON at a stand-in
interpreter, so nothing is installed and each check stops before pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def script(
    name: str, *args: str, tmp_path: Path, python: str = "python3"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VENV": str(tmp_path / "venv"), "PYTHON": python}
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def fake_python(tmp_path: Path, body: str) -> str:
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def broken_python(tmp_path: Path) -> str:
    # What a pyenv shim for a version that is not installed does.
    return fake_python(tmp_path, 'echo "pyenv: python3.8: command not found" >&2\nexit 127')


def old_python(tmp_path: Path) -> str:
    return fake_python(tmp_path, 'if [ "$1" = "-V" ]; then echo "Python 3.8.10"; exit 0; fi\nexit 3')


def test_demo_help_prints_usage_and_does_nothing_else(tmp_path: Path) -> None:
    for flag in ("--help", "-h"):
        done = script("demo", flag, tmp_path=tmp_path, python=broken_python(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "Usage:  bash scripts/demo" in done.stdout
        assert "no arguments" in done.stdout
        assert not (tmp_path / "venv").exists()


def test_demo_refuses_arguments(tmp_path: Path) -> None:
    done = script("demo", "--verbose", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "takes no arguments, got: --verbose" in done.stderr
    assert "Usage:" in done.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("name", ["demo", "test", "docs"])
def test_an_interpreter_that_does_not_run_is_reported_as_such(name: str, tmp_path: Path) -> None:
    done = script(name, tmp_path=tmp_path, python=broken_python(tmp_path))
    assert done.returncode == 2
    assert "does not run (exit 127): pyenv: python3.8: command not found" in done.stderr
    assert "too old" not in done.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("name", ["demo", "test"])
def test_an_old_interpreter_is_too_old(name: str, tmp_path: Path) -> None:
    done = script(name, tmp_path=tmp_path, python=old_python(tmp_path))
    assert done.returncode == 2
    assert "Python 3.8.10 is too old: sentry-flags needs Python 3.9+" in done.stderr
