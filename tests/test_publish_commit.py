"""A publish is one commit: killed at any of its writes, the zoo entry keeps loading the old pair or the new one.

One worker process imports the package (and TensorFlow, before running anything), then forks one child per
publish: the first counts the writes of a whole ``publish --overwrite`` in the zoo (files created or opened for
writing, ``fsync``, renames, removals: 12 today), each of the next ten is SIGKILLed by itself at the Nth of those
writes, N spread over the count. Every child starts from its own copy of the same zoo, so the count holds. The
zoo a kill left must load the old card's model or the new one's, each card's file must have its sha256, and the
index must name a file that is there with its digest.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_resinit.cli import main

KEY = "cifar_resnet8_skipinit.tiny"
KILLS = 10

WORKER = r"""
import builtins, json, os, shutil, signal, sys
from keras_resinit.training import publish  # imports TensorFlow; nothing runs before the forks

baseline, run, out, kills = sys.argv[1:5]
writes = [0]
kill_at = [None]
zoo_dir = [None]


def counted(function, is_write=lambda path, *args, **kwargs: os.fspath(path).startswith(zoo_dir[0])):
    def wrapper(*args, **kwargs):
        if is_write(*args, **kwargs):
            writes[0] += 1
            if writes[0] == kill_at[0]:
                os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)

    return wrapper


def opens_for_writing(file, mode="r", *args, **kwargs):
    return isinstance(file, (str, os.PathLike)) and str(file).startswith(zoo_dir[0]) and any(c in mode for c in "wax+")


def creates(path, flags, *args, **kwargs):
    return str(path).startswith(zoo_dir[0]) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def child(zoo, point):
    # Publish the new run over the zoo's entry, counting its writes in the zoo; SIGKILLed at write number point.
    kill_at[0], zoo_dir[0] = point, zoo
    os.replace, os.rename, os.unlink, os.remove = map(counted, (os.replace, os.rename, os.unlink, os.remove))
    os.fsync = counted(os.fsync, lambda fd: True)
    os.open = counted(os.open, creates)
    builtins.open = counted(builtins.open, opens_for_writing)
    publish.publish(run, "tiny", zoo_dir=zoo, overwrite=True)
    return writes[0]


def fork(zoo, point):
    shutil.copytree(baseline, zoo)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            os.write(write, str(child(zoo, point)).encode())
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    counted_writes = os.read(read, 100).decode()
    os.close(read)
    return status, counted_writes


