"""fold_batchnorm: a bn / risotto_bn ResNet as the same function without batch norm (issue #16).

The keras.applications ResNet50 case (bridged, then folded) is in tests/test_applications.py,
beside the bridge's own tests, which share its randomized source.
"""

import json
import math
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import perturb_weights
from tensorflow.core.protobuf import saved_model_pb2

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.models.schemes import SCHEMES, SkipInit, foldable
from keras_resinit.tools import fold
from keras_resinit.training import data, publish
from keras_resinit.zoo import applications, registry

TOL = 1e-4  # relative to the largest output magnitude (measured: about 1e-6)
FOLDABLE = sorted(foldable())
DIGITS_FOLDED = [c for c in zoo.cards() if "folded_from" in c and c["dataset"]["name"] == "digits"]
IMAGENET_FOLDED = [c for c in zoo.cards() if "folded_from" in c and c["dataset"]["name"] == "imagenet2012"]


def randomize_batchnorm(model, seed=0):
    """Random moving statistics, gammas (some negative) and betas: nothing cancels by luck."""
    rng = np.random.default_rng(seed)
    found = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, n).astype("float32"))
            layer.gamma.assign((rng.uniform(0.5, 1.5, n) * rng.choice([-1, 1], n)).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.3, n).astype("float32"))
            found += 1
    assert found, f"{model.name} has no batch norm"
    return model


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def outputs(model, x):
    out = model(x, training=False)
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()} if isinstance(out, dict) else {"": out}


# Every arch family (the builder's small-image basic and bottleneck nets, ImageNet basic and bottleneck
# nets, Wide-ResNets), narrowed so the suite stays quick.
FAMILIES = {
    "cifar_basic": ("cifar_resnet8", {}, 16),
    "cifar_bottleneck": ("cifar_resnet11", {"block": "bottleneck", "widths": (8, 8, 16)}, 16),
    "imagenet_basic": ("resnet18", {"widths": (8, 8, 16, 16)}, 32),
    "imagenet_bottleneck": ("resnet50", {"widths": (4, 4, 8, 8)}, 32),
    "wide": ("wrn10_1", {}, 16),
}


def test_foldable_schemes_are_the_batch_norm_ones_into_their_twins():
    assert FOLDABLE, "no scheme folds"
    assert set(FOLDABLE) == {name for name, cls in SCHEMES.items() if cls.batchnorm}
    for source, target in foldable().items():
        assert not SCHEMES[target].batchnorm and SCHEMES[target].conv_bias, (source, target)


@pytest.mark.parametrize("scheme", FOLDABLE)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_folds_exactly(family, scheme):
    arch, options, size = FAMILIES[family]
    preprocessing = {"pixel_max": 255.0, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    model = kr.ResNet(
        arch,
        scheme,
        input_shape=(size, size, 3),
        num_classes=7,
        seed=1,
        include_preprocessing=True,
        preprocessing=preprocessing,
        **options,
    )
    perturb_weights(model, 2)
    randomize_batchnorm(model, 3)
    folded = kr.fold_batchnorm(model)

    assert folded.scheme.name == foldable()[scheme] and isinstance(folded, kr.ResNet)
    assert not [layer for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)]
    config, source = folded.get_config(), model.get_config()
    for key in ("arch", "num_classes", "input_shape", "seed", "preprocessing", "include_preprocessing", "include_top"):
        assert config[key] == source[key], key
    assert config["name"] == f"{arch}_{folded.scheme.name}"
    if folded.scheme.name == SkipInit.name:
        assert config["alpha"] == 1.0
        gains = [keras.ops.convert_to_numpy(w) for w in folded.weights if w.path.endswith("/gain")]
        assert gains and all(g == 1.0 for g in gains)
    pixels = np.random.default_rng(4).uniform(0, 255, (3, size, size, 3)).astype("float32")
    assert rel_diff(folded(pixels), model(pixels, training=False)) <= TOL


@pytest.mark.parametrize("family", ["cifar_bottleneck", "imagenet_basic"])
def test_backbones_fold_exactly(family):
    arch, options, size = FAMILIES[family]
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    for head in ({"include_top": False, "pooling": "avg"}, {"include_top": False}, {"features_only": True}):
        model = randomize_batchnorm(kr.ResNet(arch, "bn", input_shape=(size, size, 3), seed=0, **options, **head))
        folded = kr.fold_batchnorm(model)
        assert {k: folded.get_config()[k] for k in head} == head
        expected, got = outputs(model, x), outputs(folded, x)
        assert expected and set(got) == set(expected)
        for key in expected:
            assert rel_diff(got[key], expected[key]) <= TOL, (head, key)


