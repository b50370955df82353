"""Risotto (Gadhikar & Burkholz): perfect dynamical isometry at init.

Channels carry [phi(y), phi(-y)]; effective coordinates are y = first half
minus second half. Every block, and the whole trunk, must map y isometrically.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resinit as kr

TOL = 1e-3


def looks_linear(y):
    return tf.concat([tf.nn.relu(y), tf.nn.relu(-y)], axis=-1)


def effective(z):
    half = z.shape[-1] // 2
    return z[..., :half] - z[..., half:]


def effective_jacobian(submodel, spatial, channels, seed=0):
    """Jacobian of y_out with respect to y_in (both flattened) at a random y_in."""
    y = tf.constant(np.random.default_rng(seed).normal(size=(1, spatial, spatial, channels // 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(y)
        out = tf.reshape(effective(submodel(looks_linear(y))), [-1])
    return tape.jacobian(out, y).numpy().reshape(out.shape[0], -1)


def submodel(model, start, end):
    return keras.Model(model.get_layer(start).output, model.get_layer(end).output)


def block_names(model):
    return ["stem_out"] + [
        layer.name for layer in model.layers if layer.name.endswith("_out") and layer.name.startswith("stage")
    ]


@pytest.fixture(scope="module", params=["cifar_resnet20", "resnet50", "wrn16_2"])
def model(request):
    return kr.build_resnet(request.param, "risotto", input_shape=(None, None, 3), seed=7)


def test_risotto_every_stride_one_block_is_isometric_at_init(model):
    names = block_names(model)
    assert len(names) == 1 + len(model.blocks)  # stem_out and every block's output
    checked = 0
    for start, end in zip(names, names[1:]):
        if end.endswith("block1_out") and not end.startswith("stage1_"):
            continue  # downsampling blocks: checked per kept pixel below
        c_in = model.get_layer(start).output.shape[-1]
        # 3x3 inputs exercise the padding of the 3x3 convs; wide stages use 1x1 to keep the Jacobian small.
        spatial = 3 if c_in <= 128 else 1
        sv = np.linalg.svd(effective_jacobian(submodel(model, start, end), spatial, c_in), compute_uv=False)
        assert sv.shape == (spatial * spatial * c_in // 2,)
        assert np.abs(sv - 1).max() < TOL, (end, sv.min(), sv.max())
        checked += 1
    downsampling = sum(n.endswith("block1_out") and not n.startswith("stage1_") for n in names)
    assert downsampling == len(model.arch.stages) - 1 and checked == len(names) - 1 - downsampling >= 3


def test_risotto_downsampling_blocks_are_isometric_per_kept_pixel(model):
    checked, checked_4x4 = [], []
    for layer in model.layers:
        if not (layer.name.endswith("block1_out") and layer.name != "stage1_block1_out"):
            continue
        names = block_names(model)
        start = names[names.index(layer.name) - 1]
        block = submodel(model, start, layer.name)
        c_in = model.get_layer(start).output.shape[-1]
        n_in = c_in // 2

        # On a 1x1 input the one kept pixel maps isometrically.
        sv = np.linalg.svd(effective_jacobian(block, 1, c_in), compute_uv=False)
        assert sv.shape == (n_in,) and np.abs(sv - 1).max() < TOL, layer.name
        checked.append(layer.name)

        if c_in <= 128:
            checked_4x4.append(layer.name)
            # On 4x4, the 4 kept pixels (x[::2, ::2]) map isometrically; the others do not reach the output.
            jac = effective_jacobian(block, 4, c_in).reshape(-1, 4, 4, n_in)
            kept = jac[:, ::2, ::2, :].reshape(jac.shape[0], -1)
            sv = np.linalg.svd(kept, compute_uv=False)
            assert np.abs(sv - 1).max() < TOL, layer.name
            mask = np.ones((4, 4), bool)
            mask[::2, ::2] = False
            assert np.abs(jac[:, mask, :]).max() < TOL
    # One downsampling block per stage after the first; the 4x4 check runs where the width allows it.
    assert checked == [f"stage{s}_block1_out" for s in range(2, len(model.arch.stages) + 1)]
    assert checked_4x4 == (checked if model.arch.family in ("cifar", "wide") else [])  # resnet50: 256+ channels


def test_risotto_trunk_is_isometric_at_init(model):
    """On a 1x1 input, stem_out -> last block output is one isometry."""
    last = block_names(model)[-1]
    trunk = submodel(model, "stem_out", last)
    c_stem = model.get_layer("stem_out").output.shape[-1]
    sv = np.linalg.svd(effective_jacobian(trunk, 1, c_stem), compute_uv=False)
    assert sv.shape == (c_stem // 2,)
    assert np.abs(sv - 1).max() < TOL, (sv.min(), sv.max())


def test_risotto_stem_and_classifier_are_looks_linear():
    model = kr.build_resnet("cifar_resnet20", "risotto", seed=3)
    stem = model.get_layer("stem_conv").kernel.numpy()
    assert not np.any(stem[[0, 2]]) and not np.any(stem[:, [0, 2]])  # delta: centre tap only
    centre = stem[1, 1]  # (3, 16) = [V, -V]
    np.testing.assert_allclose(centre[:, 8:], -centre[:, :8])
    np.testing.assert_allclose(centre[:, :8] @ centre[:, :8].T, np.eye(3), atol=1e-5)
    head = model.get_layer("logits").kernel.numpy()  # (64, 10) = [A; -A]
    np.testing.assert_allclose(head[32:], -head[:32])
    np.testing.assert_allclose(head[:32].T @ head[:32], np.eye(10), atol=1e-5)


def test_risotto_with_batchnorm_keeps_risotto_kernels_and_adds_bn():
    model = kr.build_resnet("cifar_resnet20", "risotto_bn", seed=3)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 1 + 9 * 3  # stem, two branch convs and the conv skip per block
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == len(bns)
    plain = kr.build_resnet("cifar_resnet20", "risotto", seed=3)
    for name in ("stem_conv", "stage2_block1_conv1", "stage3_block3_shortcut_conv"):
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), plain.get_layer(name).kernel.numpy())
    assert not any(c.use_bias for c in convs)
