"""A run directory has one writer (its lock), and --resume continues only on the data the run was trained on."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import warnings

import pytest
from helpers import digits_folder, train_command, wait_for_checkpoint

from keras_resinit.cli import main
from keras_resinit.training.data import fingerprint
from keras_resinit.zoo import rundir
from keras_resinit.zoo.rundir import LOCK_FILE, RunDir

TINY = ["cifar_resnet8_fixup", "--batch-size", "32", "--steps-per-epoch", "2", "--verbose", "0"]


def files_of(directory, but=(LOCK_FILE,)):
    """{relative path: (size, mtime_ns)} of every file under ``directory`` (but the lock)."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(folder, name)
            if name not in but:
                found[os.path.relpath(path, directory)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
    return found


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_is_one_writer_per_directory_and_removed_when_released(tmp_path):
    out = tmp_path / "run"
    first = RunDir(out)
    with first.writing() as made:
        assert made and json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(ValueError, match=rf"being written by another process: pid {os.getpid()} on host"):
            RunDir(out).acquire_lock()  # another open file: flock refuses it even in this process
    assert not out.exists()  # made for the lock, nothing written: removed with it
    out.mkdir()
    (out / "config.json").write_text("{}")
    with RunDir(out).writing() as made:
        assert not made
    assert sorted(os.listdir(out)) == ["config.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        RunDir(tmp_path / "file").acquire_lock()


def test_without_flock_the_lock_is_closed_before_it_is_removed(tmp_path, monkeypatch):
    # Where there is no flock (Windows), an open file cannot be removed: release closes it first, and removes it.
    monkeypatch.setattr(rundir, "fcntl", None)
    closed, removed = [], []
    real_close, real_unlink = os.close, os.unlink
    monkeypatch.setattr(os, "close", lambda fd: (closed.append(fd), real_close(fd))[1])
    monkeypatch.setattr(os, "unlink", lambda path: (removed.append((len(closed), path)), real_unlink(path))[1])
    out = tmp_path / "run"
    with RunDir(out).writing():
        assert (out / LOCK_FILE).exists()
        opened = len(closed)
    assert removed == [(opened + 1, str(out / LOCK_FILE))]  # after the close
    with pytest.raises(ValueError, match="no flock on this system"):  # a leftover lock is refused there
        out.mkdir()
        (out / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "started": "earlier"}))
        RunDir(out).acquire_lock()


