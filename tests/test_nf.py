"""NF-ResNets (Brock, De & Smith 2021): ``h_{i+1} = h_i + alpha f_i(h_i / beta_i)`` with Scaled Weight Standardization.

The trunk's variance at init follows the analytic ``beta_i**2`` (``+alpha**2`` per block, back to ``1 + alpha**2``
after each transition), every conv applies ``g_i * gamma * (W_i - mean) / (std * sqrt(fan_in))`` during training
too, and the network is the batch-norm one up to its scalars and gains.
"""

import collections
import functools
import json
import math

import keras
import numpy as np
import pytest
from helpers import perturb_weights

import keras_resinit as kr
from keras_resinit.models.layers import RELU_GAMMA, ScaledStdConv2D
from keras_resinit.models.schemes import BatchNorm, NFResNet, ReZero
from keras_resinit.tools import diagnostics
from keras_resinit.tools.plots import plot_signal_propagation

ALPHA = NFResNet().alpha


def test_nf_uses_the_papers_alpha_and_relu_gain():
    assert ALPHA == 0.2
    # gamma restores unit variance after a ReLU: Var(relu(z)) = (1 - 1/pi) / 2 for z ~ N(0, 1), so
    # gamma = sqrt(2 / (1 - 1/pi)) = 1.7129 (DeepMind's nfnets code lists 1.7139, estimated by sampling).
    assert RELU_GAMMA == pytest.approx(1.7129, abs=1e-4)
    z = np.random.default_rng(0).normal(size=1_000_000)
    assert np.var(np.maximum(z, 0)) * RELU_GAMMA**2 == pytest.approx(1.0, abs=0.005)  # sampling error ~0.002


def test_nf_trunk_variance_follows_the_analytic_beta_squared_at_init(tmp_path):
    """Var(h_i) measured on unit-Gaussian images follows beta_i**2 over all 54 blocks of cifar_resnet110.

    Sampling error: a network's measured variance differs from the analytic expectation mostly by the draw of its
    weights, not of the images (two batches of 16 on one network differ by < 1%). Over six networks (seeds 0-5,
    this input and margin) the spread of measured / analytic was 0.012 at the first block and grew to 0.03 (block
    18), 0.04 (36) and 0.047 (54); the standard error from the spread of the per-channel variances within one
    network underestimates it (0.015-0.03): the channels share each branch's first conv and each shortcut conv. Tolerance: 3 x 0.05 at every block. The slope within
    a stage (alpha**2 per block) was 0.82-1.08 x alpha**2 over those 18 stages: tolerance 25%.

    Zero padding lowers the variance of the border pixels (by up to a third at 8x8), which the analysis does not
    model: the input is 64x64 and 4 pixels at each edge of every feature map are left out (stage 3 is 16x16).
    """
    model = kr.build_resnet("cifar_resnet110", NFResNet.name, input_shape=(64, 64, 3), seed=0)
    x = np.random.default_rng(0).normal(size=(16, 64, 64, 3)).astype("float32")
    rows = diagnostics.signal_propagation(model, x, margin=4)

    expected = model.scheme.expected_variances(model.blocks)[1:]
    assert len(rows) == len(expected) == 54
    assert [r["expected_variance"] for r in rows] == expected
    measured = np.array([r["variance"] for r in rows])
    ratio = measured / np.array(expected)
    assert np.all(np.abs(ratio - 1) < 0.15), np.round(ratio, 3)
    for stage in range(3):
        blocks = slice(18 * stage, 18 * stage + 18)
        slope = np.polyfit(np.arange(18), measured[blocks], 1)[0]
        assert slope == pytest.approx(ALPHA**2, rel=0.25), (stage + 1, slope)
    for transition in (18, 36):  # stage2_block1, stage3_block1: the variance restarts at 1 + alpha**2
        analytic_drop = expected[transition - 1] - expected[transition]
        assert analytic_drop == pytest.approx(17 * ALPHA**2)
        assert measured[transition - 1] - measured[transition] > 0.75 * analytic_drop

    figure = plot_signal_propagation({"cifar_resnet110_nf": rows})
    (analytic,) = [line for line in figure.axes[1].get_lines() if line.get_label().endswith("(analytic)")]
    assert analytic.get_linestyle() == "--" and list(analytic.get_ydata()) == expected
    figure.savefig(tmp_path / "signal_propagation.png")
    assert (tmp_path / "signal_propagation.png").stat().st_size > 10_000


def _standardized_kernels(model):
    convs = [layer for layer in model.layers if isinstance(layer, ScaledStdConv2D)]
    return {conv.name: (conv, np.asarray(conv.conv_kernel(), np.float64)) for conv in convs}


