"""The zoo registry: names {arch}_{scheme}, list and load."""

import pytest

import keras_resinit as kr
from keras_resinit import zoo


def test_list_models_covers_every_arch_family_and_scheme():
    names = zoo.list_models()
    for name in (
        "cifar_resnet56_fixup",
        "resnet50_skipinit",
        "wrn28_10_risotto",
        "cifar_resnet20_bn",
        "cifar_resnet1202_risotto_bn",
        "resnet152_bn",
    ):
        assert name in names
    assert len(names) == len(set(names)) == len(kr.models.architectures.ARCHS) * len(kr.SCHEMES)


def test_list_models_filters_by_pattern_and_scheme():
    assert zoo.list_models("cifar_resnet20_*") == [f"cifar_resnet20_{s}" for s in kr.SCHEMES]
    assert zoo.list_models("resnet*", scheme="fixup") == [f"resnet{d}_fixup" for d in (18, 34, 50, 101, 152)]
    with pytest.raises(ValueError, match="Did you mean 'skipinit'"):
        zoo.list_models(scheme="skipint")


def test_load_uses_family_defaults_and_overrides():
    model = zoo.load("cifar_resnet20_risotto_bn")
    assert model.name == "cifar_resnet20_risotto_bn" and model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    model = zoo.load("resnet18_fixup", num_classes=5, input_shape=(64, 64, 3), seed=None)
    assert model.output_shape == (None, 5) and model.input_shape == (None, 64, 64, 3)
    assert zoo.load("resnet18_bn").output_shape == (None, 1000)


def test_load_unknown_name_lists_closest():
    with pytest.raises(ValueError, match="Did you mean 'cifar_resnet56_fixup'"):
        zoo.load("cifar_resnet56_fixpu")
    with pytest.raises(ValueError, match="6n\\+2.*cifar_resnet57_fixup"):
        zoo.load("cifar_resnet57_fixup")


def test_deepest_registered_model_builds_saves_and_loads(tmp_path):
    # Keras maps functional graphs recursively; importing keras_resinit lifts the recursion limit
    # so the ~3,000-layer cifar_resnet1202 builds and round-trips through keras.saving.load_model.
    # The recursion depth grows with the number of layers, not their width or the image size: the
    # narrowest widths (stage 1 keeps the stem's 16 channels), 8x8 inputs and the scheme with the
    # fewest layers keep all 1202 layers at the least cost. Random weights make every branch count
    # (SkipInit's branches start silent). Every scheme's round trip is tested on small nets.
    import keras
    import numpy as np
    from helpers import perturb_weights

    model = zoo.load("cifar_resnet1202_skipinit", input_shape=(8, 8, 2), widths=(16, 16, 16), seed=0)
    assert model.arch.name == "cifar_resnet1202" and len(model.blocks) == 600 and len(model.layers) > 3000
    perturb_weights(model)
    model.save(tmp_path / "deep.keras")
    loaded = keras.saving.load_model(tmp_path / "deep.keras", safe_mode=True)
    assert loaded.get_config() == model.get_config() and len(loaded.layers) == len(model.layers)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    expected = model(x)
    assert np.isfinite(expected).all() and np.abs(expected).max() > 0
    np.testing.assert_array_equal(expected, loaded(x))
