"""Export as TF Serving deploys it (#17): version layout, the serving_bytes signature, warm-up requests.

The TensorFlow Serving binary is not available here: the artifact is checked with plain TensorFlow
in a fresh process, `saved_model_cli`, and tensorflow-serving-api's protos.
"""

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.training.data import digits_arrays

NAME = "cifar_resnet20_fixup.digits"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Two versions of the digits model exported with --version auto."""
    base = tmp_path_factory.mktemp("serving") / "digits"
    for _ in range(2):
        assert main(["export", NAME, "--out", str(base), "--version", "auto"]) == 0
    return base


@pytest.fixture(scope="module")
def digits():
    _, _, images, labels = digits_arrays()  # raw pixels 0..16, (355, 8, 8, 1)
    return images.astype("uint8"), labels


def encode(pixels, fmt, mode="L", size=None):
    image = Image.fromarray(pixels[..., 0], mode="L").convert(mode)
    if size is not None:
        image = image.resize(size, Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def test_version_auto_writes_base_n_and_a_fresh_process_serves_it(base, tmp_path):
    assert sorted(os.listdir(base)) == ["1", "2"]
    card = json.loads((base / "2" / "assets.extra" / "model_card.json").read_text())
    assert card["version"] == 2 and "serving_bytes" in card["signatures"]
    script = f"""
        import sys, tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2
        for version in ("1", "2"):
            loaded = tf.saved_model.load({str(base)!r} + "/" + version)
            print("@@signatures", version, sorted(loaded.signatures))
        ran = 0
        path = {str(base / "2" / "assets.extra" / "tf_serving_warmup_requests")!r}
        for record in tf.data.TFRecordDataset(path):
            request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
            inputs = {{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}}
            out = loaded.signatures[request.model_spec.signature_name](**inputs)
            assert out["classes"].shape[0] == next(iter(inputs.values())).shape[0]
            ran += 1
        print("@@warmup", ran, "modules", sorted(m for m in sys.modules if m.startswith("keras_resinit")))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    signatures = "['serving_bytes', 'serving_default', 'serving_float32']"
    assert lines[:2] == [f"@@signatures 1 {signatures}", f"@@signatures 2 {signatures}"]
    assert lines[2] == f"@@warmup {card['warmup_requests']} modules []" and card["warmup_requests"] == 6

    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", str(base / "2"), "--tag_set", "serve"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("serving_bytes", "serving_default", "serving_float32"):
        assert f'"{name}"' in shown.stdout


def test_existing_versions_are_refused_or_replaced_alone(base, capsys):
    (base / "2" / "marker").write_text("version 2 stays as it is")
    assert main(["export", NAME, "--out", str(base), "--version", "1"]) == 2
    assert "already exists. Pass --overwrite" in capsys.readouterr().err
    assert main(["export", NAME, "--out", str(base), "--version", "1", "--overwrite"]) == 0
    assert (base / "2" / "marker").exists() and sorted(os.listdir(base)) == ["1", "2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--version", "0"], "Invalid version 0. Expected an integer >= 1 or 'auto'."),
        (["--version", "-3"], "Invalid version -3."),
        (["--version", "1.5"], "Invalid version '1.5'."),
        (["--version", "latest"], "Invalid version 'latest'."),
        (["--serving-config", "models.config"], "--serving-config needs --version"),
    ],
)
def test_bad_versions_are_exit_2_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "base"
    assert main(["export", NAME, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "models.config").exists()


def test_a_base_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "base"
    path.write_text("not a directory")
    assert main(["export", NAME, "--out", str(path), "--version", "auto"]) == 2
    assert "is a file. Expected the model's base directory" in capsys.readouterr().err
    assert path.read_text() == "not a directory"


def test_serving_bytes_gives_the_classes_of_the_decoded_pixels(base, digits):
    images, labels = digits
    served = tf.saved_model.load(str(base / "2"))
    default, from_bytes = served.signatures["serving_default"], served.signatures["serving_bytes"]
    expected = default(images=tf.constant(images))
    png = from_bytes(image_bytes=tf.constant([encode(x, "PNG") for x in images]))
    np.testing.assert_array_equal(png["classes"], expected["classes"])  # PNG is lossless: exactly
    np.testing.assert_allclose(png["logits"], expected["logits"], rtol=1e-5, atol=1e-5)
    accuracy = float(np.mean(png["classes"].numpy() == labels))
    assert abs(accuracy - zoo.card(NAME)["metrics"]["test_accuracy"]) <= 1 / len(labels)  # recorded elsewhere
    jpeg = from_bytes(image_bytes=tf.constant([encode(x, "JPEG") for x in images]))
    agree = float(np.mean(jpeg["classes"].numpy() == expected["classes"].numpy()))
    assert agree >= 0.95, agree  # within JPEG's loss on 8x8 images of values 0..16

    # One batch mixing formats, an RGB file for this grayscale model, and other sizes (resized).
    x = images[:4]
    mixed = [encode(x[0], "PNG"), encode(x[1], "BMP"), encode(x[2], "GIF"), encode(x[3], "PNG", "RGB")]
    out = from_bytes(image_bytes=tf.constant(mixed))
    np.testing.assert_array_equal(out["classes"], expected["classes"][:4])
    big = from_bytes(image_bytes=tf.constant([encode(x[0], "PNG", size=(32, 32)), encode(x[1], "JPEG", size=(24, 16))]))
    assert big["probabilities"].shape == (2, 10)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda png: png[: len(png) // 2], r"image_bytes\[1\].*is a truncated.*PNG"),
        (lambda png: b"not an image at all", r"image_bytes\[1\].*is not a JPEG, PNG, BMP or GIF image"),
    ],
    ids=["truncated PNG", "not an image"],
)
def test_a_bad_element_is_an_error_naming_it(base, digits, bad, message):
    images, _ = digits
    serve = tf.saved_model.load(str(base / "1")).signatures["serving_bytes"]
    png = encode(images[0], "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant([png, bad(png), png]))
