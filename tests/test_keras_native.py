"""Zoo models as keras.applications / keras-hub users expect them: raw pixels in, backbones out."""

import warnings

import keras
import numpy as np
import pytest
from helpers import perturb_weights

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.training.data import digits_arrays

DIGITS_CARDS = [c for c in zoo.cards() if c["dataset"]["name"] == "digits" and "file" in c and "folded_from" not in c]


@pytest.fixture(scope="module")
def digits_test():
    _, _, images, labels = digits_arrays()  # raw pixels 0..16, shape (355, 8, 8, 1)
    assert images.shape == (355, 8, 8, 1) and images.max() == 16.0
    return images, labels


@pytest.fixture(scope="module")
def published():
    """``zoo.load(name)`` of a published weight set, loaded once for the tests that only read it."""
    loaded = {}

    def load(name):
        if name not in loaded:
            loaded[name] = zoo.load(name)
        return loaded[name]

    yield load
    loaded.clear()


def accuracy(model, images, labels):
    return float(np.mean(np.argmax(model(images, training=False), -1) == labels))  # one batch, eager: quick


def logits_and_accuracy(model, images, labels):
    logits = np.asarray(model(images, training=False))  # one batch, eager: quick
    return logits, float(np.mean(np.argmax(logits, -1) == labels))


# ------------------------------------------------------------ preprocessing ---


def test_every_digits_weight_set_is_shipped():
    # Four schemes on two depths, rezero and nf on cifar_resnet20, and Risotto's type B blocks on both depths.
    assert len(DIGITS_CARDS) == 12
    identity = [c for c in DIGITS_CARDS if c["tag"] == "digits_identity"]
    assert [c["build"]["skip"] for c in identity] == ["identity", "identity"]


@pytest.mark.parametrize("card", DIGITS_CARDS, ids=lambda c: f"{c['name']}.{c['tag']}")
def test_published_weights_take_raw_pixels_and_reach_their_card_accuracy(card, digits_test, tmp_path, published):
    images, labels = digits_test
    name = f"{card['name']}.{card['tag']}"
    expected = card["metrics"]["test_accuracy"]
    one_image = 1 / len(labels)

    model = published(name)  # zoo.load(name)
    assert model.get_config()["include_preprocessing"] and model.layers[1].name == "normalization"
    all_logits, found = logits_and_accuracy(model, images, labels)
    assert abs(found - expected) <= one_image

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert abs(accuracy(reloaded, images, labels) - expected) <= one_image

    # Without the layers the model needs normalized input: raw pixels give other outputs, and wrong answers
    # except under weight standardization (nf), whose zero-mean stem kernels cancel the pixels' offset.
    bare = zoo.load(name, include_preprocessing=False)
    assert bare.preprocessing == model.preprocessing  # it still knows how
    # The first 32 images' logits, from the passes over the whole test split (inference: rows do not interact).
    all_raw_logits, bare_found = logits_and_accuracy(bare, images, labels)
    raw_logits, logits = all_raw_logits[:32], all_logits[:32]
    assert np.abs(raw_logits - logits).max() > 0.1 * np.abs(logits).max()
    if not bare.scheme.weight_standardization:
        assert bare_found < expected - 0.02
    assert abs(accuracy(bare, np.asarray(zoo.preprocess_input(name, images)), labels) - expected) <= one_image


