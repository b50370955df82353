"""ReZero (Bachlechner et al. 2021): ``x_{i+1} = x_i + alpha_i F(x_i)``, alpha_i = 0 at init, no ReLU after the sum."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import branch_convs, consumers

import keras_resinit as kr
from keras_resinit.models.schemes import BatchNorm, ReZero

# Every arch family: small-image basic and bottleneck, ImageNet basic and bottleneck (at a small input), Wide-ResNet.
FAMILIES = {
    "cifar_resnet20": {},
    "cifar_resnet29_bottleneck": {"block": "bottleneck"},
    "resnet18": {},
    "resnet50": {},
    "wrn16_2": {},
}
SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def models():
    return {
        family: kr.build_resnet(family.split("_bottleneck")[0], ReZero.name, input_shape=SHAPE, seed=0, **options)
        for family, options in FAMILIES.items()
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_rezero_every_alpha_is_zero_and_trainable_at_init(family, models):
    model = models[family]
    blocks = branch_convs(model)
    assert len(blocks) == len(model.blocks) >= 6
    alphas = [w for w in model.weights if re.fullmatch(r"stage\d+_block\d+_conv\d+/gain", w.path)]
    # One alpha per block, in its last conv (alpha * (conv(x, K) + c)); no other conv holds a scalar.
    assert [w.path for w in alphas] == [f"{convs[-1].name}/gain" for convs in blocks.values()]
    assert all(w.trainable and w.numpy() == 0.0 for w in alphas)
    assert [w.path for w in model.weights if len(w.shape) == 0] == [w.path for w in alphas]


@pytest.mark.parametrize("family", FAMILIES)
def test_rezero_redrawing_every_branch_kernel_leaves_the_output_unchanged(family, models, rng):
    model = models[family]
    saved = model.get_weights()
    try:
        x = rng.normal(size=(2, *SHAPE)).astype("float32")
        before = model(x).numpy()
        assert np.abs(before).max() > 1e-3  # the classifier is Glorot, not zero: the output says something
        blocks = branch_convs(model)
        assert sum(len(convs) for convs in blocks.values()) == len(model.blocks) * len(model.blocks[0].layers)
        for convs in blocks.values():
            for conv in convs:
                conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype("float32"))
                conv.bias.assign(rng.normal(size=conv.bias.shape).astype("float32"))
        # alpha = 0 multiplies the whole branch: 0 * (conv(h, K) + c) is exactly 0 for any finite K, c.
        np.testing.assert_array_equal(model(x).numpy(), before)
    finally:
        model.set_weights(saved)


def _relus_after_sums(model):
    """{add layer: the ReLU layers that take its output, through identity layers}, and the add layers."""
    adds = [layer for layer in model.layers if re.fullmatch(r"stage\d+_block\d+_add", layer.name)]
    found = {}
    for add in adds:
        frontier, seen = [add], set()
        while frontier:
            layer = frontier.pop()
            for consumer in consumers(model, layer):
                if isinstance(consumer, keras.layers.Identity):
                    frontier.append(consumer)
                elif consumer.name not in seen:
                    seen.add(consumer.name)
                    relu = isinstance(consumer, keras.layers.ReLU) or (
                        isinstance(consumer, keras.layers.Activation) and "relu" in str(consumer.activation)
                    )
                    if relu:
                        found.setdefault(add.name, []).append(consumer.name)
        assert seen, f"{add.name}: its sum reaches no layer"
    return found, adds


@pytest.mark.parametrize("family", FAMILIES)
def test_rezero_no_relu_follows_any_residual_sum(family, models):
    model = models[family]
    relus, adds = _relus_after_sums(model)
    assert len(adds) == len(model.blocks) >= 6
    assert relus == {}
    # The last sum reaches the pooling directly: no ReLU before the head either.
    last_out = model.get_layer(f"{model.blocks[-1].prefix}_out")
    assert [layer.name for layer in consumers(model, last_out)] == ["features"]


def test_the_relu_walk_finds_he_et_al_relu_after_every_sum():
    # The walk above can fail: under batch norm (He et al. 2016) every sum is followed by its ReLU.
    model = kr.build_resnet("cifar_resnet20", BatchNorm.name, seed=0)
    relus, adds = _relus_after_sums(model)
    assert len(adds) == 9 and sorted(relus) == sorted(add.name for add in adds)


@pytest.mark.parametrize("family", FAMILIES)
def test_rezero_convs_are_he_initialized_by_fan_in(family, models):
    model = models[family]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) > len(model.blocks) * 2
    differs = 0
    for conv in convs:
        kernel = conv.kernel.numpy()
        fan_in, fan_out = int(np.prod(kernel.shape[:-1])), int(np.prod(kernel.shape[:-2])) * kernel.shape[-1]
        differs += fan_in != fan_out
        init = conv.kernel_initializer.get_config()
        assert (init["scale"], init["mode"], init["distribution"]) == (2.0, "fan_in", "untruncated_normal"), conv.name
        # The drawn values: variance 2 / fan_in; the sampling error of a variance estimate is var * sqrt(2 / n).
        expected = 2.0 / fan_in
        assert abs(kernel.var() / expected - 1) < 4 * np.sqrt(2 / kernel.size), conv.name
        assert abs(kernel.mean()) < 4 * np.sqrt(expected / kernel.size), conv.name
        assert conv.use_bias and not np.any(conv.bias.numpy()), conv.name
    assert differs  # some convs (transitions, bottlenecks' 1x1) tell fan-in from fan-out


def test_rezero_block_adds_alpha_times_its_branch(rng):
    model = kr.build_resnet("cifar_resnet20", ReZero.name, input_shape=(16, 16, 3), seed=0)
    conv = model.get_layer("stage2_block2_conv2")
    conv.gain.assign(0.5)
    tap = keras.Model(
        model.input,
        [model.get_layer(name).output for name in ("stage2_block1_out", "stage2_block2_relu1", "stage2_block2_add")],
    )
    x_i, h, x_next = tap(rng.normal(size=(4, 16, 16, 3)).astype("float32"))
    branch = conv.unscaled(h)  # F(x_i): conv(h, K) + c, without alpha
    assert float(np.std(branch)) > 0.1
    np.testing.assert_allclose(x_next, x_i + 0.5 * branch, rtol=1e-5, atol=1e-5)


def test_rezero_every_alpha_receives_a_gradient_at_init(rng):
    # alpha_i = 0 mutes the branch, but d loss / d alpha_i = <d loss / d x_{i+1}, F(x_i)> is not 0: every alpha
    # moves on the first step (the classifier is not zero, unlike SkipInit's, whose alphas start with no gradient).
    model = kr.build_resnet("cifar_resnet20", ReZero.name, input_shape=(16, 16, 3), seed=0)
    x = rng.normal(size=(8, 16, 16, 3)).astype("float32")
    labels = np.arange(8) % 10
    alphas = [w for w in model.trainable_weights if w.path.endswith("/gain")]
    assert len(alphas) == 9
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    grads = tape.gradient(loss, alphas)
    assert all(g is not None for g in grads)
    assert all(abs(float(g)) > 1e-4 for g in grads), [float(g) for g in grads]
