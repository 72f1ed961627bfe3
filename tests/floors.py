"""The lower bounds pyproject.toml declares, and the pins of tox's ``deps-oldest`` env.

``deps-oldest`` installs every declared lower bound together and runs the suite on them.
Run as a script (its ``commands_pre``) this prints the installed version of every pinned
distribution and exits 1 when one is not its pin: pip moved it to satisfy another
requirement, so that floor does not work together with the others.
``tests/test_floors.py`` checks that the pins are the floors.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OLDEST_ENV = "testenv:deps-oldest"
OLDEST_PYTHON = "3.10"  # deps-oldest's Python: openfeature-sdk 0.9 needs 3.10+

# Extras whose floors deps-oldest does not install, and where they are tested instead.
NOT_IN_OLDEST = {
    "dev": "tools (ruff, mypy, tox, build, twine), not run by the suite",
    "segment-legacy": "analytics-python replaces Segment's package; tox env segment-legacy",
    "docs": "the documentation site's tools (mkdocs), run by bash scripts/docs: CI step docs",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pytest brings tomli there
        import tomli as tomllib
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return data


def declared_floors(python_version: str = OLDEST_PYTHON) -> dict[str, str]:
    """Every ``>=`` lower bound of pyproject.toml's dependencies and extras (but
    ``NOT_IN_OLDEST``) that applies on ``python_version``, by canonical name.

    Raises ValueError for a requirement without a lower bound, or one named twice with two
    different bounds.
    """
    from packaging.requirements import Requirement

    project = _toml(ROOT / "pyproject.toml")["project"]
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        if extra not in NOT_IN_OLDEST:
            lines.extend(r for r in requirements if not r.startswith(f"{project['name']}["))
    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    floors: dict[str, str] = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        bounds = [s.version for s in requirement.specifier if s.operator == ">="]
        if len(bounds) != 1:
            raise ValueError(f"{line!r}: every requirement needs one lower bound (>=)")
        name = canonical(requirement.name)
        if floors.setdefault(name, bounds[0]) != bounds[0]:
            raise ValueError(f"{requirement.name} has two lower bounds: {floors[name]} and {bounds[0]}")
    return floors


def oldest_pins() -> dict[str, str]:
    """deps-oldest's ``name==version`` deps in tox.ini, by canonical name."""
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.read(ROOT / "tox.ini")
    pins: dict[str, str] = {}
    for raw in parser[OLDEST_ENV]["deps"].splitlines():
        line = raw.strip()
        if not line:
            continue
        name, sep, pinned = line.partition("==")
        if not sep:
            raise ValueError(f"tox.ini [{OLDEST_ENV}] deps: {line!r} is not name==version")
        pins[canonical(name)] = pinned.strip()
    return pins


def moved_pins() -> list[str]:
    """Print each pin's installed version; the lines for those not at their pin."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    moved = []
    for name, pinned in sorted(oldest_pins().items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        ok = installed != "not installed" and Version(installed) == Version(pinned)
        line = f"{name:34} {installed:16} {'ok' if ok else f'NOT the pin {pinned}'}"
        print(line)
        if not ok:
            moved.append(line)
    return moved


if __name__ == "__main__":
    sys.exit(1 if moved_pins() else 0)
