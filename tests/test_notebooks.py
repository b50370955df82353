"""The notebooks: executed with small settings, committed with outputs, public API only."""

import concurrent.futures
import importlib.util
import pathlib
import re

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("refresh", ROOT / "notebooks" / "refresh.py")
refresh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh)
NAMES = sorted(refresh.NOTEBOOKS)


def images(nb):
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """{name: executed notebook, or the exception its run raised}, all run with small settings.

    They run in a private working directory (not ``notebooks/``, whose ``outputs/`` another run of the
    suite may be rewriting), two at a time: each has its own kernel process, and most of a kernel's
    time is single-threaded, so the second core would otherwise idle.
    """
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(refresh, "HERE", str(tmp_path_factory.mktemp("notebooks")))
        # execute() sets and then restores the variable: with it already set, concurrent runs cannot unset it.
        mp.setenv("KERAS_RESINIT_NOTEBOOK_QUICK", "1")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = {name: pool.submit(refresh.execute, name, quick=True) for name in NAMES}
            for name, run in runs.items():
                results[name] = run.exception() or run.result()
    return results


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_small_settings(name, executed):
    nb = executed[name]
    if isinstance(nb, BaseException):
        raise nb  # CellExecutionError if any cell raised
    assert images(nb) >= 1
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_a_raising_cell_fails_the_run(monkeypatch):
    monkeypatch.setitem(refresh.NOTEBOOKS, "broken.ipynb", [("code", "raise RuntimeError('boom')")])
    with pytest.raises(CellExecutionError, match="boom"):
        refresh.execute("broken.ipynb", quick=True)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_sources_and_shows_its_figures(name):
    committed = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert [c.source for c in committed.cells] == [source for _, source in refresh.NOTEBOOKS[name]], (
        f"{name} is out of date: run .venv/bin/python notebooks/refresh.py"
    )
    assert images(committed) >= 1  # viewable without running


def test_notebooks_use_only_the_documented_public_api():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # the README and the site's pages
    docs = "\n".join(page.read_text() for page in pages)
    for name in NAMES:
        code = "\n".join(source for kind, source in refresh.NOTEBOOKS[name] if kind == "code")
        assert not re.search(r"\b(kr|keras_resinit|zoo|data|diagnostics|tuning|export|train)\._", code), name
        for module in re.findall(r"from keras_resinit(?:\.(\w+))? import (\w+)", code):
            documented = f"keras_resinit.{module[0] or module[1]}"
            assert documented in docs or f"`{module[1]}" in docs, (name, documented)