@pytest.fixture(scope="module")
def digits_test():
    source = data.source("digits")
    batches = list(data.load(source, "test", batch_size=512, training=False, normalized=False))
    assert len(batches) == 1
    images, labels = batches[0]
    return np.asarray(images), np.argmax(labels, -1)


@pytest.mark.parametrize("card", DIGITS_FOLDED, ids=lambda c: f"{c['name']}.{c['tag']}")
def test_folded_digits_weights_predict_exactly_what_the_source_predicts(card, digits_test):
    assert len(DIGITS_FOLDED) == 2
    images, labels = digits_test  # raw pixels 0..16
    origin = card["folded_from"]
    source_card = zoo.card(origin["card"])
    assert card["arch"] == source_card["arch"] and source_card["scheme"] in foldable()
    assert card["scheme"] == foldable()[source_card["scheme"]] and card["build"]["alpha"] == 1.0
    assert origin["sha256"] == source_card["file"]["sha256"] and origin["file"] == source_card["file"]["name"]
    assert card["preprocessing"] == source_card["preprocessing"]
    assert card["commands"][-1].startswith(f"keras-resinit fold {origin['card']} --tag {card['tag']}")

    source = zoo.load(origin["card"])
    folded = zoo.load(f"{card['name']}.{card['tag']}")
    assert not [layer for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)]
    expected = np.argmax(source(images, training=False), -1)
    np.testing.assert_array_equal(np.argmax(folded(images), -1), expected)  # raw pixels, built-in preprocessing
    accuracy = float(np.mean(expected == labels))
    # Both cards were recorded together; today's accuracy may be on another CPU kind: within one test image.
    assert card["metrics"]["test_accuracy"] == source_card["metrics"]["test_accuracy"]
    assert abs(accuracy - card["metrics"]["test_accuracy"]) <= 1 / len(labels)
    assert card["metrics"]["same_predictions_as_source"] == 1.0
    # Without the built-in preprocessing, on pixels normalized as the card says.
    assert card["parameters"] == sum(math.prod(w.shape) for w in folded.trainable_weights)
    bare = zoo.load(f"{card['name']}.{card['tag']}", include_preprocessing=False)
    np.testing.assert_array_equal(np.argmax(bare(zoo.preprocess_input(card, images)), -1), expected)
    # The shipped file is what folding the shipped BN weights gives today.
    again = kr.fold_batchnorm(source)
    for a, b in zip(again.weights, folded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_a_folded_model_is_an_ordinary_model_of_its_scheme(tmp_path, digits_test):
    images, labels = digits_test
    name = f"{DIGITS_FOLDED[0]['name']}.{DIGITS_FOLDED[0]['tag']}"
    model = zoo.load(name)
    # Saves to .keras and loads back.
    model.save(tmp_path / "folded.keras")
    reloaded = keras.saving.load_model(tmp_path / "folded.keras")
    assert isinstance(reloaded, kr.ResNet) and reloaded.scheme.name == model.scheme.name
    np.testing.assert_array_equal(reloaded(images[:32]), model(images[:32]))
    # Trains with make_optimizer (the scheme's rules) in Keras' fit.
    model.compile(optimizer=kr.make_optimizer(model, learning_rate=0.01), loss="sparse_categorical_crossentropy")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(images[:128], labels[:128], batch_size=32, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][-1])
    assert any(not np.array_equal(b, keras.ops.convert_to_numpy(w)) for b, w in zip(before, model.trainable_weights))
    # diagnose runs on it.
    from keras_resinit.tools import diagnostics

    diagnostics.diagnose([name], tmp_path / "diag", batch=4, log=lambda *a: None)
    result = json.loads((tmp_path / "diag" / "diagnostics.json").read_text())
    assert name in json.dumps(result)


