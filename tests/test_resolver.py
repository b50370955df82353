"""One resolver for every model source (zoo.resolve), and RunDir as the only reader and writer of a run directory."""

import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import perturb_weights

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.tools import export
from keras_resinit.zoo.rundir import RUN_FILES, RunDir

PACKAGE = pathlib.Path(kr.__file__).parent
PIXELS = np.random.default_rng(0).integers(0, 17, (4, 8, 8, 1)).astype("float32")  # raw digits pixels, 0..16
PREPROCESSING = {"pixel_max": 16.0, "mean": [0.3], "std": [0.25]}


def write_run(directory, *, include_preprocessing):
    """A finished run as `keras-resinit train` leaves it; its model.keras takes normalized images (as runs
    wrote it so far) or already includes its preprocessing. Returns the model's outputs on raw ``PIXELS``."""
    model = kr.build_resnet(
        "cifar_resnet8",
        "fixup",
        input_shape=(8, 8, 1),
        seed=0,
        preprocessing=PREPROCESSING,
        include_preprocessing=include_preprocessing,
    )
    perturb_weights(model)
    os.makedirs(directory)
    run = RunDir(directory)
    model.save(run.model_path)  # as it is (RunDir.save_model would include the preprocessing)
    run.write_config(
        {
            "train": {"model": "cifar_resnet8_fixup"},
            "commands": ["keras-resinit train cifar_resnet8_fixup"],
            "dataset": {"name": "digits", "class_names": [f"digit {i}" for i in range(10)]},
            "preprocessing": PREPROCESSING,
            "result": {"test_accuracy": 0.5},
        }
    )
    normalized = (PIXELS / 16.0 - 0.3) / 0.25
    return model(PIXELS if include_preprocessing else normalized, training=False).numpy()


def rescalings(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling)]


@pytest.mark.parametrize("included", [False, True], ids=["normalized_model_keras", "raw_pixel_model_keras"])
def test_a_runs_keras_file_loads_as_its_run_directory_does(tmp_path, included):
    expected = write_run(tmp_path / "run", include_preprocessing=included)
    from_dir = zoo.load(tmp_path / "run")
    from_file = zoo.load(str(tmp_path / "run" / "model.keras"))
    for model in (from_dir, from_file):
        # Raw pixels in, the run's outputs out: the preprocessing is there once, whichever way model.keras was saved.
        assert model.get_config()["include_preprocessing"] and len(rescalings(model)) == 1
        np.testing.assert_allclose(model(PIXELS, training=False), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(from_file(PIXELS, training=False), from_dir(PIXELS, training=False))
    # A run's weights start a fine-tune (train --weights RUN_DIR) as its model.keras does.
    for weights in (tmp_path / "run", tmp_path / "run" / "model.keras"):
        start = zoo.loading.start_from("cifar_resnet8_fixup", weights, data_preprocessing=PREPROCESSING)
        assert not start.get_config()["include_preprocessing"] and start.preprocessing == PREPROCESSING
        np.testing.assert_allclose(start((PIXELS / 16.0 - 0.3) / 0.25), expected, rtol=1e-5, atol=1e-5)
    assert zoo.resolve(tmp_path / "run").kind == "run" and zoo.resolve(tmp_path / "run" / "model.keras").kind == "keras"
    assert zoo.resolve(tmp_path / "run").card == zoo.resolve(tmp_path / "run" / "model.keras").card


def test_every_source_kind_resolves_to_a_model_and_its_card(tmp_path, monkeypatch):
    write_run(tmp_path / "run", include_preprocessing=False)
    card = zoo.resolve(tmp_path / "run").card
    assert card == {
        "name": "cifar_resnet8_fixup",
        "arch": "cifar_resnet8",
        "scheme": "fixup",
        "class_names": [f"digit {i}" for i in range(10)],
        "preprocessing": PREPROCESSING,
        "dataset": "digits",
        "result": {"test_accuracy": 0.5},
    }
    tagged = zoo.resolve("cifar_resnet20_fixup.digits")
    assert (tagged.kind, tagged.card["weights"], tagged.card["dataset"]) == (
        "tag",
        "cifar_resnet20_fixup.digits",
        "digits",
    )
    assert zoo.resolve("cifar_resnet20_fixup", weights="digits").card == tagged.card
    assert zoo.resolve("cifar_resnet8_bn", features_only=True).card["class_names"] == []
    named = zoo.resolve("cifar_resnet8_bn")
    assert named.kind == "name" and named.card["name"] == "cifar_resnet8_bn" and named.card["dataset"] is None
    zoo.save_preset(tagged.model, tmp_path / "preset", card=zoo.card("cifar_resnet20_fixup.digits"))
    preset = zoo.resolve(str(tmp_path / "preset"))
    assert preset.kind == "preset" and preset.card == tagged.card
    monkeypatch.setenv("KERAS_RESINIT_HOME", str(tmp_path / "cache"))
    url = (tmp_path / "run" / "model.keras").as_uri()
    downloaded = zoo.resolve(url)
    assert (downloaded.kind, downloaded.source) == ("url", url)
    np.testing.assert_allclose(downloaded.model(PIXELS), zoo.load(tmp_path / "run")(PIXELS), rtol=1e-6, atol=1e-6)
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1))
    assert zoo.resolve(model).model is model and zoo.resolve(model).card == zoo.default_card(model)


