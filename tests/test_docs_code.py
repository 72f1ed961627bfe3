"""Every Python block in README.md and docs/*.md runs as written, or says why not.

The convention (also in docs/contributing.md):

- A ```` ```python ```` block is **run**. The runnable blocks of one page run in order, in one
  fresh interpreter, the way a reader would paste them into one session: a block may use
  names an earlier block of the same page defined. They run offline, with the extras of
  ``pip install -e ".[all,test]"``, in a temporary working directory, and without any
  ``SENTRY_*`` variable from the environment (a stray ``SENTRY_DSN`` would send their errors
  to a real Sentry). A failure names the page and line: the code is compiled with the
  page's own line numbers.
- A block that is **not meant to run** (a fragment that shows a shape, a settings file, code
  that needs an account or a server of yours) has ``<!-- fragment: why -->`` on the line
  before its fence. It must still be valid Python: it is compiled, not run.
- ``<!-- requires: MODULE -->`` before a runnable block: the page's blocks are skipped where
  MODULE cannot be imported (an SDK feature some supported versions lack).
- ``<!-- expect: NAME -->`` before a ```` ```json ```` block: once the page's Python blocks
  above it have run, the variable ``NAME`` they left must equal the JSON (for an object: the
  keys the JSON shows), so an example output cannot drift from what the code produces.
- Other languages are shown, never run: ``bash``, ``text``, ``json`` (the README's example
  event is checked by tests/test_readme_event.py), ``toml``, ``yaml``, ``ini``. Every fence
  names its language, so a typo (``py``) cannot turn a runnable block into an unchecked one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGUAGES = {"python", "bash", "text", "json", "toml", "yaml", "ini"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>fragment|requires|expect)\b:?\s*(?P<text>.*?)\s*-->\s*$")
TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the first line of code (1-based), just after the opening fence
    language: str
    code: str
    fragment: bool
    requires: tuple[str, ...]
    expect: str  # the variable a json block shows, or ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, with the markers on the lines before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening["indent"], opening["info"].strip()
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"),
            None,
        )
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a fence that is never closed"
        body = lines[i + 1 : end]
        code = "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in body)
        markers = []
        j = i - 1
        while j >= 0 and (found_marker := MARKER.match(lines[j])):
            markers.append(found_marker)
            j -= 1
        found.append(
            Block(
                page=page,
                line=i + 2,
                language=language,
                code=code + "\n",
                fragment=any(m["kind"] == "fragment" for m in markers),
                requires=tuple(m["text"] for m in markers if m["kind"] == "requires"),
                expect=next((m["text"] for m in markers if m["kind"] == "expect"), ""),
            )
        )
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]
PYTHON = [block for block in ALL_BLOCKS if block.language == "python"]
RUNNABLE_PAGES = sorted({block.page for block in PYTHON if not block.fragment})
EXPECTED = [block for block in ALL_BLOCKS if block.expect]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_are_found() -> None:
    names = {page_id(page) for page in PAGES}
    assert {"README.md", "docs/testing.md", "docs/forwarders.md"} <= names
    assert len(RUNNABLE_PAGES) >= 5, RUNNABLE_PAGES


def test_every_fence_names_a_known_language() -> None:
    unknown = [f"{b.where}: {b.language or '(none)'}" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert unknown == [], f"name one of {sorted(LANGUAGES)} after the ``` of each block"


def test_markers_sit_on_the_blocks_they_are_for() -> None:
    misplaced = [b.where for b in ALL_BLOCKS if (b.fragment or b.requires) and b.language != "python"]
    misplaced += [b.where for b in EXPECTED if b.language != "json" or not b.expect.isidentifier()]
    misplaced += [b.where for b in EXPECTED if b.page not in RUNNABLE_PAGES]
    assert misplaced == []
    for block in EXPECTED:
        json.loads(block.code)


@pytest.mark.parametrize("block", [b for b in PYTHON if b.fragment], ids=lambda b: b.where)
def test_a_fragment_is_valid_python(block: Block) -> None:
    compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")


# Runs in the child: every block in order, in one namespace, compiled with the page's line
# numbers so a traceback points into the page; an expected output is compared where it stands.
RUNNER = """
import json, sys
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for block in blocks:
    if block["expect"]:
        print(f"--- comparing {block['expect']} with {block['where']}", flush=True)
        shown, got = json.loads(block["code"]), namespace[block["expect"]]
        if isinstance(shown, dict) and isinstance(got, dict):
            got = {key: got.get(key) for key in shown}
        assert got == shown, f"{block['where']}: {block['expect']} is\\n{json.dumps(got, indent=2)}"
        continue
    print(f"--- running {block['where']}", flush=True)
    code = compile("\\n" * (block["line"] - 1) + block["code"], block["page"], "exec")
    exec(code, namespace)
print("--- all blocks ran", flush=True)
"""


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=page_id)
def test_the_pages_python_blocks_run(page: Path, tmp_path: Path) -> None:
    runnable = [b for b in PYTHON if b.page == page and not b.fragment]
    steps = [b for b in ALL_BLOCKS if b.page == page and (b in runnable or b.expect)]
    missing = sorted({m for b in runnable for m in b.requires if importlib.util.find_spec(m) is None})
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    payload = json.dumps(
        [
            {"where": b.where, "page": str(b.page), "line": b.line, "code": b.code, "expect": b.expect}
            for b in steps
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=payload, capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{page_id(page)}:\n{done.stdout}\n{done.stderr}"
    assert "--- all blocks ran" in done.stdout
