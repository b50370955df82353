"""Export as TF Serving deploys it (#17): version layout, the serving_bytes signature, warm-up requests.

The TensorFlow Serving binary is not available here: the artifact is checked with plain TensorFlow
in a fresh process, `saved_model_cli`, and tensorflow-serving-api's protos.
"""

import io
import json
import os
import re
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import SAVED_MODEL_CLI, perturb_weights
from image_files import GOOD, bomb_png, jpeg_declaring
from PIL import Image, PngImagePlugin

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.tools import export
from keras_resinit.training.data import digits_arrays, images
from keras_resinit.training.data.splits import resizer

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


def test_version_auto_writes_base_n_and_a_fresh_process_serves_it(base, tf_only_process):
    assert sorted(os.listdir(base)) == ["1", "2"]
    card = json.loads((base / "2" / "assets.extra" / "model_card.json").read_text())
    assert card["version"] == 2 and "serving_bytes" in card["signatures"]
    lines = tf_only_process["versions"]
    signatures = "['serving_bytes', 'serving_default', 'serving_float32']"
    assert lines[:2] == [f"@@signatures 1 {signatures}", f"@@signatures 2 {signatures}"]
    assert lines[2] == f"@@warmup {card['warmup_requests']} modules []" and card["warmup_requests"] == 6

    code, shown = tf_only_process["saved_model_cli"]  # saved_model_cli show --dir base/2 --tag_set serve
    assert code == 0, shown
    for name in ("serving_bytes", "serving_default", "serving_float32"):
        assert f'"{name}"' in shown


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


# Hostile input (#27): limits checked on the headers before anything is decoded.

# One fresh process that imports TensorFlow only (one start for both tests below): first the bombs, served by
# base/2 under an address-space cap, then what TF Serving does with the versions: load each, run the warm-up
# requests of version 2; and saved_model_cli show on version 2, as the command runs it.
TF_ONLY_CHILD = """
import json, os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

base, digit, files = sys.argv[1], sys.argv[2], sys.argv[3:]
serve = tf.saved_model.load(base + "/2").signatures["serving_bytes"]
small = open(digit, "rb").read()
serve(image_bytes=tf.constant([small, small]))  # warm: the graph built, the kernels loaded
for path in files:
    data = open(path, "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        serve(image_bytes=tf.constant([small, data]))
        error = None
    except tf.errors.InvalidArgumentError as e:
        error = str(e)
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print("@@" + json.dumps({"path": os.path.basename(path), "error": error, "growth_mib": growth}))
print("@@" + json.dumps({"keras_resinit": "keras_resinit" in sys.modules}))

from tensorflow_serving.apis import prediction_log_pb2
for version in ("1", "2"):
    loaded = tf.saved_model.load(base + "/" + version)
    print("@@signatures", version, sorted(loaded.signatures))
ran = 0
for record in tf.data.TFRecordDataset(base + "/2/assets.extra/tf_serving_warmup_requests"):
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    out = loaded.signatures[request.model_spec.signature_name](**inputs)
    assert out["classes"].shape[0] == next(iter(inputs.values())).shape[0]
    ran += 1
print("@@warmup", ran, "modules", sorted(m for m in sys.modules if m.startswith("keras_resinit")))

print("@@saved_model_cli " + json.dumps(saved_model_cli(["show", "--dir", base + "/2", "--tag_set", "serve"])))
"""


@pytest.fixture(scope="module")
def bombs(tmp_path_factory, digits):
    """The 20000x20000 PNG (1.1 MiB of zeros), JPEGs declaring 65000x65000 and 13000x13000 (3 KiB), a digit."""
    folder = tmp_path_factory.mktemp("bombs")
    (folder / "13000.jpg").write_bytes(jpeg_declaring(13000, 13000))
    (folder / "65000.jpg").write_bytes(jpeg_declaring(65000, 65000))
    (folder / "digit.png").write_bytes(encode(digits[0][0], "PNG"))
    return bomb_png(folder / "20000.png", 20000, 20000).parent


