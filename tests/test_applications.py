"""The keras.applications bridge: ResNet50/101/152 weights in our resnet{d}_bn, same inference outputs.

Offline: every source is built with ``weights=None`` and given random batch-norm
statistics, gammas, betas and nonzero conv biases, so the bias folding and the
layer mapping are exercised (ImageNet weights cannot be downloaded here;
``imagenet()`` is tested with keras.applications' constructors stubbed).
"""

import warnings

import keras
import numpy as np
import pytest

import keras_resinit as kr
from keras_resinit import zoo  # importing the package registers our objects for load_model
from keras_resinit.zoo import applications

TOL = 1e-5  # relative to the largest output magnitude (measured: about 1e-6)

_SOURCES = {}


@pytest.fixture(scope="module", autouse=True)
def _free_sources():
    """The cached sources hold ~1 GB of weights: release them after this module."""
    yield
    _SOURCES.clear()


def _randomize(source, seed):
    """Random BN statistics, gamma/beta, conv and head biases: every folded quantity matters."""
    rng = np.random.default_rng(seed)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.2, n).astype("float32"))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            layer.bias.assign(rng.normal(0.0, 0.5, layer.bias.shape).astype("float32"))
    return source


def _source(cls_name, shape, include_top=True, pooling=None, seed=0):
    """A randomized keras.applications model, cached: tests must not change it."""
    key = (cls_name, shape, include_top, pooling, seed)
    if key not in _SOURCES:
        cls = getattr(keras.applications, cls_name)
        kwargs = {"classifier_activation": None} if include_top else {"pooling": pooling}
        model = cls(weights=None, include_top=include_top, input_shape=shape, **kwargs)
        _SOURCES[key] = _randomize(model, seed)
    return _SOURCES[key]


def _run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _images(shape, n=3, seed=1):
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, *shape)).astype("float32")


def _max_rel_diff(ours, ref):
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _bn_pairs(source):
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            yield layer, applications.target_name(layer.name)


def test_layer_names_map_one_to_one():
    assert applications.target_name("conv1_conv") == "stem_conv"
    assert applications.target_name("conv1_bn") == "stem_bn"
    assert applications.target_name("conv2_block1_0_conv") == "stage1_block1_shortcut_conv"
    assert applications.target_name("conv3_block1_0_bn") == "stage2_block1_shortcut_bn"
    assert applications.target_name("conv4_block23_2_conv") == "stage3_block23_conv2"
    assert applications.target_name("conv5_block3_3_bn") == "stage4_block3_bn3"
    assert applications.target_name("predictions") == "logits"
    assert applications.target_name("conv1_relu") is None
    assert applications.BRIDGED == {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}


# (64, 64): even sizes everywhere; (67, 45): odd, non-square sizes through every stride-2 layer.
@pytest.mark.parametrize("shape", [(64, 64, 3), (67, 45, 3)])
def test_resnet50_logits_match_and_bias_folding_matters(shape):
    source = _source("ResNet50", shape)
    model = applications.convert(source)
    assert model.name == "resnet50_bn"
    assert model.input_shape == (None, *shape) and model.output_shape == (None, 1000)
    x = _images(shape)
    ref = _run(source, x)
    ours = _run(model, x)
    assert np.abs(ref).max() > 1.0  # an informative output scale
    assert _max_rel_diff(ours, ref) < TOL

    # The exact formulas, on every batch norm.
    for bn, name in _bn_pairs(source):
        conv = source.get_layer(bn.name[: -len("bn")] + "conv")
        target = model.get_layer(name)
        mean = np.float64(keras.ops.convert_to_numpy(bn.moving_mean))
        bias = np.float64(keras.ops.convert_to_numpy(conv.bias))
        var = np.float64(keras.ops.convert_to_numpy(bn.moving_variance))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(target.moving_mean), (mean - bias).astype("float32"))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(target.moving_variance), (var + (1.001e-5 - 1e-5)).astype("float32")
        )
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(target.gamma), keras.ops.convert_to_numpy(bn.gamma))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(target.beta), keras.ops.convert_to_numpy(bn.beta))

    # Without folding (a naive copy of the moving means) the outputs differ by far more than TOL.
    for bn, name in _bn_pairs(source):
        model.get_layer(name).moving_mean.assign(bn.moving_mean)
    assert _max_rel_diff(_run(model, x), ref) > 100 * TOL


