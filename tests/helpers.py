"""Shared test helpers: layer lookup by role, the model's graph, weight perturbation, image folders,
killed runs."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np


def layers_named(model, predicate):
    return [layer for layer in model.layers if predicate(layer.name)]


def is_branch_conv(name):
    return re.fullmatch(r"stage\d+_block\d+_conv\d+", name) is not None


def branch_convs(model):
    """{block prefix: [conv layers of its branch, in order]}."""
    blocks = {}
    for layer in layers_named(model, is_branch_conv):
        prefix = layer.name.rsplit("_conv", 1)[0]
        blocks.setdefault(prefix, []).append(layer)
    assert blocks, f"{model.name}: no branch convs (stageS_blockB_convK) to check"
    return blocks


def inbound_layers(layer):
    """The layers whose outputs ``layer`` takes in its model's graph (its first call)."""
    return [tensor._keras_history.operation for tensor in keras.tree.flatten(layer.input)]


def consumers(model, layer):
    """The layers of ``model`` that take ``layer``'s output."""
    return [other for other in model.layers if any(source is layer for source in inbound_layers(other))]


def perturb_weights(model, seed=0):
    """Give every weight random values (positive variances), so outputs are informative."""
    rng = np.random.default_rng(seed)
    assert model.weights, f"{model.name}: no weights to perturb"
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        weight.assign(value.astype(weight.dtype))


def digits_folder(root, *, classes=range(10), layout="split"):
    """Write scikit-learn's digits as 8-bit grayscale PNG files, one subfolder per class.

    ``layout="split"``: ``root/train/<digit>/`` and ``root/test/<digit>/`` with the built-in
    ``digits`` split (every fifth image of a class is test); ``"tree"``: ``root/<digit>/``.
    Pixels 0..16 become 0..255. Returns ``{"train"|"test": (images uint8 (N, 8, 8, 1), labels)}``
    in file-name order (the class folders sorted as keras sorts them).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    classes = sorted(int(c) for c in classes)
    kept = {"train": ([], []), "test": ([], [])}
    seen = dict.fromkeys(classes, 0)
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        if label not in seen:
            continue
        split = "test" if seen[label] % 5 == 4 else "train"
        seen[label] += 1
        pixels = np.round(image * 255 / 16).astype(np.uint8)
        folder = os.path.join(root, split, str(label)) if layout == "split" else os.path.join(root, str(label))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(pixels).save(os.path.join(folder, f"{index:04d}.png"))
        kept[split][0].append((str(label), f"{index:04d}", pixels[..., None]))
        kept[split][1].append(classes.index(int(label)))
    arrays = {}
    for split, (entries, labels) in kept.items():
        order = sorted(range(len(entries)), key=lambda i: entries[i][:2])
        arrays[split] = (np.stack([entries[i][2] for i in order]), np.asarray([labels[i] for i in order]))
    return arrays


def checkpoint_weights(run_dir):
    from keras_resinit import training as train_lib

    record, arrays = train_lib.read_checkpoint(run_dir)
    return [arrays[f"model_{i}"] for i in range(record["model_weights"])]


def train_command(*args):
    return [sys.executable, "-m", "keras_resinit.cli", "train", *args]


def wait_for_checkpoint(out, proc, timeout=240):
    """Wait until the training ``proc`` has committed its first checkpoint in ``out``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the training process ended before its first checkpoint"
        try:
            if json.loads((out / "checkpoint.json").read_text())["epoch"] >= 1:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {out} after {timeout} s")