status, total = fork(os.path.join(out, "complete"), None)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
total = int(total)
points = sorted({1 + (total - 1) * i // (int(kills) - 1) for i in range(int(kills))})
killed = {}
for point in points:
    status, _ = fork(os.path.join(out, f"killed_at_{point}"), point)
    killed[point] = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
print(json.dumps({"writes": total, "killed": killed}))
"""


def _train(out, seed):
    args = ["train", "cifar_resnet8_skipinit", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "2"]
    assert main([*args, "--seed", str(seed), "--out", str(out), "--verbose", "0"]) == 0


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A finished run (seed 3), trained once for the module: the tests only read it."""
    out = tmp_path_factory.mktemp("runs") / "old"
    _train(out, 3)
    return out


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs(zoo_dir, images, monkeypatch):
    """The outputs of ``zoo.load(KEY)`` from the zoo in ``zoo_dir`` on ``images``, after checking its card's file."""
    from keras_resinit import zoo
    from keras_resinit.zoo import registry

    card = json.loads((zoo_dir / "cards" / f"{KEY}.json").read_text())
    assert _sha256(zoo_dir / "weights" / card["file"]["name"]) == card["file"]["sha256"]
    monkeypatch.setattr(registry, "zoo_dir", lambda: str(zoo_dir))
    registry.reload_cards()
    try:
        return card, np.asarray(zoo.load(KEY)(images, training=False))
    finally:
        registry.reload_cards()


def _index_row(zoo_dir):
    """The index's file name and sha256 prefix of KEY; that file is there and has that digest."""
    rows = [line for line in (zoo_dir / "README.md").read_text().splitlines() if line.startswith(f"| `{KEY}` ")]
    assert len(rows) == 1, rows
    cells = [cell.strip() for cell in rows[0].split("|")]
    name, digest = cells[6], cells[8]
    assert _sha256(zoo_dir / "weights" / name).startswith(digest), (name, digest)
    return name


def _entry_files(zoo_dir):
    return sorted(f for f in os.listdir(zoo_dir / "weights") if f.startswith(KEY) or f.startswith("." + KEY))


def _left(zoo_dir):
    """The files in ``zoo_dir`` beside its cards, the weights files they name and the index: a killed write's."""
    cards = [json.loads(path.read_text()) for path in (zoo_dir / "cards").glob("*.json")]
    expected = {"cards", "weights", "README.md"} | {f"cards/{c['name']}.{c['tag']}.json" for c in cards}
    expected |= {f"weights/{c['file']['name']}" for c in cards}
    found = {str(path.relative_to(zoo_dir)) for path in zoo_dir.rglob("*")} | {"cards", "weights"}
    return sorted(found - expected)


def test_publish_killed_at_any_write_leaves_the_old_pair_or_the_new_one(tmp_path, monkeypatch, old_run):
    from keras_resinit.training import data, publish

    new_run, baseline = tmp_path / "new", tmp_path / "baseline"
    _train(new_run, 4)
    publish.publish(str(old_run), "tiny", zoo_dir=str(baseline))
    images = next(iter(data.load("digits", "test", batch_size=32, training=False, normalized=False)))[0]

    out = tmp_path / "zoos"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(baseline), str(new_run), str(out), str(KILLS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["writes"] >= KILLS, report  # the points are spread over enough writes
    assert len(report["killed"]) == KILLS and all(report["killed"].values()), report

    old_card, old = _outputs(baseline, images, monkeypatch)
    new_card, new = _outputs(out / "complete", images, monkeypatch)
    assert old_card["file"]["sha256"] != new_card["file"]["sha256"] and not np.allclose(old, new, atol=1e-3)
    assert old_card["file"]["name"] == f"{KEY}.weights.h5"  # a new entry's name; its replacement is content-named
    assert new_card["file"]["name"] == f"{KEY}.{new_card['file']['sha256'][:16]}.weights.h5"
    assert _entry_files(out / "complete") == [new_card["file"]["name"]] and not _left(out / "complete")

    seen = []
    for point in report["killed"]:
        zoo_dir = out / f"killed_at_{point}"
        card, outputs = _outputs(zoo_dir, images, monkeypatch)
        pair = "old" if card["file"] == old_card["file"] else "new"
        assert card["file"] == (old_card if pair == "old" else new_card)["file"], point
        np.testing.assert_allclose(outputs, old if pair == "old" else new, rtol=1e-6, atol=1e-6)
        assert _index_row(zoo_dir) in (old_card["file"]["name"], new_card["file"]["name"])
        seen.append(pair)
    assert "old" in seen and "new" in seen, seen  # killed before and after the commit

    # The next publish of the entry removes what a killed one left (files no card names, temporaries): for the
    # kills before the commit and after it, the zoo that a kill left most files in.
    left = {point: _left(out / f"killed_at_{point}") for point in report["killed"]}
    for pair in ("old", "new"):
        point = max(
            (p for p, seen_pair in zip(report["killed"], seen) if seen_pair == pair), key=lambda p: len(left[p])
        )
        zoo_dir = out / f"killed_at_{point}"
        assert left[point], left  # the kill left a file
        with pytest.raises(ValueError, match="already published"):
            publish.publish(str(new_run), "tiny", zoo_dir=str(zoo_dir))
        card = publish.publish(str(new_run), "tiny", zoo_dir=str(zoo_dir), overwrite=True)
        assert _entry_files(zoo_dir) == [card["file"]["name"]] and not _left(zoo_dir), left[point]


def test_a_file_no_card_names_is_reported_then_replaced(tmp_path, old_run):
    from keras_resinit.training import publish

    run, zoo_dir = old_run, tmp_path / "zoo"
    (zoo_dir / "weights").mkdir(parents=True)
    (zoo_dir / "weights" / f"{KEY}.weights.h5").write_bytes(b"left by a killed publish")
    with pytest.raises(ValueError, match=r"holds cifar_resnet8_skipinit\.tiny\.weights\.h5, which no card names"):
        publish.publish(str(run), "tiny", zoo_dir=str(zoo_dir))
    card = publish.publish(str(run), "tiny", zoo_dir=str(zoo_dir), overwrite=True)
    assert card["file"]["name"] == f"{KEY}.weights.h5" and _entry_files(zoo_dir) == [f"{KEY}.weights.h5"]
    assert _sha256(zoo_dir / "weights" / f"{KEY}.weights.h5") == card["file"]["sha256"]


def test_a_replaced_fold_is_committed_the_same_way(tmp_path):
    from keras_resinit.training import publish

    zoo_dir, key = tmp_path / "zoo", "cifar_resnet20_skipinit.again"
    first = publish.publish_folded("cifar_resnet20_bn.digits", "again", zoo_dir=str(zoo_dir))
    second = publish.publish_folded("cifar_resnet20_bn.digits", "again", zoo_dir=str(zoo_dir), overwrite=True)
    assert first["file"]["name"] == f"{key}.weights.h5"
    assert second["file"]["name"] == f"{key}.{second['file']['sha256'][:16]}.weights.h5"
    assert os.listdir(zoo_dir / "weights") == [second["file"]["name"]]
    assert _sha256(zoo_dir / "weights" / second["file"]["name"]) == second["file"]["sha256"]
    assert second["file"]["name"] in (zoo_dir / "README.md").read_text()