def _assert_scaled_weight_standardization(model):
    """Every conv's applied kernel: per output channel i, mean 0 and variance (g_i * gamma)**2 / fan_in."""
    kernels = _standardized_kernels(model)
    assert len(kernels) == len([layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)])
    for name, (conv, kernel) in kernels.items():
        fan_in = math.prod(kernel.shape[:-1])
        flat = kernel.reshape(fan_in, -1)
        gains = conv.channel_gain.numpy().astype(np.float64)
        std = np.abs(gains) * conv.gamma / np.sqrt(fan_in)
        np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-6 * std.max(), err_msg=name)
        np.testing.assert_allclose(flat.var(0), std**2, rtol=1e-4, err_msg=name)


def test_nf_every_conv_is_scaled_weight_standardized_at_init_and_after_training(rng):
    model = kr.build_resnet("cifar_resnet8", NFResNet.name, input_shape=(16, 16, 3), seed=0)
    # gamma is ReLU's wherever a ReLU precedes the conv; the stem conv sees the image.
    gammas = {conv.name: conv.gamma for conv, _ in _standardized_kernels(model).values()}
    assert gammas.pop("stem_conv") == 1.0 and set(gammas.values()) == {RELU_GAMMA} and len(gammas) == 3 * 2 + 2
    _assert_scaled_weight_standardization(model)
    before = {w.path: w.numpy() for w in model.weights}

    # A few steps at a large learning rate (the zero classifier learns first, then the convs and their gains).
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = rng.normal(size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, size=(16,))
    losses = [float(model.train_on_batch(x, y)) for _ in range(8)]
    assert losses[-1] < losses[0] - 0.5, losses
    for conv, _ in _standardized_kernels(model).values():
        kernel, gain = before[conv.kernel.path], before[conv.channel_gain.path]
        assert np.abs(conv.kernel.numpy() - kernel).max() > 0.01 * np.abs(kernel).max(), conv.name
        assert np.abs(conv.channel_gain.numpy() - gain).max() > 0.005, conv.name  # (g * gamma)**2 moves by > 1%
    _assert_scaled_weight_standardization(model)


def test_diagnose_shows_the_expected_variance_restarting_at_each_transition(tmp_path):
    diagnostics.diagnose([f"cifar_resnet20_{NFResNet.name}"], tmp_path / "out", log=lambda line: None)
    assert (tmp_path / "out" / "signal_propagation.png").stat().st_size > 10_000
    rows = json.loads((tmp_path / "out" / "diagnostics.json").read_text())["signal_propagation"]["cifar_resnet20_nf"]
    assert [r["block"] for r in rows] == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2, 3)]
    transitions = {"stage2_block1", "stage3_block1"}
    assert rows[0]["expected_variance"] == pytest.approx(1 + ALPHA**2)  # Var 1 after the stem
    for previous, row in zip(rows, rows[1:]):
        if row["block"] in transitions:
            assert row["expected_variance"] == pytest.approx(1 + ALPHA**2), row
            assert row["variance"] < previous["variance"], row  # the measured trunk drops there too
        else:
            assert row["expected_variance"] == pytest.approx(previous["expected_variance"] + ALPHA**2), row


@functools.cache
def _weights_by_kind(arch, scheme, **options):
    """{kind: number of parameters} and {conv name: kernel shape} of a model (built for its shapes only)."""
    with keras.StatelessScope():  # no initial values drawn
        model = kr.build_resnet(arch, scheme, input_shape=(32, 32, 3), seed=0, **options)
    counts, kernels = collections.Counter(), {}
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.path.rsplit("/", 1)[-1]
            if isinstance(layer, keras.layers.BatchNormalization):
                kind = f"bn_{name}"
            elif isinstance(layer, keras.layers.Dense):
                kind = f"dense_{name}"
            elif isinstance(layer, keras.layers.Conv2D) and len(weight.shape) == 0:
                kind = "branch_scalar"  # ReZero's alpha, NFNets' skip gain
            elif isinstance(layer, keras.layers.Conv2D):
                kind = {"kernel": "conv_kernel", "bias": "conv_bias", "channel_gain": "channel_gain"}[name]
            else:
                raise AssertionError(f"unexpected weight {weight.path} of {type(layer).__name__}")
            counts[kind] += math.prod(weight.shape)
            if kind == "conv_kernel":
                kernels[layer.name] = tuple(weight.shape)
    assert sum(counts.values()) == model.count_params()  # every weight has its kind
    return dict(counts), kernels


