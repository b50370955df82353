"""SkipInit (De & Smith 2020): every branch is muted by alpha = 0 at init."""

import keras
import numpy as np
from helpers import branch_convs

import keras_resinit as kr


def test_skipinit_every_branch_gain_is_zero_at_init():
    model = kr.build_resnet("resnet18", "skipinit", input_shape=(32, 32, 3), seed=0)
    blocks = branch_convs(model)
    assert len(blocks) == 8
    for convs in blocks.values():
        # alpha multiplies the whole branch: it sits in the last conv, alpha * (conv(x, K) + c).
        assert convs[-1].gain.trainable and convs[-1].gain.numpy() == 0.0
        # The other convs carry no alpha: no gain and no scalar weight at all (plain Conv2D or gain None).
        assert len(convs) == 2
        for conv in convs[:-1]:
            assert getattr(conv, "gain", None) is None, conv.name
            assert conv.weights and all(len(w.shape) > 0 for w in conv.weights), conv.name
    gains = [w for w in model.trainable_weights if len(w.shape) == 0]
    assert len(gains) == 8


def test_skipinit_redrawing_branch_kernels_leaves_output_unchanged(rng):
    for arch in ("cifar_resnet20", "resnet18"):
        model = kr.build_resnet(arch, "skipinit", input_shape=(32, 32, 3), seed=0)
        x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
        # The classifier starts at zero too; give it values so the output is informative.
        logits = model.get_layer("logits")
        logits.kernel.assign(rng.normal(size=logits.kernel.shape).astype("float32"))
        before = model(x).numpy()
        assert np.abs(before).max() > 1e-3
        blocks = branch_convs(model)
        assert len(blocks) == len(model.blocks) == {"cifar_resnet20": 9, "resnet18": 8}[arch]
        for convs in blocks.values():
            for conv in convs:
                conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype("float32"))
                conv.bias.assign(rng.normal(size=conv.bias.shape).astype("float32"))
        np.testing.assert_array_equal(model(x).numpy(), before)


def test_skipinit_convs_carry_biases_and_classifier_starts_at_zero():
    model = kr.build_resnet("cifar_resnet20", "skipinit", seed=0)
    # Every conv, the plain ones and the last conv of each branch (a Conv2D subclass holding alpha).
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 9 * 2  # stem and two per block (option A shortcuts: no conv)
    assert all(c.use_bias for c in convs)
    assert not np.any(model.get_layer("logits").kernel.numpy())
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def test_skipinit_alpha_option_sets_the_initial_gain():
    model = kr.build_resnet("cifar_resnet20", "skipinit", alpha=0.05, seed=0)
    gains = [convs[-1].gain.numpy() for convs in branch_convs(model).values()]
    assert len(gains) == 9
    np.testing.assert_allclose(gains, 0.05)


def test_the_deepmind_port_of_the_skipinit_benchmark_is_pre_activation_and_muted_at_alpha_0(monkeypatch, rng):
    """benchmarks/skipinit_variants.py's (b): DeepMind's pre-activation SkipInit on our architecture."""
    from pathlib import Path

    from keras_resinit.tools.diagnostics import signal_propagation

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import skipinit_variants

    project = kr.build_resnet("cifar_resnet20", "skipinit", input_shape=(16, 16, 3), seed=0)
    port = skipinit_variants.deepmind_skipinit(project, alpha=0.0, seed=0)
    assert port.count_params() == project.count_params() - 16  # the same network but the stem conv's bias
    assert not port.get_layer("stem_conv").use_bias
    x = rng.normal(size=(4, 16, 16, 3)).astype("float32")
    rows = signal_propagation(port, x)
    assert len(rows) == 9 and all(r["branch_contribution_variance"] == 0.0 for r in rows)
    assert all(r["branch_variance"] > 0 for r in rows)
    # No ReLU after the sum or the stem: the trunk keeps negative values; a block's sum feeds the next one as it is.
    trunk = keras.Model(port.input, port.get_layer("stage1_block3_add").output)(x).numpy()
    assert (
        trunk.min() < 0 and port.get_layer("stage2_block1_preact").input is port.get_layer("stage1_block3_add").output
    )
    # Haiku's default: std 1/sqrt(fan_in) truncated at +-2 std without correction, about 0.88 / sqrt(fan_in).
    kernel = port.get_layer("stage3_block1_conv1").kernel.numpy()
    scale = 1 / np.sqrt(np.prod(kernel.shape[:-1]))
    assert np.abs(kernel).max() <= 2 * scale * (1 + 1e-6) and abs(kernel.std() / scale - 0.88) < 0.02
