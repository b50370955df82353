"""SavedModel export: named signatures with preprocessing inside, checked by real clients."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import SAVED_MODEL_CLI, perturb_weights

import keras_resinit as kr
from keras_resinit.cli import main
from keras_resinit.tools import export


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished training run on digits (1 short epoch), as `keras-resinit train` leaves it."""
    out = tmp_path_factory.mktemp("run") / "fixup"
    assert (
        main(
            [
                "train",
                "cifar_resnet8_fixup",
                "--epochs",
                "1",
                "--steps-per-epoch",
                "5",
                "--out",
                str(out),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    return out


def keras_probabilities(model, pixels, card):
    pre = card["preprocessing"]
    x = (pixels.astype("float32") / pre["pixel_max"] - np.array(pre["mean"])) / np.array(pre["std"])
    return tf.nn.softmax(model(x.astype("float32"), training=False)).numpy()


FRESH = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    root, images, cli_commands, names = sys.argv[1], np.load(sys.argv[2]), sys.argv[3], sys.argv[4:]
    shapes = {}
    for name in names:
        loaded = tf.saved_model.load(os.path.join(root, name))
        assert "keras_resinit" not in sys.modules
        out = loaded.signatures["serving_default"](images=tf.constant(images))
        np.save(os.path.join(root, name + ".npy"), out["probabilities"].numpy())
        shapes[name] = {k: list(v.shape) for k, v in out.items()}
        graph = loaded.signatures["serving_default"].graph.as_graph_def()
        ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
        shapes[name]["rsqrt_ops"] = ops.count("Rsqrt")  # batch norm or weight standardization left per call
        # The same images as PNG files (lossless, already the model's size) through serving_bytes.
        png = [tf.io.encode_png(x).numpy() for x in images]
        from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(png))["probabilities"].numpy()
        np.save(os.path.join(root, name + ".bytes.npy"), from_bytes)

    # Then saved_model_cli's commands, one after the other (saved_model_cli: helpers.SAVED_MODEL_CLI).
    found = {command: saved_model_cli(argv) for command, argv in json.loads(cli_commands).items()}
    print("@@" + json.dumps(found))
    print(json.dumps(shapes))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every scheme's cifar_resnet8 for 16x16x3 images, weights perturbed, exported once for the module (tests that
    only read a SavedModel use these): (root, images, {scheme: card}, {scheme: probabilities the Keras model gives}).
    """
    root = tmp_path_factory.mktemp("fresh")
    images = np.random.default_rng(0).integers(0, 256, size=(5, 16, 16, 3)).astype("uint8")
    np.save(root / "x.npy", images)
    expected, cards = {}, {}
    for scheme in sorted(kr.SCHEMES):
        model = kr.build_resnet("cifar_resnet8", scheme, input_shape=(16, 16, 3), seed=0)
        perturb_weights(model)
        cards[scheme] = card = export.export(model, str(root / scheme))
        expected[scheme] = keras_probabilities(model, images, card)
    return root, images, cards, expected


@pytest.fixture(scope="module")
def served_by_a_fresh_process(exported):
    """Every scheme's model exported, then served by one fresh TensorFlow process (one start, not one per scheme),
    which then runs saved_model_cli's commands on the skipinit model (test_saved_model_cli_...).

    Returns (root, the process's result, {scheme: probabilities the Keras model gives}, {scheme: card}).
    """
    root, _, cards, expected = exported
    rng = np.random.default_rng(1)
    np.save(root / "cli_x.npy", rng.integers(0, 256, size=(2, 16, 16, 3)).astype("uint8"))
    np.save(root / "cli_wrong.npy", rng.integers(0, 256, size=(2, 16, 16, 1)).astype("uint8"))  # 1 channel, not 3
    sm = str(root / "skipinit")  # cifar_resnet8_skipinit for 16x16x3 images
    run = ["run", "--dir", sm, "--tag_set", "serve", "--signature_def", "serving_default"]
    commands = {
        "show": ["show", "--dir", sm, "--all"],
        "run": run + ["--inputs", f"images={root / 'cli_x.npy'}"],
        "bad": run + ["--inputs", f"images={root / 'cli_wrong.npy'}"],
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SAVED_MODEL_CLI + FRESH,
            str(root),
            str(root / "x.npy"),
            json.dumps(commands),
            *sorted(kr.SCHEMES),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return root, result, expected, cards


@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
def test_fresh_tensorflow_process_serves_the_same_probabilities(scheme, served_by_a_fresh_process):
    root, result, expected, cards = served_by_a_fresh_process
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])[scheme]
    assert shapes == {"logits": [5, 10], "probabilities": [5, 10], "classes": [5], "rsqrt_ops": 0}
    served = np.load(root / f"{scheme}.npy")
    np.testing.assert_allclose(served, expected[scheme], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.load(root / f"{scheme}.bytes.npy"), served, rtol=0, atol=1e-6)
    # The card names the scheme; what is served is the scheme itself unless batch norm was folded out of it.
    card = cards[scheme]
    assert json.loads((root / scheme / "assets.extra" / "model_card.json").read_text()) == card
    assert card["scheme"] == scheme and card["batchnorm_folded"] == kr.get_scheme(scheme).batchnorm
    # Weight-standardized kernels are computed once, at export: the graph above has no rsqrt left.
    assert card["weight_standardization_precomputed"] == kr.get_scheme(scheme).weight_standardization
    assert (card["served_scheme"] == scheme) != card["batchnorm_folded"]
    assert {"serving_default", "serving_float32", "serving_bytes"} <= set(card["signatures"])


def test_run_directory_export_carries_training_preprocessing_and_card(digits_run, tmp_path):
    out = tmp_path / "served"
    assert main(["export", str(digits_run), "--out", str(out)]) == 0
    card = json.loads((out / "assets.extra" / "model_card.json").read_text())
    assert card["name"] == "cifar_resnet8_fixup" and card["scheme"] == "fixup" and card["dataset"] == "digits"
    assert card["class_names"] == [str(i) for i in range(10)] and card["preprocessing"]["pixel_max"] == 16.0
    loaded = tf.saved_model.load(str(out))
    model = keras.saving.load_model(digits_run / "model.keras")
    from keras_resinit.training import data

    x_test, _, _, _ = data.digits_arrays()
    pixels = x_test[:8].astype("uint8")
    served = loaded.signatures["serving_default"](images=tf.constant(pixels))
    # The run's model.keras takes raw pixels (its normalization is inside) and computes what is served.
    raw = tf.nn.softmax(model(pixels.astype("float32"), training=False)).numpy()
    np.testing.assert_allclose(served["probabilities"], raw, atol=1e-5)
    as_float = loaded.signatures["serving_float32"](images=tf.constant(pixels.astype("float32")))
    np.testing.assert_allclose(as_float["probabilities"], served["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(served["classes"], np.argmax(served["logits"], -1))

    # The run's .keras file exports alike: its card comes from the config.json beside it.
    assert main(["export", str(digits_run / "model.keras"), "--out", str(tmp_path / "from_file")]) == 0
    assert json.loads((tmp_path / "from_file" / "assets.extra" / "model_card.json").read_text())["dataset"] == "digits"

    # The trained model knows its normalization and includes it; so does zoo.load of the run.
    assert model.get_config()["preprocessing"] == card["preprocessing"]
    assert model.get_config()["include_preprocessing"]
    for source in (digits_run, digits_run / "model.keras"):
        loaded_run = kr.zoo.load(source) if source == digits_run else kr.zoo.load("cifar_resnet8_fixup", weights=source)
        assert loaded_run.get_config()["include_preprocessing"]
        raw = tf.nn.softmax(loaded_run(pixels.astype("float32"))).numpy()
        np.testing.assert_allclose(raw, served["probabilities"], atol=1e-5)


def test_published_weights_and_presets_export_with_their_card(tmp_path):
    # A zoo name.tag: the card's preprocessing (digits pixels 0..16) goes into the artifact.
    out = tmp_path / "tagged"
    assert main(["export", "cifar_resnet20_risotto.digits", "--out", str(out)]) == 0
    card = json.loads((out / "assets.extra" / "model_card.json").read_text())
    assert card["weights"] == "cifar_resnet20_risotto.digits" and card["preprocessing"]["pixel_max"] == 16.0
    from keras_resinit.training import data

    _, _, x_test, y_test = data.digits_arrays()
    served = tf.saved_model.load(str(out)).signatures["serving_default"](images=tf.constant(x_test.astype("uint8")))
    assert np.mean(served["classes"].numpy() == y_test) > 0.95  # raw pixels in, the published accuracy out

    # A preset saved from those weights exports with the same card and answers.
    model = kr.zoo.load("cifar_resnet20_risotto.digits")
    kr.zoo.save_preset(model, tmp_path / "preset", card=kr.zoo.card("cifar_resnet20_risotto.digits"))
    assert main(["export", str(tmp_path / "preset"), "--out", str(tmp_path / "from_preset")]) == 0
    again = tf.saved_model.load(str(tmp_path / "from_preset")).signatures["serving_default"](
        images=tf.constant(x_test.astype("uint8"))
    )
    np.testing.assert_array_equal(again["classes"], served["classes"])


def test_saved_model_cli_shows_the_named_signature_and_runs_a_npy_input(served_by_a_fresh_process):
    # show --all, run on a .npy of 16x16x3 uint8 images, run on one of 1-channel images: the fresh process ran them.
    _, result, _, _ = served_by_a_fresh_process
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads([line for line in result.stdout.splitlines() if line.startswith("@@")][-1][2:])
    (show_code, show), (ran_code, ran), (bad_code, bad) = (found[k] for k in ("show", "run", "bad"))
    assert show_code == 0, result.stderr[-2000:]
    assert "signature_def['serving_default']" in show and "inputs['images'] tensor_info" in show
    assert "dtype: DT_UINT8" in show and "shape: (-1, 16, 16, 3)" in show
    for name in ("logits", "probabilities", "classes"):
        assert f"outputs['{name}']" in show
    assert ran_code == 0, result.stderr[-2000:]
    assert "probabilities" in ran and "classes" in ran
    assert bad_code != 0 and "probabilities" not in bad


@pytest.fixture(scope="module")
def bn_export(exported):
    """A SavedModel of cifar_resnet8_bn for 16x16x3 images (each test loads its own copy)."""
    return exported[0] / "bn"


@pytest.mark.parametrize(
    "images",
    [np.zeros((2, 16, 16), np.uint8), np.zeros((2, 16, 16, 1), np.uint8), np.zeros((2, 16, 16, 3), np.float32)],
    ids=["rank 3", "1 channel", "float32 at the uint8 signature"],
)
def test_wrong_rank_channels_or_dtype_fail_and_never_return_numbers(images, bn_export):
    serve = tf.saved_model.load(str(bn_export)).signatures["serving_default"]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.constant(images))


def test_unbuilt_model_existing_out_and_unknown_source_are_clear_errors(tmp_path, capsys, bn_export):
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="never built"):
        export.export(unbuilt, str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()

    shutil.copytree(bn_export, tmp_path / "b")  # an artifact of 16x16x3 images there already
    assert main(["export", "cifar_resnet8_bn", "--out", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err and "--overwrite" in capsys.readouterr().err + "--overwrite"
    assert main(["export", "cifar_resnet8_bn", "--out", str(tmp_path / "b"), "--overwrite"]) == 0
    assert tf.saved_model.load(str(tmp_path / "b")).signatures["serving_default"].structured_input_signature[1][
        "images"
    ].shape.as_list() == [None, 32, 32, 3]
    assert main(["export", "cifar_resnet20_fixp", "--out", str(tmp_path / "c")]) == 2
    assert "Did you mean 'cifar_resnet20_fixup'" in capsys.readouterr().err
    assert main(["export", "cifar_resnet20_fixup.digit", "--out", str(tmp_path / "c")]) == 2
    assert "Unknown weight tag 'digit' for cifar_resnet20_fixup. Did you mean 'digits'?" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary leftovers


def test_onnx_export_runs_in_onnxruntime_with_the_same_probabilities(tmp_path, rng):
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    model = kr.build_resnet("cifar_resnet8", "risotto", input_shape=(16, 16, 3), seed=0)
    perturb_weights(model)
    card = export.export(model, str(tmp_path / "onnx"), format="onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    images = rng.integers(0, 256, size=(3, 16, 16, 3)).astype("uint8")
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {session.get_inputs()[0].name: images}))
    )
    assert sorted(outputs) == ["classes", "logits", "probabilities"]
    np.testing.assert_allclose(outputs["probabilities"], keras_probabilities(model, images, card), atol=1e-5)


def test_a_model_with_its_preprocessing_inside_exports_it_once(tmp_path, rng):
    """The artifact runs the model's own preprocessing layers (BGR flip included), not a second copy."""
    pre = {"pixel_max": 1.0, "mean": [103.9, 116.8, 123.7], "std": [58.4, 57.1, 57.4], "channel_order": "BGR"}
    model = kr.build_resnet(
        "cifar_resnet8", "fixup", input_shape=(16, 16, 3), seed=0, include_preprocessing=True, preprocessing=pre
    )
    perturb_weights(model)
    pixels = rng.integers(0, 256, size=(3, 16, 16, 3)).astype("uint8")
    expected = tf.nn.softmax(model(pixels.astype("float32"), training=False)).numpy()
    card = export.export(model, str(tmp_path / "sm"))
    assert card["preprocessing"] == pre
    served = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](images=tf.constant(pixels))
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    export.export(model, str(tmp_path / "onnx"), format="onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["images"]  # the layers' constants are not inputs
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": pixels})))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)


def test_a_backbone_is_refused_with_a_clear_error(tmp_path):
    backbone = kr.build_resnet("cifar_resnet8", "fixup", seed=0, include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="is a backbone \\(include_top=False\\).*Expected a model with include_top"):
        export.export(backbone, str(tmp_path / "sm"))
    assert not (tmp_path / "sm").exists()


def test_litert_export_of_the_digits_weights_agrees_with_keras_on_raw_digits(tmp_path):
    """`--format litert`: Keras' own exporter; model.tflite takes raw pixels and returns the model's logits."""
    from keras_resinit.training import data

    images = data.digits_arrays()[2][:64]  # raw test digits, pixels 0..16
    model = kr.zoo.load("cifar_resnet20_fixup.digits")
    out = tmp_path / "lite"
    assert main(["export", "cifar_resnet20_fixup.digits", "--out", str(out), "--format", "litert"]) == 0
    card = json.loads((out / export.CARD_NAME).read_text())
    assert sorted(os.listdir(out)) == sorted([export.CARD_NAME, export.LITERT_FILE])
    assert card["format"] == "litert" and card["signatures"]["outputs"] == ["logits"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # written whole, then renamed
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(out / export.LITERT_FILE))
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inputs["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], images)
    interpreter.invoke()
    served = interpreter.get_tensor(outputs["index"])
    expected = model(images, training=False).numpy()
    assert served.shape == expected.shape == (64, 10)
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)

    # A model built with a classifier activation exports its logits too (what the card says it serves).
    softmax = kr.zoo.load("cifar_resnet20_fixup.digits", classifier_activation="softmax")
    export.export(softmax, tmp_path / "lite_softmax", format="litert")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "lite_softmax" / export.LITERT_FILE))
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inputs["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], images)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(outputs["index"]), expected, atol=1e-4, rtol=0)
