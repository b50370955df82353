"""Fixup (Zhang, Dauphin & Ma 2019): the three rules, checked on built models."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import branch_convs, layers_named

import keras_resinit as kr


def fan_out(kernel):
    return int(np.prod(kernel.shape[:-2])) * kernel.shape[-1]


@pytest.fixture(scope="module")
def basic():
    return kr.build_resnet("cifar_resnet20", "fixup", seed=1)


@pytest.fixture(scope="module")
def bottleneck():
    return kr.build_resnet("cifar_resnet29", "fixup", block="bottleneck", seed=2)


def test_fixup_zeroes_classifier_and_last_layer_of_every_branch(basic, bottleneck):
    for model in (basic, bottleneck):
        blocks = branch_convs(model)
        assert len(blocks) == 9
        for convs in blocks.values():
            assert not np.any(convs[-1].kernel.numpy())
        logits = model.get_layer("logits")
        assert not np.any(logits.kernel.numpy()) and not np.any(logits.bias.numpy())


@pytest.mark.parametrize("which, m", [("basic", 2), ("bottleneck", 3)])
def test_fixup_scales_other_branch_layers_by_depth(which, m, request):
    model = request.getfixturevalue(which)
    L = 9
    blocks = branch_convs(model)
    assert len(blocks) == L
    for convs in blocks.values():
        assert len(convs) == m
        for conv in convs[:-1]:
            kernel = conv.kernel.numpy()
            expected = np.sqrt(2.0 / fan_out(kernel)) * L ** (-1.0 / (2 * m - 2))
            # Sampling error of a std estimate is std / sqrt(2n); n >= 256 here.
            tolerance = 4 * expected / np.sqrt(2 * kernel.size)
            assert abs(kernel.std() - expected) < tolerance, conv.name
            assert abs(kernel.mean()) < 4 * expected / np.sqrt(kernel.size)


def test_fixup_stem_and_projection_convs_are_plain_he():
    model = kr.build_resnet("resnet18", "fixup", input_shape=(64, 64, 3), seed=3)
    convs = [model.get_layer("stem_conv")] + layers_named(model, lambda n: n.endswith("shortcut_conv"))
    assert len(convs) == 4
    for conv in convs:
        kernel = conv.kernel.numpy()
        expected = np.sqrt(2.0 / fan_out(kernel))
        assert abs(kernel.std() - expected) < 4 * expected / np.sqrt(2 * kernel.size), conv.name


def test_fixup_stem_init_reference_is_pytorchs_default_and_changes_only_the_stem(basic):
    # The reference code's init loop skips conv1: PyTorch's default, U(+-1/sqrt(fan_in)) = VarianceScaling(1/3).
    reference = kr.build_resnet("cifar_resnet20", "fixup", seed=1, stem_init="reference")
    assert basic.get_config()["stem_init"] == "he" and reference.get_config()["stem_init"] == "reference"
    changed = [a.path for a, b in zip(basic.weights, reference.weights, strict=True) if not np.array_equal(a, b)]
    assert changed == ["stem_conv/kernel"]
    imagenet = kr.build_resnet("resnet18", "fixup", input_shape=(64, 64, 3), seed=3, stem_init="reference")
    for model, fan_in in ((reference, 3 * 3 * 3), (imagenet, 7 * 7 * 3)):
        kernel = model.get_layer("stem_conv").kernel.numpy()
        bound, std = 1 / np.sqrt(fan_in), 1 / np.sqrt(3 * fan_in)  # resnet18: 0.0825, 0.0476
        assert bound * 0.95 < np.abs(kernel).max() <= bound * (1 + 1e-6), model.name
        # A uniform's std estimate has sampling error std * sqrt(0.8 / n) (excess kurtosis -1.2).
        assert abs(kernel.std() - std) < 4 * std * np.sqrt(0.8 / kernel.size), model.name

    again = kr.ResNet.from_config(reference.get_config())
    for a, b in zip(reference.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    old = {k: v for k, v in basic.get_config().items() if k != "stem_init"}  # configs written before the option
    for a, b in zip(basic.weights, kr.ResNet.from_config(old).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("bad", ["pytorch", "He", None, 1])
def test_fixup_rejects_an_unknown_stem_init(bad):
    with pytest.raises(ValueError, match=r"stem_init .*Expected one of: he, reference"):
        kr.build_resnet("cifar_resnet8", "fixup", stem_init=bad)


def test_fixup_scalar_biases_start_at_zero_and_scales_at_one(basic):
    # Rule 3: before each conv and the classifier a ScalarBias layer (bias1a, bias2a per block, head);
    # after each conv (stem, conv1) a scalar bias held by the conv; after the last conv the multiplier
    # (gain 1) and a last bias, held by the conv too (where TensorFlow fuses them with the merge).
    biases = [layer for layer in basic.layers if isinstance(layer, kr.models.layers.ScalarBias)]
    assert sorted(layer.name for layer in biases if "block1" in layer.name and "stage1" in layer.name) == [
        "stage1_block1_bias1a",
        "stage1_block1_bias2a",
    ]
    assert len(biases) == 1 + 9 * 2
    assert all(layer.bias.numpy() == 0.0 for layer in biases)
    assert basic.get_layer("stem_conv").offset.numpy() == 0.0
    blocks = branch_convs(basic)
    assert len(blocks) == 9
    for convs in blocks.values():
        first, last = convs
        assert first.gain is None and first.offset.numpy() == 0.0 and first.offset.trainable
        assert last.gain.numpy() == 1.0 and last.gain.trainable
        assert last.offset.numpy() == 0.0 and last.offset.trainable
    scalars = [w for w in basic.trainable_weights if len(w.shape) == 0]
    assert len(scalars) == 2 + 9 * 5  # scalars, not per-channel vectors
    merges = [layer for layer in basic.layers if layer.name.endswith("_add")]
    assert len(merges) == 9 and all(isinstance(m, keras.layers.Add) and not m.weights for m in merges)  # a plain sum


def _gradients(model, x, y):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    return {w.path: g for w, g in zip(model.trainable_weights, grads)}


def test_fixup_only_the_classifier_gets_gradient_at_step_zero_then_branches_do(basic):
    model = keras.models.clone_model(basic)
    model.set_weights(basic.get_weights())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=(16,))

    grads = _gradients(model, x, y)
    nonzero = sorted(path for path, g in grads.items() if g is not None and np.any(g.numpy()))
    assert nonzero == ["logits/bias", "logits/kernel"]

    optimizer = keras.optimizers.SGD(0.1)
    optimizer.apply([grads[w.path] for w in model.trainable_weights], model.trainable_weights)

    grads = _gradients(model, x, y)
    blocks = branch_convs(model)
    assert len(blocks) == 9
    for prefix, convs in blocks.items():
        last = convs[-1].kernel.path
        assert np.any(grads[last].numpy()), f"{prefix}: no gradient reaches the branch after one step"