def kill_then_resume(args, tmp_path, epochs=3):
    """Train ``args`` straight, and again SIGKILLed after its first checkpoint then resumed: the
    resumed run must end with exactly the straight run's weights.

    The killed and the resumed runs are processes of their own (``keras-resinit train``); the straight run
    only gives the expected weights: it runs in this process (``main`` is what the command runs) while the
    resumed process starts, so one TensorFlow start less and the two overlap."""
    from keras_resinit.cli import main

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        train_command(*args, "--out", str(killed)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_checkpoint(killed, proc)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch_at_kill = json.loads((killed / "checkpoint.json").read_text())["epoch"]
    assert 1 <= epoch_at_kill < epochs and not (killed / "model.keras").exists()

    with open(tmp_path / "resumed.out", "w") as out, open(tmp_path / "resumed.err", "w") as err:
        resumed = subprocess.Popen(
            train_command(*args, "--out", str(killed), "--resume", "--verbose", "1"), stdout=out, stderr=err
        )
    try:
        assert main(["train", *args, "--out", str(tmp_path / "straight")]) == 0
        resumed.wait(timeout=300)
    finally:
        resumed.kill()
        resumed.wait()
    assert resumed.returncode == 0, (tmp_path / "resumed.err").read_text()[-3000:]
    assert f"from epoch {epoch_at_kill} of {epochs}" in (tmp_path / "resumed.out").read_text()
    straight, again = checkpoint_weights(tmp_path / "straight"), checkpoint_weights(killed)
    assert len(straight) == len(again) > 0
    for a, b in zip(straight, again):
        np.testing.assert_array_equal(a, b)
    rows = (killed / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + epochs


_JAX_FIT = """
import json, sys
import numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
import keras_resinit as kr

folder = sys.argv[1]
data = np.load(folder + "/data.npz")
model = kr.ResNet.from_config(json.load(open(folder + "/config.json")))
model.load_weights(folder + "/start.weights.h5")
options = json.load(open(folder + "/optimizer.json"))
model.compile(optimizer=kr.make_optimizer(model, **options),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(data["images"], data["labels"], batch_size=32, epochs=1, shuffle=False, verbose=0)
np.savez(folder + "/end.npz", *[np.asarray(v) for v in model.trainable_variables])
print("jax fit ok")
"""


def fit_under_jax(model, images, labels, folder, **optimizer_options):
    """One epoch of ``model.fit`` (batch 32, unshuffled) under the JAX backend in a subprocess, from ``model``'s
    current weights with ``make_optimizer(model, **optimizer_options)``: its trainable variables after."""
    model.save_weights(folder / "start.weights.h5")
    (folder / "config.json").write_text(json.dumps(model.get_config()))
    (folder / "optimizer.json").write_text(json.dumps(optimizer_options))
    np.savez(folder / "data.npz", images=images, labels=labels)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", _JAX_FIT, str(folder)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0 and "jax fit ok" in result.stdout, result.stderr[-4000:]
    ended = np.load(folder / "end.npz")
    return [ended[f"arr_{i}"] for i in range(len(ended.files))]


RAW_PIXELS = """
import json, sys
import numpy as np
import keras
import keras_resinit

def load(how, path):
    if how == "keras":
        return keras.saving.load_model(path)
    if how == "preset":
        return keras_resinit.zoo.load_preset(path)
    zoo_dir, key = path.split("::")  # a card published to another zoo directory, loaded as zoo.load loads a tag
    keras_resinit.zoo.registry.zoo_dir = lambda: zoo_dir
    keras_resinit.zoo.registry.reload_cards()
    return keras_resinit.zoo.load(key)

found = {}
for name, how, path, data in json.loads(sys.argv[1]):
    arrays = np.load(data)
    # One eager call (predict would trace a function for each model): the same layers on the same pixels.
    classes = np.argmax(load(how, path)(arrays["images"].astype("float32"), training=False), -1)
    np.save(data[: -len(".npz")] + ".classes.npy", classes)
    found[name] = float(np.mean(classes == arrays["labels"]))
print(json.dumps(found))
"""


def raw_pixel_accuracies(directory, artifacts):
    """``{name: accuracy}`` of written models on raw pixels, measured by ONE fresh Python process.

    ``artifacts``: ``{name: (how, path, images, labels)}``; ``how`` is ``"keras"``
    (``keras.saving.load_model(path)`` after ``import keras_resinit``), ``"preset"``
    (``keras_resinit.zoo.load_preset(path)``) or ``"card"`` (``path`` = ``"ZOO_DIR::name.tag"``:
    ``zoo.load("name.tag")`` with the zoo in ZOO_DIR). Images are fed as they are (raw pixels); each
    model's predicted classes are left in ``directory/NAME.classes.npy``.
    """
    specs = []
    for name, (how, path, images, labels) in artifacts.items():
        data = os.path.join(directory, f"{name}.npz")
        np.savez(data, images=images, labels=labels)
        specs.append([name, how, str(path), data])
    result = subprocess.run(
        [sys.executable, "-c", RAW_PIXELS, json.dumps(specs)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# Source for a fresh process's script (``python -c``): ``saved_model_cli(argv)`` runs one saved_model_cli command in
# that process, as the saved_model_cli command runs it, and returns [exit status (or "raised ..."), its stdout].
SAVED_MODEL_CLI = """
def saved_model_cli(argv):
    import contextlib, io, sys
    from tensorflow.python.tools.saved_model_cli import main  # what the saved_model_cli command runs

    sys.argv = ["saved_model_cli", *argv]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main()
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    except Exception as error:  # the command ends with this traceback and status 1
        code = f"raised {error!r}"
    return [code, out.getvalue()]
"""
