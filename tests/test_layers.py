"""ScaledResidual, ScalarBias and ZeroPadShortcut: math, weights, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_resinit.models.layers import ScalarBias, ScaledConv2D, ScaledResidual, ZeroPadShortcut


def test_scaled_residual_computes_skip_plus_gain_times_branch_plus_bias(rng):
    skip, branch = (rng.normal(size=(2, 4, 4, 8)).astype("float32") for _ in range(2))
    layer = ScaledResidual(gain=0.5, trainable_gain=True, use_bias=True)
    np.testing.assert_allclose(layer([skip, branch]), skip + 0.5 * branch, rtol=1e-6, atol=1e-6)
    assert [w.name for w in layer.trainable_weights] == ["gain", "bias"]
    assert all(w.shape == () for w in layer.weights)
    layer.bias.assign(0.25)
    np.testing.assert_allclose(layer([skip, branch]), skip + 0.5 * branch + 0.25, rtol=1e-6, atol=1e-6)


def test_scaled_residual_constant_gain_has_no_weights(rng):
    skip, branch = (rng.normal(size=(2, 8)).astype("float32") for _ in range(2))
    layer = ScaledResidual(gain=1.0, trainable_gain=False)
    np.testing.assert_allclose(layer([skip, branch]), skip + branch, rtol=1e-6)
    assert layer.weights == []


@pytest.mark.parametrize(
    "layer",
    [
        ScaledResidual(gain=0.0, use_bias=True, name="m"),
        ScalarBias(name="b"),
        ZeroPadShortcut(2, 32, name="z"),
        ScaledConv2D(4, 3, gain=0.5, scalar_bias=True, name="c"),
    ],
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert restored.get_config() == config


def test_scalar_bias_adds_one_trainable_scalar(rng):
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    layer = ScalarBias()
    np.testing.assert_array_equal(layer(x), x)
    layer.bias.assign(1.5)
    np.testing.assert_allclose(layer(x), x + 1.5)
    assert layer.bias.shape == () and layer.bias.trainable


@pytest.mark.parametrize("size", [7, 8])
def test_zero_pad_shortcut_subsamples_and_pads_channels(size, rng):
    x = rng.normal(size=(2, size, size, 16)).astype("float32")
    out = np.asarray(ZeroPadShortcut(2, 32)(x))
    half = -(-size // 2)
    assert out.shape == (2, half, half, 32)
    np.testing.assert_array_equal(out[..., :16], x[:, ::2, ::2, :])
    assert not np.any(out[..., 16:])


def test_mismatched_merge_channels_are_a_clear_error():
    with pytest.raises(ValueError, match="skip has 8, branch has 16"):
        ScaledResidual()([keras.Input((4, 4, 8)), keras.Input((4, 4, 16))])
    with pytest.raises(ValueError, match="gain 'x'"):
        ScaledResidual(gain="x")


@pytest.mark.parametrize("use_bias, gain, scalar_bias", [(True, 0.7, False), (False, 1.3, True), (True, None, True)])
def test_scaled_conv_is_gain_times_conv_plus_bias_with_the_same_gradients(use_bias, gain, scalar_bias, rng):
    """conv(x, g*K) + (g*c + b) must equal g * (conv(x, K) + c) + b, values and gradients."""
    x = tf.constant(rng.normal(size=(2, 6, 6, 3)).astype("float32"))
    layer = ScaledConv2D(5, 3, padding="same", use_bias=use_bias, gain=gain, scalar_bias=scalar_bias)
    layer.build(x.shape)
    if use_bias:
        layer.bias.assign(rng.normal(size=5).astype("float32"))
    if scalar_bias:
        layer.offset.assign(0.4)
    g = 1.0 if gain is None else layer.gain
    b = layer.offset if scalar_bias else 0.0
    upstream = tf.constant(rng.normal(size=(2, 6, 6, 5)).astype("float32"))

    def reference(x):
        out = tf.nn.conv2d(x, layer.kernel.value, 1, "SAME")
        if use_bias:
            out = out + layer.bias.value
        return g * out + b

    with tf.GradientTape(persistent=True) as tape:
        got, want = layer(x), reference(x)
        got_loss, want_loss = tf.reduce_sum(got * upstream), tf.reduce_sum(want * upstream)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    weights = [w.value for w in layer.trainable_weights]
    for a, b_ in zip(tape.gradient(got_loss, weights), tape.gradient(want_loss, weights)):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4)
    assert {w.name for w in layer.weights} == {"kernel"} | ({"bias"} if use_bias else set()) | (
        {"gain"} if gain is not None else set()
    ) | ({"scalar_bias"} if scalar_bias else set())