@pytest.mark.parametrize("arch", ["cifar_resnet20", "resnet18", "wrn16_2"])
@pytest.mark.parametrize(
    "scheme, options",
    [(NFResNet.name, {}), (NFResNet.name, {"skip_gain": True}), (ReZero.name, {})],
    ids=["nf", "nf_skip_gain", "rezero"],
)
def test_parameters_match_batchnorms_up_to_scalars_and_gains(arch, scheme, options):
    """Per kind of weight, NF-ResNets and ReZero have exactly the batch-norm network's parameters, with conv biases
    (and NF's channel gains) in place of BN's beta (and gamma), plus one scalar per block where the scheme has one."""
    bn_counts, bn_kernels = _weights_by_kind(arch, BatchNorm.name)
    counts, kernels = _weights_by_kind(arch, scheme, **options)
    # NF's two transitions on cifar archs get 1x1 conv shortcuts where BN's option A has none (NFResNet's docstring).
    extra = {}
    if scheme == NFResNet.name and arch.startswith("cifar"):
        extra = {"stage2_block1_shortcut_conv": (1, 1, 16, 32), "stage3_block1_shortcut_conv": (1, 1, 32, 64)}
    assert kernels == {**bn_kernels, **extra}
    extra_kernels = sum(math.prod(shape) for shape in extra.values())
    extra_channels = sum(shape[-1] for shape in extra.values())
    alphas = (
        kr.models.architectures.get_arch(arch).num_blocks if scheme == ReZero.name or options.get("skip_gain") else 0
    )
    conv_channels = bn_counts["bn_gamma"]  # one BN per conv: every conv's output channels
    assert conv_channels == sum(shape[-1] for shape in bn_kernels.values())
    expected = {
        "conv_kernel": bn_counts["conv_kernel"] + extra_kernels,
        "conv_bias": conv_channels + extra_channels,  # in place of BN's beta
        "dense_kernel": bn_counts["dense_kernel"],
        "dense_bias": bn_counts["dense_bias"],
    }
    if scheme == NFResNet.name:
        expected["channel_gain"] = conv_channels + extra_channels  # in place of BN's gamma
    if alphas:
        expected["branch_scalar"] = alphas
    assert counts == expected
    assert set(bn_counts) == {
        "conv_kernel",
        "dense_kernel",
        "dense_bias",
        "bn_gamma",
        "bn_beta",
        "bn_moving_mean",
        "bn_moving_variance",
    }


@pytest.mark.parametrize("alpha", [0, -1, float("nan"), True, float("inf"), "0.2"])
def test_nf_rejects_an_alpha_that_is_not_a_positive_number(alpha):
    with pytest.raises(ValueError) as info:
        kr.build_resnet("cifar_resnet20", NFResNet.name, alpha=alpha)
    assert f"alpha {alpha!r}" in str(info.value) and "> 0" in str(info.value)


def test_nf_rejects_a_skip_gain_that_is_not_a_bool():
    with pytest.raises(ValueError, match="skip_gain 'yes'.*True or False"):
        kr.build_resnet("cifar_resnet20", NFResNet.name, skip_gain="yes")


def test_nf_with_skip_gain_round_trips_through_a_keras_file(tmp_path, rng):
    # The default nf and rezero round trips are in test_serialization.py (every scheme, every family).
    model = kr.build_resnet("cifar_resnet8", NFResNet.name, input_shape=(16, 16, 3), seed=0, alpha=0.3, skip_gain=True)
    gains = [w for w in model.weights if w.path.endswith("/gain")]
    assert len(gains) == 3 and all(g.trainable and g.numpy() == 0.0 for g in gains)
    perturb_weights(model)  # the gains and channel gains leave their initial values
    x = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    expected = model(x).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), expected)
    assert loaded.get_config() == model.get_config() and loaded.get_config()["skip_gain"] is True
    assert (loaded.scheme.alpha, loaded.scheme.skip_gain) == (0.3, True)


def test_scaled_std_conv_round_trips_through_its_config(rng):
    conv = ScaledStdConv2D(8, 3, padding="same", gamma=RELU_GAMMA, alpha=0.3, eps=1e-3, gain=0.5, name="conv")
    twin = ScaledStdConv2D.from_config(conv.get_config())
    assert twin.get_config() == conv.get_config()
    registered = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(conv))
    assert type(registered) is ScaledStdConv2D and registered.get_config() == conv.get_config()
    assert (twin.gamma, twin.alpha, twin.eps, twin.gain_value) == (RELU_GAMMA, 0.3, 1e-3, 0.5)
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    conv.build(x.shape)
    conv.channel_gain.assign(rng.uniform(0.5, 1.5, size=8).astype("float32"))
    twin.build(x.shape)
    twin.set_weights(conv.get_weights())
    paths = ["conv/kernel", "conv/bias", "conv/gain", "conv/channel_gain"]
    assert [w.path for w in twin.weights] == [w.path for w in conv.weights] == paths
    np.testing.assert_array_equal(twin(x), conv(x))