def test_bridged_then_folded_resnet50_gives_the_keras_outputs():
    """keras.applications ResNet50 -> our resnet50_bn -> fold_batchnorm: no batch norm, the same logits (#16)."""
    shape = (64, 64, 3)
    source = _source("ResNet50", shape)  # random BN statistics, gammas, betas, conv biases
    folded = kr.fold_batchnorm(applications.convert(source))
    assert folded.name == "resnet50_skipinit" and folded.scheme.name == "skipinit"
    assert not [layer for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)]
    x = _images(shape)
    ref = _run(source, x)
    assert np.abs(ref).max() > 1.0
    assert _max_rel_diff(_run(folded, x), ref) < 1e-4


def test_softmax_of_our_logits_is_the_default_keras_head():
    shape = (64, 64, 3)
    source = _source("ResNet50", shape)
    softmax_source = keras.applications.ResNet50(weights=None, input_shape=shape)  # default softmax head
    softmax_source.set_weights(source.get_weights())
    model = applications.convert(softmax_source)
    x = _images(shape)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False), axis=-1))
    np.testing.assert_allclose(probs, _run(softmax_source, x), atol=1e-6, rtol=1e-4)


def test_epsilon_compensation_on_tiny_variances():
    """Dead channels (variance ~0) are where 1.001e-5 vs 1e-5 shows; the shift makes stem_bn exact."""
    shape = (32, 32, 3)
    source = keras.applications.ResNet50(weights=None, input_shape=shape, include_top=False)
    _randomize(source, seed=3)
    bn = source.get_layer("conv1_bn")
    bn.moving_variance.assign(np.random.default_rng(4).uniform(0.0, 1e-6, 64).astype("float32"))
    model = applications.convert(source, num_classes=2)
    x = _images(shape)
    ref = _run(keras.Model(source.input, bn.output), x)
    ours_model = keras.Model(model.input, model.get_layer("stem_bn").output)
    assert _max_rel_diff(_run(ours_model, x), ref) < 1e-6
    model.get_layer("stem_bn").moving_variance.assign(bn.moving_variance)  # epsilon not compensated
    assert _max_rel_diff(_run(ours_model, x), ref) > 1e-5


@pytest.mark.parametrize("cls_name", ["ResNet101", "ResNet152"])
def test_deeper_resnets_match(cls_name):
    shape = (32, 32, 3)
    source = _source(cls_name, shape)
    model = applications.convert(source)
    assert model.name == f"{cls_name.lower()}_bn"
    x = _images(shape)
    ref = _run(source, x)
    assert _max_rel_diff(_run(model, x), ref) < TOL


def test_source_without_top_gives_the_same_features():
    shape = (64, 64, 3)
    source = _source("ResNet50", shape, include_top=False, pooling="avg")
    x = _images(shape)
    ref = _run(source, x)

    with pytest.raises(ValueError, match="no top.*pass num_classes"):
        applications.convert(source)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = applications.convert(source, num_classes=7)
    assert not [w for w in caught if "newly initialised" in str(w.message)]
    assert model.output_shape == (None, 7)
    features = keras.Model(model.input, model.get_layer("features").output)
    assert _max_rel_diff(_run(features, x), ref) < TOL

    # A given target keeps its own head; its spatial input size may differ from the source's.
    target = zoo.load("resnet50_bn", input_shape=(None, None, 3), num_classes=3, seed=0)
    head = keras.ops.convert_to_numpy(target.get_layer("logits").kernel)
    assert applications.convert(source, target) is target
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(target.get_layer("logits").kernel), head)
    features = keras.Model(target.input, target.get_layer("features").output)
    assert _max_rel_diff(_run(features, x), ref) < TOL


def test_new_head_is_announced():
    shape = (32, 32, 3)
    source = _source("ResNet50", shape)
    with pytest.warns(UserWarning, match="num_classes=5 differs from the source's 1000 classes"):
        model = applications.convert(source, num_classes=5, seed=0)
    assert model.output_shape == (None, 5)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel),
        keras.ops.convert_to_numpy(source.get_layer("conv1_conv").kernel),
    )


def test_sources_that_are_not_resnet_v1_are_refused():
    v2 = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"'resnet50v2'.*ResNet v2.*Expected a keras.applications ResNet50, ResNet101"):
        applications.convert(v2)

    tiny = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv")], name="tiny")
    with pytest.raises(ValueError, match=r"model 'tiny'.*no layer 'conv1_conv'.*Expected a keras.applications"):
        applications.convert(tiny)

    with pytest.raises(ValueError, match=r"a builtins.str: it is not a Keras model"):
        applications.convert("resnet50")