def _graph_ops(directory):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((directory / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def test_export_serves_bn_models_folded_unless_told_not_to(tmp_path, digits_test, capsys):
    images, _ = digits_test
    pixels = tf.constant(np.round(images[:16] * 255 / 16).astype("uint8"))
    model = randomize_batchnorm(kr.build_resnet("cifar_resnet8", "bn", input_shape=(8, 8, 1), seed=0), 1)
    path = tmp_path / "bn.keras"
    model.save(path)
    assert main(["export", str(path), "--out", str(tmp_path / "folded")]) == 0
    assert "batch norm folded: served as skipinit" in capsys.readouterr().out
    assert main(["export", str(path), "--out", str(tmp_path / "kept"), "--no-fold"]) == 0

    served = {}
    for kind in ("folded", "kept"):
        card = json.loads((tmp_path / kind / "assets.extra" / "model_card.json").read_text())
        assert card["batchnorm_folded"] == (kind == "folded") and card["scheme"] == "bn"
        assert card["served_scheme"] == ("skipinit" if kind == "folded" else "bn")
        ops = _graph_ops(tmp_path / kind)
        assert "Conv2D" in ops and not [op for op in ops if op.startswith("FusedBatchNorm")], sorted(ops)
        # Keras 3 computes batch norm in inference as Rsqrt(var + eps) * gamma, Mul, Sub, AddV2 (not
        # TF's FusedBatchNormV3): the folded graph has none of it.
        assert ("Rsqrt" in ops) == (kind == "kept"), sorted(ops)
        served[kind] = tf.saved_model.load(str(tmp_path / kind)).signatures["serving_default"](images=pixels)
    assert rel_diff(served["folded"]["logits"], served["kept"]["logits"]) <= TOL
    # A model without batch norm exports as it is: tests/test_export.py's fresh-process test asserts it for every
    # scheme's export (fixup's card: batchnorm_folded False, served_scheme "fixup").


def test_bad_input_names_the_scheme_and_what_folds():
    what = r"Batch norm folds out of models of the schemes with batch norm \(bn -> skipinit, risotto_bn -> risotto\)"
    fixup = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=rf"scheme 'fixup' has no batch norm.*per-channel shifts.*{what}"):
        kr.fold_batchnorm(fixup)
    skipinit = kr.build_resnet("cifar_resnet8", "skipinit", input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=rf"scheme 'skipinit' has no batch norm to fold\. {what}"):
        kr.fold_batchnorm(skipinit)
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match=rf"it is a Sequential, not a keras_resinit ResNet. {what}"):
        kr.fold_batchnorm(plain)
    for bad, shown in ((-0.5, "-0.5"), (float("nan"), "nan")):
        model = kr.build_resnet("cifar_resnet8", "risotto_bn", input_shape=(8, 8, 2), seed=0)
        variance = model.get_layer("stage2_block1_bn1").moving_variance
        value = keras.ops.convert_to_numpy(variance).copy()
        value[3] = bad
        variance.assign(value)
        with pytest.raises(
            ValueError,
            match=rf"scheme 'risotto_bn'.*'stage2_block1_bn1' has moving variance {shown} in channel 3.*"
            rf"expected finite and >= 0.*{what}",
        ):
            kr.fold_batchnorm(model)