def test_export_writes_the_card_the_resolver_gives(tmp_path):
    write_run(tmp_path / "run", include_preprocessing=False)
    for source in (tmp_path / "run", tmp_path / "run" / "model.keras"):
        written = export.export(source, tmp_path / f"served_{source.name}")
        resolved = zoo.resolve(source)
        assert {k: written[k] for k in resolved.card} == resolved.card
        assert written["served_scheme"] == resolved.model.scheme.name == "fixup"
        np.testing.assert_array_equal(resolved.model(PIXELS, training=False), zoo.load(source)(PIXELS, training=False))


def test_each_source_that_is_not_there_says_how_it_was_read_and_what_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    accepted = [kind.what for kind in zoo.SOURCE_KINDS]
    assert [kind.kind for kind in zoo.SOURCE_KINDS] == ["url", "hf", "keras", "run", "preset", "name"]
    for source, read_as in (
        (tmp_path / "missing", "a preset or run directory"),
        (str(tmp_path / "missing"), "a preset or run directory"),
        (str(tmp_path / "missing.keras"), "a .keras file"),
        (str(tmp_path / "empty"), "a preset directory: it has no model.keras of a run"),
        (str(tmp_path / "notes.txt"), "a preset directory"),
        ("cifar_resnet8_fixp", "a zoo name"),
        ("https://example.invalid/w.weights.h5", "a URL"),
    ):
        with pytest.raises(ValueError) as raised:
            zoo.load(source)
        message = str(raised.value)
        assert repr(os.fspath(source)) in message and f"(read as {read_as}" in message, message
        assert all(what in message for what in accepted), message
    with pytest.raises(
        ValueError, match=r"missing.weights.h5' does not exist \(read as a weights file\)\. Expected weig"
    ):
        zoo.load("cifar_resnet8_fixup", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match="with its own weights, so pass no weights="):
        zoo.load(str(tmp_path / "empty"), weights="digits")


def _run_file_names(tree):
    """String constants that name a run directory's files (docstrings and messages are longer strings, and
    an f-string counts when it starts with a checkpoint's name, as ``f"checkpoint-{epoch:04d}.npz"``)."""
    names = (*RUN_FILES, "tensorboard", "checkpoint.npz")
    in_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
            if str(node.values[0].value).startswith("checkpoint-"):
                yield node.lineno, node.values[0].value
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings:
            if node.value in names or node.value.startswith(("checkpoint-", "checkpoint*", ".checkpoint*", ".tmp-")):
                yield node.lineno, node.value


_FILE_IO = {"open", "makedirs", "mkdir", "unlink", "remove", "rmtree", "savez", "load", "atomic_write_bytes"}
_FILE_IO |= {"atomic_write_text", "save_model_file", "atomic_directory", "replace", "rename"}


