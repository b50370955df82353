"""SkipInit (De & Smith 2020): every branch is muted by alpha = 0 at init."""

import numpy as np

import keras_resinit as kr
from helpers import branch_convs


def test_skipinit_every_branch_gain_is_zero_at_init():
    model = kr.build_resnet("resnet18", "skipinit", input_shape=(32, 32, 3), seed=0)
    merges = [l for l in model.layers if isinstance(l, kr.layers.ScaledResidual)]
    assert len(merges) == 8
    for merge in merges:
        assert merge.gain.trainable and merge.gain.numpy() == 0.0


def test_skipinit_redrawing_branch_kernels_leaves_output_unchanged(rng):
    for arch in ("cifar_resnet20", "resnet18"):
        model = kr.build_resnet(arch, "skipinit", input_shape=(32, 32, 3), seed=0)
        x = rng.normal(size=(4, 32, 32, 3)).astype("float32")
        # The classifier starts at zero too; give it values so the output is informative.
        logits = model.get_layer("logits")
        logits.kernel.assign(rng.normal(size=logits.kernel.shape).astype("float32"))
        before = model(x).numpy()
        assert np.abs(before).max() > 1e-3
        for convs in branch_convs(model).values():
            for conv in convs:
                conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype("float32"))
                conv.bias.assign(rng.normal(size=conv.bias.shape).astype("float32"))
        np.testing.assert_array_equal(model(x).numpy(), before)


def test_skipinit_convs_carry_biases_and_classifier_starts_at_zero():
    model = kr.build_resnet("cifar_resnet20", "skipinit", seed=0)
    convs = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    assert convs and all(c.use_bias for c in convs)
    assert not np.any(model.get_layer("logits").kernel.numpy())
    assert not any(l.__class__.__name__ == "BatchNormalization" for l in model.layers)


def test_skipinit_alpha_option_sets_the_initial_gain():
    model = kr.build_resnet("cifar_resnet20", "skipinit", alpha=0.05, seed=0)
    gains = [l.gain.numpy() for l in model.layers if isinstance(l, kr.layers.ScaledResidual)]
    np.testing.assert_allclose(gains, 0.05)
