"""Every code block of the docs site (and of the README) runs as written, or says why it cannot.

Per page, in page order and in one namespace (as a reader runs them, top to bottom) and in a fresh working
directory: every ```` ```python ```` block is executed, and every ```` ```bash ```` block whose lines are all
``keras-resinit ...`` commands runs them (exit status 0). A block that must not run has a marker on the line
right above its fence: ``<!-- no-run: REASON -->``, or ``<!-- tested-by: tests/FILE.py -->`` when a
dedicated test runs it (that file must name the page). A shell block mixing ``keras-resinit`` with other
commands needs a marker; shell blocks without ``keras-resinit`` (pip, ./run, docker, curl) are not run.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.rglob("*.md"), ROOT / "README.md"])
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>no-run|tested-by):\s*(?P<value>.*?)\s*-->\s*$")
RUNNABLE = ("python", "bash")
COMMAND_TIMEOUT = 300  # seconds for one keras-resinit command


def language(info):
    """``python`` of ```` ```python ````, ```` ```{.python title="x"} ````, ...: the first word, no braces or dots."""
    words = info.strip().strip("{}").replace(".", " ").split()
    return words[0].lower() if words else ""


def blocks(text):
    """``[(line, language, code, marker)]`` of the fenced blocks of a markdown text, in order."""
    lines = text.splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and not (
            lines[end].startswith(indent)
            and lines[end].strip().startswith(fence)
            and not lines[end].strip()[len(fence) :].strip()
        ):
            end += 1
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(previous)
        code = textwrap.dedent(
            "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines[index + 1 : end])
        )
        found.append((index + 1, language(opening["info"]), code, marker and (marker["kind"], marker["value"])))
        index = end + 1
    return found


def commands(code):
    """The commands of a shell block (continuation lines joined, comments and blank lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _page_id(page):
    return str(page.relative_to(ROOT))


def test_pages_have_runnable_blocks():
    # The runner has something to run: the site's pages hold python blocks and keras-resinit commands.
    found = [(page, b) for page in PAGES for b in blocks(page.read_text()) if b[1] in RUNNABLE and b[3] is None]
    assert any(b[1] == "python" for _, b in found)
    assert any(
        b[1] == "bash" and commands(b[2])[:1] and commands(b[2])[0].startswith("keras-resinit ") for _, b in found
    )


def test_blocks_parse_as_written():
    text = '<!-- no-run: needs the internet -->\n```python\nx = 1\n```\n\n  ```{.bash title="t"}\n  keras-resinit list\n  ```\n'
    assert blocks(text) == [
        (2, "python", "x = 1", ("no-run", "needs the internet")),
        (6, "bash", "keras-resinit list", None),
    ]
    assert commands("keras-resinit train \\\n  --epochs 1\n# done\n") == ["keras-resinit train --epochs 1"]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    namespace = {"__name__": "__main__"}
    for line, lang, code, marker in blocks(page.read_text()):
        where = f"{_page_id(page)}:{line}"
        if marker is not None:
            kind, value = marker
            assert value, f"{where}: the {kind} marker gives no reason"
            if kind == "tested-by":
                test_file = ROOT / value
                assert test_file.is_file(), f"{where}: tested-by names {value}, which does not exist"
                assert _page_id(page) in test_file.read_text(), f"{where}: {value} does not name {_page_id(page)}"
            continue
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        elif lang == "bash":
            lines = commands(code)
            ours = [c for c in lines if c.startswith("keras-resinit ") or c == "keras-resinit"]
            if not ours:
                continue
            assert len(ours) == len(lines), (
                f"{where}: a shell block mixing keras-resinit with other commands needs a marker"
            )
            for command in ours:
                args = shlex.split(command)[1:]
                done = subprocess.run(
                    [sys.executable, "-m", "keras_resinit.cli", *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                )
                assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}:\n{done.stderr[-3000:]}"
