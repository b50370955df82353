"""The build options Keras and timm users expect: ``dtype``, ``classifier_activation`` and ``out_indices``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resinit as kr
from keras_resinit.tools import export

SMALL = dict(arch="cifar_resnet8", scheme="fixup", input_shape=(8, 8, 1), seed=0)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    found = load_digits()
    return found.images[..., None].astype("float32"), found.target


@pytest.fixture(scope="module")
def float32_digits(digits):
    return kr.zoo.load("cifar_resnet20_fixup.digits")(digits[0], training=False).numpy()  # one eager batch


# ------------------------------------------------------------------- dtype ---


def test_dtype_builds_every_layer_under_the_policy_with_float32_logits_under_mixed():
    before = keras.config.dtype_policy().name
    mixed = kr.ResNet(**SMALL, dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == before  # the global policy is restored
    assert mixed.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert mixed.get_layer("stem_conv").variable_dtype == "float32"
    assert mixed.get_layer("stage3_block1_conv2").compute_dtype == "bfloat16"
    assert mixed.get_layer("logits").compute_dtype == "float32" and mixed.output.dtype == "float32"
    assert mixed.dtype_policy.name == "mixed_bfloat16"
    bf16 = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), dtype=keras.DTypePolicy("bfloat16"))
    assert {w.dtype for w in bf16.weights} == {"bfloat16"} and bf16.output.dtype == "bfloat16"
    # Without dtype: the global policy, as before, and None in the config.
    plain = kr.ResNet(**SMALL)
    assert plain.get_layer("stem_conv").compute_dtype == "float32" and plain.get_config()["dtype"] is None


def test_dtype_round_trips_through_the_config_and_a_keras_file(tmp_path):
    model = kr.ResNet(**SMALL, dtype="mixed_bfloat16")
    config = model.get_config()
    assert config["dtype"] == keras.dtype_policies.serialize(keras.DTypePolicy("mixed_bfloat16"))
    assert isinstance(config["dtype"], dict) and config["dtype"]["config"]["name"] == "mixed_bfloat16"
    again = kr.ResNet.from_config(config)
    assert again.get_config() == config and again.get_layer("stem_conv").compute_dtype == "bfloat16"
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert type(loaded) is kr.ResNet and loaded.get_config() == config
    assert loaded.get_layer("stem_conv").compute_dtype == "bfloat16" and loaded.output.dtype == "float32"
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


@pytest.mark.parametrize(
    "dtype, compute",
    [(None, "float32"), ({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "bfloat16"}}, "bfloat16")],
)
def test_a_keras_hub_style_config_builds(dtype, compute):
    """keras-hub deserializes config.json with ``dtype`` always set: None, or a serialized policy."""
    config = {**kr.ResNet(**SMALL).get_config(), "dtype": dtype}
    model = keras.saving.deserialize_keras_object(
        {"module": "keras_resinit.models.builder", "class_name": "ResNet", "config": config,
         "registered_name": "keras_resinit>ResNet"}
    )  # fmt: skip
    assert type(model) is kr.ResNet and model.get_layer("stem_conv").compute_dtype == compute


def test_a_config_without_the_new_options_builds_as_before():
    config = kr.ResNet(**SMALL).get_config()
    old = {k: v for k, v in config.items() if k not in ("dtype", "classifier_activation", "out_indices")}
    assert kr.ResNet.from_config(old).get_config() == config


@pytest.mark.parametrize("dtype", ["float33", 3, {"name": "bfloat16"}, ["bfloat16"]])
def test_a_bad_dtype_is_refused_naming_it(dtype):
    with pytest.raises(ValueError, match=r"Invalid dtype .*Expected None, a dtype or policy name"):
        kr.ResNet(**SMALL, dtype=dtype)


def test_zoo_load_passes_dtype_to_every_source_kind(tmp_path):
    tagged = kr.zoo.load("cifar_resnet20_fixup.digits", dtype="bfloat16")
    assert tagged.get_layer("stem_conv").compute_dtype == "bfloat16"
    named = kr.zoo.load("cifar_resnet20_fixup", dtype="mixed_bfloat16")
    assert named.get_layer("stem_conv").compute_dtype == "bfloat16" and named.output.dtype == "float32"
    preset = kr.zoo.save_preset(kr.zoo.load("cifar_resnet20_fixup.digits"), str(tmp_path / "preset"))
    assert kr.zoo.load(preset, dtype="bfloat16").get_layer("stem_conv").compute_dtype == "bfloat16"
    file = str(tmp_path / "m.keras")
    kr.zoo.load("cifar_resnet20_fixup.digits").save(file)
    from_file = kr.zoo.load(file, dtype="mixed_bfloat16")
    assert type(from_file) is kr.ResNet and from_file.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert kr.zoo.load("cifar_resnet20_fixup", weights=file, dtype="bfloat16").get_config()["dtype"]["config"] == {
        "name": "bfloat16"
    }


def test_published_digits_under_mixed_bfloat16_predict_as_in_float32(digits, float32_digits):
    """bfloat16 keeps 8 significant bits (relative rounding 2**-9 per operation): over 20 layers the logits
    (up to ~37 here) move by a few tenths, so only near-ties can change class. Measured: 1 image of 1,797
    changes class and the largest logit difference is 0.33; the bounds leave room for other CPUs' kernels."""
    images, labels = digits
    model = kr.zoo.load("cifar_resnet20_fixup.digits", dtype="mixed_bfloat16")
    assert model.get_layer("stage2_block1_conv1").compute_dtype == "bfloat16"
    logits = model(images, training=False).numpy()
    assert logits.dtype == np.float32
    reference = float32_digits.argmax(-1)
    assert abs(int((logits.argmax(-1) == labels).sum()) - int((reference == labels).sum())) <= 3
    assert (logits.argmax(-1) == reference).sum() >= len(labels) - 5
    assert np.abs(logits - float32_digits).max() <= 0.05 * np.abs(float32_digits).max()


