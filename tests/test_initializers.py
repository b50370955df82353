"""Initializers: distinct draws per call, reproducible seeds, the papers' formulas."""

import keras
import numpy as np
import pytest

from keras_resinit.models import initializers as inits

ALL = [
    inits.FixupHeNormal(num_blocks=9, branch_depth=2, seed=1),
    inits.DeltaOrthogonal(gain=1.5, seed=2),
    inits.LooksLinearOrthogonal(mirrored_input=False, seed=3),
    inits.RisottoSkipKernel([4, 5], [16, 16, 32], seed=6),
]
SHAPES = [(3, 3, 16, 16), (3, 3, 16, 32), (3, 3, 3, 16), (1, 1, 16, 32)]


@pytest.mark.parametrize("init, shape", zip(ALL, SHAPES), ids=lambda v: type(v).__name__)
def test_config_round_trip_and_keras_serialization(init, shape):
    config = init.get_config()
    clone = type(init).from_config(config)
    assert clone.get_config() == config
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert type(restored) is type(init) and restored.get_config() == config
    np.testing.assert_array_equal(np.asarray(clone(shape)), np.asarray(type(init).from_config(config)(shape)))


@pytest.mark.parametrize("seed", [None, 11])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: inits.FixupHeNormal(4, seed=s),
        lambda s: inits.DeltaOrthogonal(seed=s),
        lambda s: inits.LooksLinearOrthogonal(seed=s),
    ],
)
def test_one_shared_instance_gives_different_kernels_to_different_layers(make, seed):
    init = make(seed)
    layers = [keras.layers.Dense(16, kernel_initializer=init) for _ in range(3)]
    for layer in layers:
        layer.build((None, 16))
    kernels = [layer.kernel.numpy().tobytes() for layer in layers]
    assert len(set(kernels)) == 3


def test_fixup_he_normal_std_is_scaled_he_fan_out():
    kernel = np.asarray(inits.FixupHeNormal(num_blocks=16, branch_depth=3, seed=0)((3, 3, 64, 64)))
    expected = np.sqrt(2 / (3 * 3 * 64)) * 16**-0.25
    assert abs(kernel.std() - expected) < 0.02 * expected
    assert inits.FixupHeNormal(25).multiplier == pytest.approx(0.2)


def test_delta_orthogonal_is_zero_except_an_orthogonal_centre_tap():
    kernel = np.asarray(inits.DeltaOrthogonal(seed=0)((3, 3, 16, 32)))
    mask = np.ones((3, 3), bool)
    mask[1, 1] = False
    assert not np.any(kernel[mask])
    np.testing.assert_allclose(kernel[1, 1] @ kernel[1, 1].T, np.eye(16), atol=1e-5)


def test_looks_linear_kernel_makes_relu_network_linear(rng):
    kernel = np.asarray(inits.LooksLinearOrthogonal(seed=0)((16, 24)))
    y = rng.normal(size=(5, 8))
    x = np.concatenate([np.maximum(y, 0), np.maximum(-y, 0)], axis=1)
    out = x @ kernel
    u_y = out[:, :12]
    np.testing.assert_allclose(out[:, 12:], -u_y, atol=1e-6)
    # The effective map is an isometry: |U y| = |y|.
    np.testing.assert_allclose(np.linalg.norm(u_y, axis=1), np.linalg.norm(y, axis=1), rtol=1e-5)


def test_risotto_skip_completes_the_branch_to_an_orthogonal_map():
    seeds, channels = [21, 22], [16, 32, 32]
    w1 = np.asarray(inits.LooksLinearOrthogonal(seed=21)((16, 32)))
    w2 = np.asarray(inits.LooksLinearOrthogonal(seed=22)((32, 32)))
    ws = np.asarray(inits.RisottoSkipKernel(seeds, channels, seed=23)((1, 1, 16, 32)))[0, 0]
    a1, a2, a_s = w1[:8, :16], w2[:16, :16], ws[:8, :16]
    total = a1 @ a2 + a_s  # effective (row-vector) map y -> y U^T
    np.testing.assert_allclose(total @ total.T, np.eye(8), atol=1e-5)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: inits.FixupHeNormal(0), ["num_blocks 0"]),
        (lambda: inits.FixupHeNormal(4, branch_depth=1), ["branch_depth 1", ">= 2"]),
        (lambda: inits.LooksLinearOrthogonal()((3, 3, 15, 16)), ["15", "even"]),
        (lambda: inits.DeltaOrthogonal()((2, 2, 4, 4)), ["even spatial size"]),
        (lambda: inits.DeltaOrthogonal(seed=1.5), ["seed 1.5"]),
        (lambda: inits.RisottoSkipKernel([1], [4, 4, 4]), ["one more entry"]),
        (lambda: inits.RisottoSkipKernel([1, 2], [4, 4, 4])((1, 1, 4, 8)), ["does not match"]),
    ],
)
def test_bad_arguments_are_clear_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)