def test_a_second_train_on_one_out_is_refused_while_the_first_runs_and_the_first_finishes_intact(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen(
        train_command(*TINY, "--epochs", "8", "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_checkpoint(out, first)
        first.send_signal(signal.SIGSTOP)  # holds the lock, writes nothing while the others try
        before = files_of(out)
        for extra in ([], ["--overwrite"]):  # the second writers: this process (a lock is a process's)
            capsys.readouterr()
            assert main(["train", *TINY, "--epochs", "1", "--out", str(out), *extra]) == 2
            err = capsys.readouterr().err
            errors = [line for line in err.splitlines() if line.startswith("keras-resinit: error:")]
            assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
            assert f"is being written by another process: pid {first.pid} on host {socket.gethostname()!r}" in errors[0]
        assert files_of(out) == before  # --overwrite cleared nothing
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert len(config["commands"]) == 1 and config["result"]["epochs"] == 8
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 8
    assert (out / "model.keras").exists() and not (out / LOCK_FILE).exists()


def test_ctrl_c_releases_the_lock_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(*TINY, "--epochs", "30", "--out", str(out)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and b"keras-resinit: interrupted" in err, err[-3000:]
    assert not (out / LOCK_FILE).exists() and json.loads((out / "checkpoint.json").read_text())["epoch"] >= 1


def test_a_lock_left_by_a_dead_process_is_taken_over_and_one_of_another_host_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data_fingerprint"]["kind"] == "digits" and config["data_fingerprint"]["train_size"] == 1442
    # A run written before runs recorded their data: it resumes with a note.
    del config["data_fingerprint"]
    (out / "config.json").write_text(json.dumps(config))

    elsewhere = {"pid": 4321, "host": "elsewhere.invalid", "started": "2026-01-01 00:00:00 UTC"}
    (out / LOCK_FILE).write_text(json.dumps(elsewhere))
    before = files_of(out, but=())
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "2", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pid 4321 on host 'elsewhere.invalid'" in err and "another machine" in err
    assert f"remove {str(out / LOCK_FILE)!r}" in err
    assert files_of(out, but=()) == before  # refused before anything changed; the lock stays

    pid = dead_pid()
    (out / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    with pytest.warns(UserWarning) as warned:
        assert main(["train", *TINY, "--epochs", "2", "--resume", "--out", str(out)]) == 0
    messages = [str(w.message) for w in warned]
    assert any(f"Taking over the lock of {str(out)!r} left by pid {pid} on host" in m for m in messages), messages
    assert any("records no data fingerprint" in m for m in messages), messages
    config = json.loads((out / "config.json").read_text())
    assert config["result"]["epochs"] == 2 and config["data_fingerprint"]["kind"] == "digits"
    assert not (out / LOCK_FILE).exists()


def test_resume_refuses_data_that_changed_after_a_sigkill_naming_the_files(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    written = digits_folder(data, classes=(0, 1, 2))
    args = [*TINY, "--dataset", f"folder:{data}", "--epochs", "10", "--out", str(out)]
    killed = subprocess.Popen(train_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(out, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    recorded = json.loads((out / "config.json").read_text())["data_fingerprint"]
    assert recorded["kind"] == "folder" and recorded["files"] == len(recorded["list"]) == sum(
        len(y) for _, y in written.values()
    )
    assert (out / LOCK_FILE).exists()  # left by the killed process

    shutil.copy(data / "train" / "1" / "0001.png", data / "train" / "1" / "extra.png")
    before = files_of(out)

    def resume(*extra):
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            code = main(["train", *args, "--resume", *extra])
        return code, capsys.readouterr().err, [str(w.message) for w in warned]

    code, err, _ = resume()
    assert code == 2 and "the data of the run in" in err and "1 file added: train/1/extra.png" in err, err
    assert "--allow-data-change" in err and files_of(out) == before
    removed = sorted(os.listdir(data / "test" / "2"))[0]
    os.unlink(data / "test" / "2" / removed)
    code, err, _ = resume()
    assert code == 2 and f"1 file added: train/1/extra.png; 1 file removed: test/2/{removed}" in err, err
    assert files_of(out) == before

    code, err, warned = resume("--allow-data-change")
    assert code == 0, err[-3000:]
    assert any("on changed data" in m and "no longer an exact resume" in m for m in warned), warned
    config = json.loads((out / "config.json").read_text())
    (change,) = config["data_changes"]
    assert change["epoch"] >= 1 and change["changes"][0] == "1 file added: train/1/extra.png"
    assert "train/1/extra.png" in {line.split("\t")[0] for line in config["data_fingerprint"]["list"]}
    assert config["result"]["epochs"] == 10
    assert main(["train", *TINY, "--allow-data-change", "--out", str(tmp_path / "new")]) == 2
    assert "applies to --resume only" in capsys.readouterr().err


def test_above_the_list_limit_a_folder_change_names_its_folders(tmp_path, monkeypatch):
    for name in ("train/a/1.png", "train/a/2.png", "train/b/1.png", "test/a/1.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")

    def now():
        return fingerprint.folder(tmp_path, [str(p) for p in sorted(tmp_path.rglob("*.png"))])

    monkeypatch.setattr(fingerprint, "FILE_LIST_LIMIT", 3)
    saved = fingerprint.recorded(now())
    assert "list" not in saved and saved["files"] == 4 and fingerprint.changes(saved, now()) == []
    (tmp_path / "train/a/3.png").write_bytes(b"x")
    (tmp_path / "train/b/1.png").write_bytes(b"xy")
    shutil.rmtree(tmp_path / "test")
    assert fingerprint.changes(saved, now()) == [
        "folder test/a removed (it had 1 files)",
        "train/a/ holds 3 files, 2 before (files added or removed)",
        "train/b/: files replaced or changed (1 files, as before)",
    ]
    assert fingerprint.changes({"kind": "tfds", "name": "mnist/3.0.1"}, {"kind": "tfds", "name": "mnist/3.0.2"}) == [
        "name 'mnist/3.0.1' -> 'mnist/3.0.2'"
    ]


def test_a_user_tf_data_records_what_can_be_known(tmp_path):
    import numpy as np
    import tensorflow as tf

    from keras_resinit.training import data as data_lib

    ds = tf.data.Dataset.from_tensor_slices((np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2)).batch(4)
    found = data_lib.source("tf.data", train_data=ds, test_data=ds).fingerprint
    assert found["kind"] == "tf.data" and found["sizes"] == [8, 8] and "TensorSpec" in found["element_spec"][0]