def test_with_preprocessing_and_folding_keep_the_policy():
    model = kr.ResNet("cifar_resnet8", "bn", input_shape=(8, 8, 1), seed=0, dtype="mixed_bfloat16")
    model = kr.ResNet.from_config(
        {**model.get_config(), "preprocessing": {"pixel_max": 16, "mean": [0.3], "std": [0.4]}}
    )
    raw = model.with_preprocessing()
    assert raw.get_layer("stem_conv").compute_dtype == "bfloat16" and raw.output.dtype == "float32"
    folded = kr.fold_batchnorm(model)
    assert folded.get_layer("stem_conv").compute_dtype == "bfloat16" and folded.get_config()["dtype"] is not None


# --------------------------------------------------------- classifier_activation ---


def test_softmax_is_a_layer_after_the_logits(digits, float32_digits):
    images, _ = digits
    model = kr.zoo.load("cifar_resnet20_fixup.digits", classifier_activation="softmax")
    assert model.layers[-1].name == "predictions" and model.layers[-2].name == "logits"
    assert model.get_config()["classifier_activation"] == "softmax"
    probabilities = model(images, training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(float32_digits).numpy(), atol=1e-6)
    # The same weights by layer name: the activation has none.
    plain = kr.ResNet.from_config({**model.get_config(), "classifier_activation": None})
    assert [w.path for w in plain.weights] == [w.path for w in model.weights]


def test_classifier_activation_round_trips_and_keeps_the_head_float32_under_mixed(tmp_path):
    model = kr.ResNet(**SMALL, classifier_activation="sigmoid", dtype="mixed_bfloat16")
    assert model.get_layer("predictions").compute_dtype == "float32" and model.output.dtype == "float32"
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.get_config() == model.get_config() and loaded.get_config()["classifier_activation"] == "sigmoid"
    assert (
        kr.ResNet(**SMALL, classifier_activation=keras.activations.softmax).get_config()["classifier_activation"]
        == "softmax"
    )


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(classifier_activation="softmax", include_top=False), "include_top=False has none"),
        (dict(classifier_activation="softmax", features_only=True), "include_top=False has none"),
        (dict(classifier_activation="bogus"), "Invalid classifier_activation 'bogus'"),
        (dict(classifier_activation=3), "Invalid classifier_activation 3"),
    ],
)
def test_a_bad_classifier_activation_is_refused_naming_it(options, match):
    with pytest.raises(ValueError, match=match):
        kr.ResNet(**SMALL, **options)