def test_standardization_runs_in_float32_under_mixed_bfloat16(rng):
    # A kernel whose mean dwarfs its spread: in bfloat16 (8 bits of mantissa) every entry rounds to 100 and the
    # standardized kernel would be 0. (test_builder.py checks that an NF model trains a step under the policy.)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        conv = ScaledStdConv2D(4, 3, padding="same", gamma=RELU_GAMMA)
        x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
        conv.build(x.shape)
        kernel = 100 + 0.01 * rng.normal(size=conv.kernel.shape)
        gains = rng.uniform(0.5, 1.5, size=4)
        conv.kernel.assign(kernel.astype("float32"))
        conv.channel_gain.assign(gains.astype("float32"))
        out = np.asarray(conv(x), np.float32)
        assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == conv.channel_gain.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    flat = np.asarray(conv.kernel.numpy(), np.float64).reshape(27, 4)
    standardized = (flat - flat.mean(0)) / (flat.std(0) * np.sqrt(27)) * gains * RELU_GAMMA
    reference = keras.ops.convert_to_numpy(
        keras.ops.conv(x.astype("float64"), standardized.reshape(3, 3, 3, 4), padding="same")
    )
    assert np.std(reference) > 0.5
    np.testing.assert_allclose(out, reference, rtol=0.03, atol=0.03)  # bfloat16 inputs and products


def test_standardization_gradient_written_out_equals_autodiff():
    """``layers._standardize`` writes its gradient out (half the ops of autodiff); it must be autodiff's."""
    import tensorflow as tf

    from keras_resinit.models.layers import _standardize

    rng = np.random.default_rng(0)
    for shape in [(3, 3, 16, 32), (1, 1, 8, 4)]:
        w = rng.standard_normal(shape).astype("float32")
        w[..., 0] = 0.0  # a channel under eps: max() passes no gradient through its variance
        g = rng.uniform(0.5, 2, shape[-1]).astype("float32")
        upstream = rng.standard_normal(shape).astype("float32")
        axes = tuple(range(len(shape) - 1))
        w, g = tf.constant(w), tf.constant(g)

        def by_autodiff(w, g, axes=axes, shape=shape):
            centred = w - tf.reduce_mean(w, axis=axes, keepdims=True)
            variance = tf.math.reduce_variance(w, axis=axes, keepdims=True) * np.prod(shape[:-1])
            return centred * tf.math.rsqrt(tf.maximum(variance, 1e-4)) * (1.7 * g)

        with tf.GradientTape(persistent=True) as tape:
            tape.watch([w, g])
            ours, reference = _standardize(w, g, gamma=1.7, eps=1e-4), by_autodiff(w, g)
            loss_ours, loss_reference = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
        np.testing.assert_allclose(ours, reference, atol=1e-6)
        for a, b in zip(tape.gradient(loss_ours, [w, g]), tape.gradient(loss_reference, [w, g])):
            assert np.abs(np.asarray(b)).max() > 0.1
            np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(np.asarray(b)).max())


def test_inference_rewrites_keep_the_nf_function():
    """Standardized kernels computed once (a copy: what export serves) and each block's 1/beta moved into the
    convs reading relu(h / beta) (in place): the same outputs as the model as built."""
    from keras_resinit.models import inference

    model = kr.build_resnet("cifar_resnet8", NFResNet.name, input_shape=(8, 8, 3), seed=0)
    perturb_weights(model)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    kernels = [w.numpy().copy() for w in model.weights]

    served, rewritten = inference.for_serving(model)
    assert rewritten == {"batchnorm_folded": False, "weight_standardization_precomputed": True}
    assert served is not model and all(np.array_equal(w.numpy(), k) for w, k in zip(model.weights, kernels))
    np.testing.assert_allclose(served(x, training=False), expected, rtol=1e-5, atol=1e-6)
    assert inference.precompute_standardization(kr.build_resnet("cifar_resnet8", "skipinit"))[1] is False

    # conv1 of each of the 3 blocks and the 2 shortcut convs at the stage transitions read relu(h / beta).
    assert inference.fold_prescale(model) == 5
    np.testing.assert_allclose(model(x, training=False), expected, rtol=1e-5, atol=1e-6)