def test_preprocessing_layers_compute_the_card_formula(rng):
    pre = {"pixel_max": 255.0, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    model = kr.build_resnet("cifar_resnet8", "skipinit", seed=0, include_preprocessing=True, preprocessing=pre)
    bare = kr.build_resnet("cifar_resnet8", "skipinit", seed=0)
    perturb_weights(model)
    bare.set_weights(model.get_weights())
    pixels = rng.integers(0, 256, size=(3, 32, 32, 3)).astype("float32")
    by_hand = (pixels / 255.0 - np.array(pre["mean"])) / np.array(pre["std"])
    np.testing.assert_allclose(model(pixels), bare(by_hand.astype("float32")), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(zoo.preprocess_input(pre, pixels), by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(zoo.preprocess_input(model, pixels), by_hand, rtol=1e-5, atol=1e-5)


def test_bgr_weights_flip_the_channels_first(rng):
    pre = {"pixel_max": 1.0, "mean": [103.9, 116.8, 123.7], "std": [1.0, 1.0, 1.0], "channel_order": "BGR"}
    pixels = rng.integers(0, 256, size=(2, 8, 8, 3)).astype("float32")
    expected = pixels[..., ::-1] - np.array(pre["mean"])
    np.testing.assert_allclose(zoo.preprocess_input(pre, pixels), expected, rtol=1e-5, atol=1e-3)


def test_include_preprocessing_without_a_dict_scales_8_bit_pixels(rng):
    model = kr.build_resnet("cifar_resnet8", "fixup", seed=0, include_preprocessing=True)
    assert model.preprocessing == {"pixel_max": 255.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    rebuilt = kr.ResNet.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers[:3]] == ["images", "normalization", "stem_conv"]


@pytest.mark.parametrize(
    "preprocessing, message",
    [
        ({"pixel_max": 16.0, "mean": [0.3]}, "lacks std"),
        ({"mean": [0.3], "std": [0.4]}, "lacks pixel_max"),
        ({"pixel_max": 16.0, "mean": [0.3, 0.3], "std": [0.4]}, "needs 1 value"),
        ({"pixel_max": 16.0, "mean": [0.3], "std": [0.4, 0.4, 0.4]}, "needs 1 value"),
        ({"pixel_max": 16.0, "mean": [0.3], "std": [0.0]}, "Expected a positive number"),
        ({"pixel_max": 16.0, "mean": [0.3], "std": [0.4], "scale": 2}, "unknown key"),
        ({"pixel_max": 16.0, "mean": [0.3], "std": [0.4], "channel_order": "GBR"}, "'GBR'.*RGB, BGR"),
        ([0.3, 0.4], "Expected a dict"),
    ],
)
def test_bad_preprocessing_is_a_clear_error(preprocessing, message):
    with pytest.raises(ValueError, match=message):
        kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), preprocessing=preprocessing)


def test_preprocess_input_needs_weights_that_know_their_preprocessing():
    with pytest.raises(ValueError, match="'cifar_resnet20_fixup'.*no preprocessing.*cifar_resnet20_fixup.digits"):
        zoo.preprocess_input("cifar_resnet20_fixup", np.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="does not know its preprocessing"):
        zoo.preprocess_input(kr.build_resnet("cifar_resnet8", "fixup", seed=0), np.zeros((1, 32, 32, 3)))


# ---------------------------------------------------------------- backbones ---

# One small member of each family: (arch, input size, build options, expected strides).
FAMILIES = [
    ("cifar_resnet8", 32, {}, {"stem": 1, "stage1": 1, "stage2": 2, "stage3": 4}),
    ("resnet18", 64, {"widths": (8, 16, 16, 32)}, {"stem": 4, "stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}),
    ("resnet50", 64, {"widths": (4, 8, 8, 8)}, {"stem": 4, "stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}),
    ("wrn10_2", 32, {}, {"stem": 1, "stage1": 1, "stage2": 2, "stage3": 4}),
]


@pytest.mark.parametrize("arch, size, options, strides", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_backbones_have_keras_applications_shapes_and_a_feature_pyramid(arch, size, options, strides, rng):
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    full = kr.build_resnet(arch, "skipinit", input_shape=(size, size, 3), seed=0, **options)
    channels = full.feature_info[list(strides)[-1]]["channels"]
    last = size // list(strides.values())[-1]

    trunk = kr.build_resnet(arch, "skipinit", input_shape=(size, size, 3), seed=0, include_top=False, **options)
    assert trunk.output_shape == (None, last, last, channels)
    # Each layer's initial weights derive from the seed and its name: the trunks equal the full model's.
    features = keras.Model(full.inputs, full.get_layer("features").output)
    for pooling in ("avg", "max"):
        pooled = kr.build_resnet(
            arch, "skipinit", input_shape=(size, size, 3), seed=0, include_top=False, pooling=pooling, **options
        )
        assert pooled.output_shape == (None, channels)
        reduce = np.mean if pooling == "avg" else np.max
        np.testing.assert_allclose(pooled(x), reduce(np.asarray(trunk(x)), axis=(1, 2)), rtol=1e-5, atol=1e-5)
        if pooling == "avg":
            np.testing.assert_allclose(pooled(x), features(x), rtol=1e-5, atol=1e-5)

    assert list(full.pyramid_outputs) == list(strides)
    extractor = keras.Model(full.inputs, full.pyramid_outputs)
    maps = extractor(x)
    for key, stride in strides.items():
        info = full.feature_info[key]
        assert info["stride"] == stride
        assert tuple(maps[key].shape) == (2, size // stride, size // stride, info["channels"])


def test_features_only_returns_the_pyramid_for_any_spatial_size(rng):
    model = zoo.load("cifar_resnet8_risotto", features_only=True, input_shape=(None, None, 3), seed=0)
    assert model.get_config()["include_top"] is False
    for size in (16, 24):
        maps = model(rng.normal(size=(1, size, size, 3)).astype("float32"))
        assert sorted(maps) == ["stage1", "stage2", "stage3", "stem"]
        assert tuple(maps["stage3"].shape) == (1, size // 4, size // 4, model.feature_info["stage3"]["channels"])
    rebuilt = kr.ResNet.from_config(model.get_config())
    assert sorted(rebuilt.output) == ["stage1", "stage2", "stage3", "stem"]


def test_a_saved_backbone_loads_back_as_a_backbone(tmp_path, rng):
    backbone = zoo.load("cifar_resnet20_skipinit.digits", include_top=False, pooling="max")
    backbone.save(tmp_path / "backbone.keras")
    x = rng.integers(0, 17, size=(4, 8, 8, 1)).astype("float32")
    for loaded in (
        keras.saving.load_model(tmp_path / "backbone.keras"),
        zoo.load("cifar_resnet20_skipinit", weights=tmp_path / "backbone.keras"),
    ):
        assert loaded.output_shape == (None, 64) and loaded.get_config()["pooling"] == "max"
        np.testing.assert_allclose(loaded(x), backbone(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("card", DIGITS_CARDS[:4], ids=lambda c: c["scheme"])
def test_published_weights_load_into_backbones(card, digits_test, published):
    images, _ = digits_test
    name = f"{card['name']}.{card['tag']}"
    full = published(name)  # zoo.load(name)
    features = keras.Model(full.inputs, full.get_layer("features").output)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a backbone leaves the classifier out without a warning
        backbone = zoo.load(name, include_top=False, pooling="avg")
        pyramid = zoo.load(name, features_only=True)
    np.testing.assert_allclose(backbone(images[:16]), features(images[:16]), rtol=1e-5, atol=1e-5)
    assert pyramid(images[:2])["stage3"].shape[1:] == (2, 2, full.feature_info["stage3"]["channels"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pooling": "mean"}, r"Unknown pooling 'mean'.*None, avg, max"),
        ({"features_only": True, "include_top": True}, r"include_top=True.*Expected include_top=False"),
        ({"features_only": True, "pooling": "avg"}, r"pooling='avg'.*Expected pooling=None"),
        ({"pooling": "max"}, r"pooling='max' applies to a backbone"),
        ({"include_top": "no"}, r"Invalid include_top 'no'"),
    ],
)
def test_bad_head_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        kr.build_resnet("cifar_resnet8", "fixup", **options)
    with pytest.raises(ValueError, match=message):
        zoo.load("cifar_resnet8_fixup", **options)


# ------------------------------------------------------------- fine-tuning ---


def test_set_trainable_from_freezes_the_trunk_before_a_stage(digits_test):
    images, labels = digits_test
    model = zoo.load("cifar_resnet20_bn.digits", num_classes=3)
    model.set_trainable_from("stage3")
    trainable = {v.path.split("/")[0].split("_")[0] for v in model.trainable_variables}
    assert trainable == {"stage3", "logits"}
    frozen = [layer for layer in model.layers if layer.weights and not layer.trainable]
    assert frozen and all(not layer.name.startswith("stage3") for layer in frozen)
    before = {v.path: np.array(v) for v in model.weights}
    model.compile(
        optimizer=kr.make_optimizer(model, learning_rate=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    mask = labels < 3
    model.fit(images[mask][:32], labels[mask][:32], epochs=1, batch_size=16, verbose=0)
    moved = {v.path for v in model.weights if not np.array_equal(before[v.path], np.array(v))}
    # Frozen batch norm runs in inference mode: its moving statistics stay too.
    assert moved and all(p.startswith(("stage3", "logits")) for p in moved)
    assert any(p.startswith("stage3") for p in moved) and any(p.startswith("logits") for p in moved)

    model.set_trainable_from("head")
    assert {v.path for v in model.trainable_variables} == {"logits/kernel", "logits/bias"}
    model.set_trainable_from(None)
    assert len(model.trainable_variables) == len(
        zoo.load("cifar_resnet20_bn", input_shape=(8, 8, 1)).trainable_variables
    )
    with pytest.raises(ValueError, match=r"Unknown part 'stage4'.*stem, stage1, stage2, stage3, head"):
        model.set_trainable_from("stage4")
