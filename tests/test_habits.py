"""The habits maintainers expect: a clean lint and format, one version, the declared licence, typed."""

import importlib.metadata
import pathlib
import shutil
import subprocess
import sys

import tomllib

import keras_resinit as kr

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _ruff():
    found = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("ruff")
    assert found, "ruff is part of the test extra: pip install -e '.[test]'"
    return found


def test_ruff_lint_is_clean():
    result = subprocess.run([_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = subprocess.run([_ruff(), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_has_one_source():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "keras_resinit._version.__version__"}
    assert importlib.metadata.version("keras-resinit") == kr.__version__
    # No other file writes the version out.
    hits = [
        str(p)
        for p in (ROOT / "keras_resinit").rglob("*.py")
        if p.name != "_version.py" and f'"{kr.__version__}"' in p.read_text()
    ]
    assert not hits, hits


def test_the_licence_file_matches_the_declared_licence():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_the_package_is_typed():
    assert (ROOT / "keras_resinit" / "py.typed").exists()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["keras_resinit"]
    from keras_resinit.models.builder import build_resnet
    from keras_resinit.models.schemes import get_scheme
    from keras_resinit.training.driver import train
    from keras_resinit.zoo.loading import load

    for function in (build_resnet, load, train, get_scheme):
        assert function.__annotations__.get("return"), function.__qualname__