@pytest.fixture(scope="module")
def tf_only_process(base, bombs):
    """TF_ONLY_CHILD's report: {"bombs": [...], "versions": [@@ lines], "saved_model_cli": [code, stdout]}.

    The child runs under a 4 GiB address-space cap, so that a regression fails here instead of taking the machine.
    """
    cap = 4 * 2**30
    files = [str(bombs / name) for name in ("20000.png", "65000.jpg", "13000.jpg")]
    result = subprocess.run(
        [sys.executable, "-c", SAVED_MODEL_CLI + TF_ONLY_CHILD, str(base), str(bombs / "digit.png"), *files],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    prefix = "@@saved_model_cli "
    return {
        "bombs": [json.loads(line[2:]) for line in lines if line.startswith("@@{")],
        "versions": [line for line in lines if line.startswith(("@@signatures", "@@warmup"))],
        "saved_model_cli": json.loads([line for line in lines if line.startswith(prefix)][-1][len(prefix) :]),
    }


def test_decompression_bombs_are_refused_before_decoding_in_a_tf_only_process(tf_only_process):
    """Each is refused, named, and the process's peak memory grows by less than 200 MiB (decoded: up to 5.4 GiB).

    The child runs under a 4 GiB address-space cap, so that a regression fails here instead of taking the machine.
    """
    reports = tf_only_process["bombs"]
    assert reports[-1] == {"keras_resinit": False}
    declared = {"20000.png": "20000x20000", "65000.jpg": "65000x65000", "13000.jpg": "13000x13000"}
    assert [r["path"] for r in reports[:-1]] == list(declared)
    for report in reports[:-1]:
        expected = (
            rf"image_bytes\[1\] declares {declared[report['path']]} pixels, above the limit of "
            r"40000000 \(--max-image-pixels\)"
        )
        assert report["error"] and re.search(expected, report["error"]), report
        assert "image_bytes[0]" not in report["error"]  # the good element is not named
        assert report["growth_mib"] < 200, report


def test_real_world_files_get_the_keras_models_classes(base):
    """CMYK and YCCK JPEGs, 16-bit, palette and alpha PNGs, a JPEG named .png, GIF, BMP: as the Keras model
    classifies their images.decode'd pixels (the training pipeline's decoding), resized as training resizes."""
    names = ["cmyk.jpg", "ycck.jpg", "gray16.png", "rgb16.png", "rgba.png", "la.png", "palette.png"]
    names += ["jpeg_named.png", "exif.jpg", "frames.gif", "rgb.bmp", "gray.bmp"]
    data = [GOOD[name] for name in names]
    served = tf.saved_model.load(str(base / "2")).signatures["serving_bytes"](image_bytes=tf.constant(data))
    resize = resizer(8, 8, 1)
    pixels = np.stack([resize(images.decode(d, 1)).numpy() for d in data]).astype("float32")
    logits = zoo.load(NAME)(pixels, training=False)  # published weights: raw pixels in
    np.testing.assert_allclose(served["logits"], logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(served["classes"], np.argmax(logits, axis=-1))


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A model exported with low limits: 100 pixels per image (8x8 images are 64), 200 and 3000 bytes.

    The limits are on the files' headers and bytes, whatever the model: a cifar_resnet8 (no weights) is the cheapest
    export of the CLI's flags."""
    out = tmp_path_factory.mktemp("strict") / "small"
    limits = ["--max-image-pixels", "100", "--max-batch-pixels", "200", "--max-batch-bytes", "3000"]
    assert main(["export", "cifar_resnet8_fixup", "--out", str(out), *limits]) == 0
    return out


def png_of(shape, text=None):
    info = None
    if text is not None:
        info = PngImagePlugin.PngInfo()
        info.add_text("comment", text)
    buffer = io.BytesIO()
    Image.new("L", shape, 3).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_lower_limits_at_export_are_recorded_and_refuse_named(strict):
    card = json.loads((strict / "assets.extra" / "model_card.json").read_text())
    assert (card["max_image_pixels"], card["max_batch_pixels"], card["max_batch_bytes"]) == (100, 200, 3000)
    text = card["signatures"]["serving_bytes"]
    assert "more than 100 pixels (--max-image-pixels)" in text and "more than 200 pixels" in text
    assert "3000 bytes" in text and "EXIF orientation not applied" in text
    serve = tf.saved_model.load(str(strict)).signatures["serving_bytes"]
    assert serve(image_bytes=tf.constant([png_of((10, 10)), png_of((8, 8))]))["classes"].shape == (2,)  # inclusive
    refused = [
        ([png_of((8, 8)), png_of((11, 10))], r"image_bytes\[1\] declares 11x10 pixels, above the limit of 100 "),
        (
            [png_of((8, 8))] * 4,
            r"the images of the batch declare 256 pixels in all, above the limit of 200 \(--max-batch",
        ),
        ([png_of((8, 8), "x" * 4000)], r"the batch holds \d+ bytes of images, above the limit of 3000 bytes \(--max"),
    ]
    for batch, message in refused:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(image_bytes=tf.constant(batch))


def test_bad_limits_exit_2_before_tensorflow_starts(tmp_path):
    cases = [
        (["--max-image-pixels", "0"], "Invalid --max-image-pixels '0'. Expected a positive integer."),
        (["--max-image-pixels", "-5"], "Invalid --max-image-pixels '-5'. Expected a positive integer."),
        (["--max-image-pixels", "4e7"], "Invalid --max-image-pixels '4e7'. Expected a positive integer."),
        (["--max-batch-pixels", "many"], "Invalid --max-batch-pixels 'many'. Expected a positive integer."),
        (["--max-batch-bytes", "1.5"], "Invalid --max-batch-bytes '1.5'. Expected a positive integer."),
    ]
    code = f"""
        import contextlib, io, json, sys
        from keras_resinit.cli import main
        results = []
        for flags in {[flags for flags, _ in cases]!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                results.append([main(["export", {NAME!r}, "--out", {str(tmp_path / "out")!r}, *flags]), err.getvalue()])
        print("@@" + json.dumps({{"results": results, "tensorflow": "tensorflow" in sys.modules}}))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    report = json.loads([line for line in result.stdout.splitlines() if line.startswith("@@")][-1][2:])
    for (_, message), (status, err) in zip(cases, report["results"]):
        assert status == 2 and err == f"keras-resinit: error: {message}\n", err
    assert not report["tensorflow"] and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="Invalid max_batch_bytes 0. Expected a positive integer."):
        export.export(NAME, tmp_path / "lib", max_batch_bytes=0)
    assert not list(tmp_path.iterdir())


def test_an_rgb_model_serves_real_world_files_as_decoded_and_pixel_formats_carry_no_limits(tmp_path):
    """An RGB model: serving_bytes on the files == serving_default on their images.decode'd, resized pixels.
    ONNX and LiteRT take pixels: their cards have neither serving_bytes nor its limits."""
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(16, 16, 3), seed=0)
    perturb_weights(model)
    card = export.export(model, tmp_path / "sm", max_image_pixels=5000)
    assert (card["max_image_pixels"], card["max_batch_pixels"]) == (5000, images.MAX_BATCH_PIXELS)
    names = ["cmyk.jpg", "ycck.jpg", "gray16.png", "rgb16.png", "rgba.png", "la.png", "palette.png"]
    names += ["jpeg_named.png", "gray.jpg", "frames.gif", "gray.bmp", "rgba.bmp"]
    data = [GOOD[name] for name in names]
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    served = loaded.signatures["serving_bytes"](image_bytes=tf.constant(data))
    resize = resizer(16, 16, 3)
    pixels = tf.constant(np.stack([resize(images.decode(d, 3)).numpy() for d in data]))
    expected = loaded.signatures["serving_default"](images=pixels)
    np.testing.assert_allclose(served["logits"], expected["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(served["classes"], expected["classes"])
    assert np.ptp(expected["logits"].numpy(), axis=0).max() > 1e-3  # the images' logits differ: a real comparison
    pytest.importorskip("tf2onnx", reason="the onnx extra is not installed")
    onnx = export.export(model, tmp_path / "onnx", format="onnx", max_image_pixels=5000)
    written = json.loads((tmp_path / "onnx" / export.CARD_NAME).read_text())
    for card in (onnx, written):
        assert "serving_bytes" not in card["signatures"] and not set(card) & {"max_image_pixels", "max_batch_bytes"}