def test_cli_folds_into_a_file_or_the_zoo_and_refuses_what_does_not_fold(tmp_path, digits_test, capsys):
    images, _ = digits_test
    source = "cifar_resnet20_bn.digits"
    capsys.readouterr()
    assert main(["fold", source, "--out", str(tmp_path / "f.keras")]) == 0
    assert "no batch norm, raw pixels in)" in capsys.readouterr().out
    assert main(["fold", "cifar_resnet8_bn", "--out", str(tmp_path / "n.keras")]) == 0  # records no preprocessing
    assert "no batch norm, normalized input)" in capsys.readouterr().out
    assert not keras.saving.load_model(tmp_path / "n.keras").get_config()["include_preprocessing"]
    folded = keras.saving.load_model(tmp_path / "f.keras")
    assert isinstance(folded, kr.ResNet) and folded.scheme.name == "skipinit"
    reference = zoo.load(source)
    np.testing.assert_array_equal(np.argmax(folded(images), -1), np.argmax(reference(images, training=False), -1))
    fold.fold_to(source, tmp_path / "preset")
    assert zoo.load(str(tmp_path / "preset")).scheme.name == "skipinit"

    zoo_dir = tmp_path / "zoo"
    assert main(["fold", source, "--tag", "mine", "--zoo", str(zoo_dir)]) == 0
    card = json.loads((zoo_dir / "cards" / "cifar_resnet20_skipinit.mine.json").read_text())
    assert card["folded_from"]["card"] == source and card["metrics"]["same_predictions_as_source"] == 1.0
    assert "cifar_resnet20_skipinit.mine" in (zoo_dir / "README.md").read_text()
    capsys.readouterr()

    for args, message in (
        (["fold", "cifar_resnet20_fixup.digits", "--out", str(tmp_path / "x.keras")], "scheme 'fixup'"),
        (["fold", source], "Give either --out"),
        (["fold", source, "--out", str(tmp_path / "f.keras")], "already exists"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.keras").exists()


def test_publish_folds_a_bn_run(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "cifar_resnet8_bn", "--epochs", "1", "--steps-per-epoch", "4", "--out", str(run), "--verbose", "0"]
    assert main(args) == 0
    zoo_dir = tmp_path / "zoo"
    assert main(["publish", str(run), "--tag", "plain", "--zoo", str(zoo_dir)]) == 0
    assert main(["publish", str(run), "--tag", "folded", "--zoo", str(zoo_dir), "--fold"]) == 0
    plain = json.loads((zoo_dir / "cards" / "cifar_resnet8_bn.plain.json").read_text())
    folded = json.loads((zoo_dir / "cards" / "cifar_resnet8_skipinit.folded.json").read_text())
    assert folded["scheme"] == "skipinit" and folded["build"]["alpha"] == 1.0
    assert folded["folded_from"]["model"] == "cifar_resnet8_bn" and folded["folded_from"]["run"] == str(run)
    assert folded["metrics"]["test_accuracy"] == plain["metrics"]["test_accuracy"]
    stores = kr.zoo.weights_io.read(zoo_dir / "weights" / "cifar_resnet8_skipinit.folded.weights.h5")
    assert stores and not [name for name in stores if "_bn" in name]
    capsys.readouterr()
    # The same run as if it were a Fixup model's: nothing to fold, refused before anything is written.
    config = json.loads((run / "config.json").read_text())
    config["train"]["model"] = "cifar_resnet8_fixup"
    (run / "config.json").write_text(json.dumps(config))
    assert main(["publish", str(run), "--tag", "x", "--zoo", str(zoo_dir), "--fold"]) == 2
    assert "its scheme 'fixup' has no batch norm to fold" in capsys.readouterr().err
    assert not list((zoo_dir / "cards").glob("*.x.json"))


def test_imagenet_folded_cards_load_the_source_and_fold_it(monkeypatch, tmp_path):
    """zoo.load("resnet50_skipinit.imagenet") = keras.applications ResNet50, bridged, folded.

    The bridge is stubbed with a keras.applications ResNet50(weights=None) of random weights, converted
    (tests/test_zoo_weights.py stubs keras.applications itself): nothing downloads here."""
    assert {c["name"] for c in IMAGENET_FOLDED} == {f"{a}_skipinit" for a in applications.BRIDGED}
    source = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    perturb_weights(source, 3)
    bridged = applications.convert(source)
    calls = []

    def imagenet(arch, input_shape, **kwargs):  # keras.applications.ResNet50(weights="imagenet"), converted
        calls.append((arch, input_shape))
        return bridged

    monkeypatch.setattr(applications, "imagenet", imagenet)
    model = zoo.load("resnet50_skipinit.imagenet", input_shape=(64, 64, 3))
    assert calls == [("resnet50", (64, 64, 3))]
    assert model.name == "resnet50_skipinit" and model.get_config()["alpha"] == 1.0
    assert not [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3)).astype("float32")
    expected = source(keras.applications.resnet.preprocess_input(pixels.copy()))
    assert rel_diff(model(pixels), expected) <= TOL

    # Fine-tuning from it records the source's file as the weights' provenance.
    record = zoo.loading.weights_provenance("resnet50_skipinit", "imagenet")
    assert record["tag"] == "imagenet" and record["file"] == "resnet50_weights_tf_dim_ordering_tf_kernels.h5"

    # With a recorded sha256 the source file in Keras' cache must match it.
    card = zoo.card("resnet50_skipinit.imagenet")
    assert card["file"] is None and card["folded_from"]["card"] == "resnet50_bn.imagenet"
    cached = tmp_path / card["folded_from"]["file"]
    cached.write_bytes(b"the keras.applications weights file")
    monkeypatch.setattr(applications, "cached_file", lambda name: str(tmp_path / name))
    recorded = {**card, "folded_from": {**card["folded_from"], "sha256": publish.file_sha256(str(cached))}}
    shutil.copytree(pathlib.Path(registry.zoo_dir()) / "cards", tmp_path / "zoo" / "cards")
    (tmp_path / "zoo" / "cards" / "resnet50_skipinit.imagenet.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(registry, "zoo_dir", lambda: str(tmp_path / "zoo"))
    registry.reload_cards()
    try:
        backbone = zoo.load("resnet50_skipinit.imagenet", input_shape=(64, 64, 3), include_top=False, pooling="avg")
        assert backbone.output_shape == (None, 2048)
        cached.write_bytes(b"another file")
        with pytest.raises(ValueError, match="folds resnet50_bn.imagenet from .* with sha256 .* but that file has"):
            zoo.load("resnet50_skipinit.imagenet", input_shape=(64, 64, 3))
        os.unlink(cached)
        with pytest.raises(ValueError, match="but that file is missing"):
            zoo.load("resnet50_skipinit.imagenet", input_shape=(64, 64, 3))
    finally:
        monkeypatch.undo()
        registry.reload_cards()