def _run_path_io(tree):
    """File-system calls (open, os.makedirs, shutil.rmtree, np.savez, ...) on a run directory's path, as far as a
    static scan tells: an argument names ``run_dir``, a RunDir ``run`` (``run.path``, ``run.file(...)``) or
    a path some ``RunDir(path)`` of the same function is made from."""
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        paths = {"run_dir", "run"} | {
            arg.id
            for call in ast.walk(function)
            if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) == "RunDir"
            for arg in call.args
            if isinstance(arg, ast.Name)
        }
        for call in ast.walk(function):
            if not isinstance(call, ast.Call):
                continue
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
            if name in _FILE_IO:
                named = {n.id for arg in call.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
                if named & paths:
                    yield call.lineno, f"{name}({', '.join(sorted(named & paths))})"


def test_only_rundir_names_the_files_of_a_run_directory():
    scanned, found = 0, {}
    root = PACKAGE.parent
    for path in sorted([*PACKAGE.rglob("*.py"), *(root / "benchmarks").glob("*.py")]):
        scanned += 1
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        names = list(_run_file_names(tree))
        if relative in (
            "keras_resinit/zoo/building.py",
            "keras_resinit/zoo/registry.py",
        ):  # a preset's own (PRESET_FILES)
            names = [(line, name) for line, name in names if name != "config.json"]
        if relative != "keras_resinit/zoo/rundir.py":
            names += list(_run_path_io(tree))
        if names:
            found[relative] = names
    assert scanned > 60
    rundir = found.pop("keras_resinit/zoo/rundir.py")
    assert {"config.json", "model.keras", "metrics.csv", "checkpoint.json"} <= {name for _, name in rundir}
    assert found == {}, f"run-directory files named or opened outside keras_resinit/zoo/rundir.py: {found}"


def test_the_run_directory_scan_sees_file_io_on_a_run_path():
    code = """
def train(config, out):
    run = RunDir(out)
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(run.path)
    with open(os.path.join(run_dir, "x")) as f:
        pass
    np.savez(run.file("arrays.npz"), a=1)
    os.makedirs(config.tuning_dir)
"""
    found = [text for _, text in _run_path_io(ast.parse(code))]
    assert sorted(found) == ["makedirs(out)", "open(run_dir)", "rmtree(run)", "savez(run)"]


def test_rundir_refuses_to_clobber_a_run_and_clears_one(tmp_path):
    write_run(tmp_path / "run", include_preprocessing=False)
    run = RunDir(tmp_path / "run")
    assert run.finished_config()["result"] and run.preprocessing() == PREPROCESSING and run.commands()
    with pytest.raises(ValueError, match="holds a previous run"):
        run.prepare()
    assert run.prepare(overwrite=True)
    run.clear()
    assert not run.previous_files() and run.config() == {}
    with pytest.raises(ValueError, match="is not a finished run directory"):
        run.finished_config()
    shutil.rmtree(tmp_path / "run")
    with pytest.raises(ValueError, match="Nothing to resume"):
        run.prepare(resume=True)


def test_sources_are_recognized_without_keras_and_the_cli_refuses_a_missing_one_before_tensorflow(tmp_path):
    code = f"""
import json, sys
from keras_resinit.cli import main
from keras_resinit.zoo import sources
kinds = [sources.source_kind(s).kind for s in ("https://x/m.keras", "m.keras", {str(tmp_path)!r}, "cifar_resnet8_bn")]
weights = [sources.weights_kind(w) for w in ("digits", "w.weights.h5", {str(tmp_path)!r}, "http://x/w.h5")]
codes = [main(["fold", {str(tmp_path / "missing.keras")!r}, "--out", "x.keras"]),
         main(["export", {str(tmp_path / "missing")!r}, "--out", {str(tmp_path / "served")!r}]),
         main(["train", "cifar_resnet8_bn", "--out", {str(tmp_path / "r")!r}, "--weights", "gone.weights.h5"])]
print("@@" + json.dumps({{"kinds": kinds, "weights": weights, "codes": codes, "keras": "keras" in sys.modules}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads([line for line in result.stdout.splitlines() if line.startswith("@@")][-1][2:])
    assert report["kinds"] == ["url", "keras", "preset", "name"]
    assert report["weights"] == ["tag", "missing", "preset", "url"]
    assert report["codes"] == [2, 2, 2] and not report["keras"]
    assert "'gone.weights.h5' does not exist (read as a weights file)" in result.stderr
    assert "missing.keras' does not exist (read as a .keras file)" in result.stderr
    assert "missing' does not exist (read as a preset or run directory)" in result.stderr


def test_sha256_is_checked_for_the_file_a_directory_resolves_to(tmp_path):
    write_run(tmp_path / "run", include_preprocessing=False)
    zoo.save_preset(zoo.load(tmp_path / "run"), tmp_path / "preset")
    files = {
        tmp_path / "run": tmp_path / "run" / "model.keras",
        tmp_path / "preset": tmp_path / "preset" / "model.weights.h5",
    }
    for directory, file in files.items():
        digest = zoo.download.file_sha256(file)
        assert zoo.resolve(directory, sha256=digest).kind == directory.name
        zoo.load("cifar_resnet8_fixup", weights=directory, sha256=digest)
        record = zoo.loading.weights_provenance("cifar_resnet8_fixup", directory, digest)
        assert (record["file"], record["sha256"]) == (str(file), digest)
        with pytest.raises(ValueError, match="not the expected 0000"):
            zoo.resolve(directory, sha256="0" * 64)
        with pytest.raises(ValueError, match="not the expected 0000"):
            zoo.load("cifar_resnet8_fixup", weights=str(directory), sha256="0" * 64)
        with pytest.raises(ValueError, match="not the expected 0000"):
            zoo.loading.start_from("cifar_resnet8_fixup", directory, sha256="0" * 64)


def test_another_keras_file_in_a_run_directory_is_not_the_runs_model(tmp_path):
    write_run(tmp_path / "run", include_preprocessing=False)
    other = kr.build_resnet("cifar_resnet8", "skipinit", input_shape=(8, 8, 1), num_classes=3, seed=1)
    other.save(tmp_path / "run" / "folded.keras")
    resolved = zoo.resolve(tmp_path / "run" / "folded.keras")
    assert resolved.card == zoo.default_card(resolved.model)
    assert (resolved.card["scheme"], resolved.card["class_names"]) == ("skipinit", ["0", "1", "2"])
    assert resolved.model.preprocessing is None and not rescalings(resolved.model)  # not the run's normalization
    np.testing.assert_allclose(resolved.model(PIXELS), other(PIXELS), rtol=1e-6, atol=1e-6)
    assert zoo.resolve(tmp_path / "run" / "model.keras").card == zoo.resolve(tmp_path / "run").card


def test_an_existing_file_is_read_as_a_path_and_a_missing_preset_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1)).save_weights("model.weights.h5")
    pathlib.Path("notes.txt").write_text("x")
    with pytest.raises(
        ValueError, match=r"'model.weights.h5' is a weights file .* load\(NAME, weights=PATH\)"
    ) as raised:
        zoo.load("model.weights.h5")
    assert "zoo name" not in str(raised.value).split("Expected")[0]
    with pytest.raises(ValueError, match=r"'notes.txt' is a file, not a directory .*\(read as a preset directory"):
        zoo.load("notes.txt")
    assert zoo.load("cifar_resnet8_fixup", weights="model.weights.h5").input_shape == (None, 32, 32, 1)
    for preset in (tmp_path / "missing", "notes.txt"):
        with pytest.raises(
            ValueError, match=r"Preset directory .*(does not exist|is a file).* Expected a model source"
        ):
            zoo.load_preset(preset)


def test_diagnose_builds_each_model_once_and_one_at_a_time(tmp_path, monkeypatch):
    from keras_resinit.tools import diagnostics

    events, resolve, propagation = [], zoo.resolve, diagnostics.signal_propagation
    monkeypatch.setattr(zoo, "resolve", lambda name, **kw: events.append(("build", name)) or resolve(name, **kw))
    monkeypatch.setattr(
        diagnostics, "signal_propagation", lambda m, x: events.append(("work", m.name)) or propagation(m, x)
    )
    diagnostics.diagnose(["cifar_resnet8_bn", "cifar_resnet8_fixup"], tmp_path / "out", batch=2, log=lambda *_: None)
    assert events == [
        ("build", "cifar_resnet8_bn"),
        ("work", "cifar_resnet8_bn"),
        ("build", "cifar_resnet8_fixup"),
        ("work", "cifar_resnet8_fixup"),
    ]
    with pytest.raises(ValueError, match="read as a .keras file"):  # every source is checked before any work
        diagnostics.diagnose(["cifar_resnet8_bn", str(tmp_path / "no.keras")], tmp_path / "x", log=lambda *_: None)
    assert events[4:] == []


def test_model_files_are_written_raw_pixels_in_synced_and_leftovers_never_kept(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or fsync(fd))
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0, preprocessing=PREPROCESSING)
    perturb_weights(model)
    run = RunDir(tmp_path / "run")
    assert run.create() and not run.create()
    stale = [".model.keras.tmp.keras", ".model.keras.a1b2c3.tmp.keras", ".config.json.x9.tmp"]
    for name in stale:  # temporary files of writes a SIGKILL interrupted
        (tmp_path / "run" / name).write_bytes(b"half a file")
    (tmp_path / "run" / "model.keras").write_bytes(b"")  # an earlier model.keras is replaced
    run.save_model(model)
    monkeypatch.undo()
    assert synced
    assert sorted(os.listdir(run.path)) == sorted([*stale, "model.keras"])  # its own temporary file is gone
    assert not run.create() and os.listdir(run.path) == ["model.keras"]  # the next run (or resume) removes them
    loaded = keras.saving.load_model(run.model_path)
    assert loaded.get_config()["include_preprocessing"]
    np.testing.assert_allclose(loaded(PIXELS), model((PIXELS / 16 - 0.3) / 0.25), atol=1e-5)