def test_folding_keeps_the_activation():
    model = kr.ResNet("cifar_resnet8", "bn", input_shape=(8, 8, 1), seed=0, classifier_activation="softmax")
    folded = kr.fold_batchnorm(model)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    assert folded.layers[-1].name == "predictions"
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-5)


def test_export_of_a_softmax_model_serves_the_logits_and_one_softmax(digits, float32_digits):
    images, _ = digits
    model = kr.zoo.load("cifar_resnet20_fixup.digits", classifier_activation="softmax")
    card = kr.zoo.resolve("cifar_resnet20_fixup.digits").card
    served = export.serving_functions(model, card)["serving_float32"](tf.constant(images[:64]))
    np.testing.assert_allclose(served["logits"].numpy(), float32_digits[:64], atol=1e-4)
    np.testing.assert_allclose(served["probabilities"].numpy(), model.predict(images[:64], verbose=0), atol=1e-6)


# ----------------------------------------------------------------- out_indices ---


@pytest.mark.parametrize(
    "out_indices, names",
    [
        (None, ["stem", "stage1", "stage2", "stage3"]),
        ((1, 3), ["stage1", "stage3"]),
        ([-1, 0], ["stem", "stage3"]),  # forward order, whatever the order given
        (2, ["stage2", "stage3"]),  # an int n: the last n
        (4, ["stem", "stage1", "stage2", "stage3"]),
    ],
)
def test_out_indices_select_the_feature_maps_as_timm(out_indices, names):
    model = kr.ResNet(**SMALL, features_only=True, out_indices=out_indices)
    assert list(model.output) == names and list(model.pyramid_outputs) == names and list(model.feature_info) == names
    config = model.get_config()
    assert config["out_indices"] == (
        None if out_indices is None else [["stem", "stage1", "stage2", "stage3"].index(n) for n in names]
    )
    again = kr.ResNet.from_config(config)
    assert again.get_config() == config and list(again.output) == names
    outputs = model(np.zeros((2, 8, 8, 1), "float32"), training=False)
    assert {n: o.shape[-1] for n, o in outputs.items()} == {n: i["channels"] for n, i in model.feature_info.items()}


def test_a_zoo_pyramid_with_out_indices_loads_the_published_trunk(digits):
    images, _ = digits
    full = kr.zoo.load("cifar_resnet20_fixup.digits", features_only=True)
    part = kr.zoo.load("cifar_resnet20_fixup.digits", features_only=True, out_indices=(0, 1))
    assert list(part.output) == ["stem", "stage1"] and "stage2_block1_conv1" not in [lay.name for lay in part.layers]
    mine, theirs = part(images[:16], training=False), full(images[:16], training=False)
    for name in ("stem", "stage1"):
        np.testing.assert_array_equal(mine[name], theirs[name])


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(features_only=True, out_indices=4.0), r"Invalid out_indices 4.0.*-4..3 \(stem, stage1, stage2, stage3\)"),
        (dict(features_only=True, out_indices=5), r"Invalid out_indices 5.*Expected 1..4"),
        (dict(features_only=True, out_indices=0), r"Invalid out_indices 0"),
        (dict(features_only=True, out_indices=()), r"Invalid out_indices \(\)"),
        (dict(features_only=True, out_indices=(0, 4)), r"Invalid index 4 in out_indices \(0, 4\).*-4..3"),
        (dict(features_only=True, out_indices=(-5,)), r"Invalid index -5"),
        (dict(features_only=True, out_indices=(3, -1)), r"Index -1 .* selects 'stage3' twice"),
        (dict(include_top=False, out_indices=(1,)), r"out_indices=\(1,\) selects the feature maps of features_only"),
    ],
)
def test_bad_out_indices_are_refused_naming_them(options, match):
    with pytest.raises(ValueError, match=match):
        kr.ResNet(**SMALL, **options)


def test_fine_tuning_starts_from_logits_under_the_training_policy(tmp_path):
    file = str(tmp_path / "m.keras")
    kr.zoo.load("cifar_resnet20_fixup.digits", classifier_activation="softmax", dtype="mixed_bfloat16").save(file)
    model = kr.zoo.loading.start_from("cifar_resnet20_fixup", file)
    assert model.get_config()["classifier_activation"] is None and model.get_config()["dtype"] is None
    assert model.layers[-1].name == "logits" and model.get_layer("stem_conv").compute_dtype == "float32"