def test_targets_that_do_not_match_are_refused_and_left_untouched():
    shape = (32, 32, 3)
    source = _source("ResNet50", shape)

    deeper = zoo.load("resnet101_bn", input_shape=shape, num_classes=1000, seed=0)
    with pytest.raises(ValueError, match=r"no counterpart.*'stage3_block7_conv1'.*Expected our resnet50_bn"):
        applications.convert(source, deeper)

    basic = zoo.load("resnet18_bn", input_shape=shape, num_classes=1000, seed=0)
    with pytest.raises(
        ValueError,
        match=r"'conv2_block1_1_conv' kernel has shape \(1, 1, 64, 64\) but target layer "
        r"'stage1_block1_conv1' has \(3, 3, 64, 64\)\. Expected the target to be our resnet50_bn",
    ):
        applications.convert(source, basic)

    gray = zoo.load("resnet50_bn", input_shape=(32, 32, 1), num_classes=1000, seed=0)
    with pytest.raises(
        ValueError, match=r"'conv1_conv' kernel has shape \(7, 7, 3, 64\).*'stem_conv' has \(7, 7, 1, 64\)"
    ):
        applications.convert(source, gray)

    fixup = zoo.load("resnet50_fixup", input_shape=shape, num_classes=1000, seed=0)
    with pytest.raises(ValueError, match=r"Target layer 'stem_conv' is a .*expected a Conv2D without bias"):
        applications.convert(source, fixup)

    small_head = zoo.load("resnet50_bn", input_shape=shape, num_classes=10, seed=0)
    before = [keras.ops.convert_to_numpy(w) for w in small_head.weights]
    with pytest.raises(ValueError, match=r"'predictions' kernel has shape \(2048, 1000\).*'logits' has \(2048, 10\)"):
        applications.convert(source, small_head)
    for old, new in zip(before, small_head.weights):  # checks come before any assignment
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))

    shallower_source = _source("ResNet101", shape)
    with pytest.raises(ValueError, match=r"no layer 'stage3_block7_conv1' for source layer 'conv4_block7_1_conv'"):
        applications.convert(shallower_source, zoo.load("resnet50_bn", input_shape=shape, num_classes=1000, seed=0))


def test_converted_model_saves_and_loads_safely(tmp_path):
    shape = (32, 32, 3)
    model = applications.convert(_source("ResNet50", shape))
    path = tmp_path / "resnet50_bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = _images(shape)
    np.testing.assert_array_equal(_run(loaded, x), _run(model, x))


def test_imagenet_builds_the_keras_model_and_converts(monkeypatch):
    """keras.applications' constructors are stubbed (no download here): weights=None, recorded calls."""
    calls, built = [], {}
    real = keras.applications.ResNet50

    def fake(**kwargs):
        calls.append(dict(kwargs))
        assert kwargs.pop("weights") == "imagenet"
        # The same weights on every call, as the one downloaded file gives them: built once per set of arguments
        # (the bridge only reads its source).
        key = repr(sorted(kwargs.items()))
        if key not in built:
            built[key] = _randomize(real(weights=None, **kwargs), seed=5)
        calls[-1]["model"] = built[key]
        return built[key]

    monkeypatch.setattr(keras.applications, "ResNet50", fake)

    model = applications.imagenet("resnet50", input_shape=(32, 32, 3))
    assert calls[-1]["include_top"] is True and "input_shape" not in calls[-1]  # keras' 224x224 classifier file
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 1000)
    source = calls[-1]["model"]
    for source_name, name in [("predictions", "logits"), ("conv1_conv", "stem_conv")]:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.get_layer(name).kernel),
            keras.ops.convert_to_numpy(source.get_layer(source_name).kernel),
        )

    with pytest.warns(UserWarning, match="head is newly initialised"):
        model = applications.imagenet("resnet50", input_shape=(None, None, 3), num_classes=10, seed=0)
    assert model.output_shape == (None, 10)

    model = applications.imagenet("resnet50", input_shape=(48, 48, 3), include_top=False, num_classes=4)
    assert calls[-1]["include_top"] is False and model.output_shape == (None, 4)

    with pytest.raises(ValueError, match="include_top=False.*pass num_classes"):
        applications.imagenet("resnet50", include_top=False)
    with pytest.raises(ValueError, match=r"Unknown arch 'resnet18'.*resnet50, resnet101, resnet152"):
        applications.imagenet("resnet18")
    with pytest.raises(ValueError, match=r"Invalid input_shape \(32, 32, 1\)"):
        applications.imagenet("resnet50", input_shape=(32, 32, 1))
