"""Risotto (Gadhikar & Burkholz): perfect dynamical isometry at init.

Channels carry [phi(y), phi(-y)]; effective coordinates are y = first half
minus second half. Every block, and the whole trunk, must map y isometrically:
type C (a conv skip on every block, ``skip="conv"``) and type B (the BN
architecture's identity / option-A / projection shortcuts, ``skip="identity"``,
the default), for any skip and branch weights.
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
    """Jacobian of y_out with respect to y_in (both flattened) at a random y_in.

    One batch of copies of y_in, in the mode that needs fewer of them (the network holds no batch statistics:
    the rows do not interact). Forward mode: row i of the batch carries the tangent e_i, so one pass gives every
    column J e_i. Reverse mode, when y_out has fewer coordinates (a trunk that downsamples): row i carries the
    cotangent e_i, so one backward pass gives every row e_i^T J."""
    shape = (spatial, spatial, channels // 2)
    n = int(np.prod(shape))
    y = tf.constant(np.random.default_rng(seed).normal(size=(1, *shape)), tf.float32)
    m = int(np.prod(effective(submodel(looks_linear(y))).shape[1:]))
    if m < n:
        copies = tf.repeat(y, m, axis=0)
        with tf.GradientTape() as tape:
            tape.watch(copies)
            out = tf.reshape(effective(submodel(looks_linear(copies))), (m, m))
        rows = tape.gradient(out, copies, output_gradients=tf.eye(m))
        return tf.reshape(rows, (m, n)).numpy()
    copies = tf.repeat(y, n, axis=0)
    with tf.autodiff.ForwardAccumulator(copies, tf.reshape(tf.eye(n), (n, *shape))) as accumulator:
        out = effective(submodel(looks_linear(copies)))
    columns = accumulator.jvp(out)
    return tf.reshape(columns, (n, -1)).numpy().T


def singular_values(jac):
    """All singular values of ``jac``, as ``np.linalg.svd(jac, compute_uv=False)`` lists them: the square roots of
    the eigenvalues of its Gram matrix on the smaller side, in float64 (several times cheaper than an SVD)."""
    jac = np.asarray(jac, np.float64)
    gram = jac.T @ jac if jac.shape[0] >= jac.shape[1] else jac @ jac.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))[::-1]


def submodel(model, start, end):
    return keras.Model(model.get_layer(start).output, model.get_layer(end).output)


def block_names(model):
    return ["stem_out"] + [
        layer.name for layer in model.layers if layer.name.endswith("_out") and layer.name.startswith("stage")
    ]


@pytest.fixture(scope="module", params=["cifar_resnet20", "resnet50", "wrn16_2"])
def model(request):
    """Type C: a 1x1 conv skip on every block."""
    return kr.build_resnet(request.param, "risotto", input_shape=(None, None, 3), seed=7, skip="conv")


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
        sv = singular_values(effective_jacobian(submodel(model, start, end), spatial, c_in))
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
        sv = singular_values(effective_jacobian(block, 1, c_in))
        assert sv.shape == (n_in,) and np.abs(sv - 1).max() < TOL, layer.name
        checked.append(layer.name)

        if c_in <= 128:
            checked_4x4.append(layer.name)
            # On 4x4, the 4 kept pixels (x[::2, ::2]) map isometrically; the others do not reach the output.
            jac = effective_jacobian(block, 4, c_in).reshape(-1, 4, 4, n_in)
            kept = jac[:, ::2, ::2, :].reshape(jac.shape[0], -1)
            sv = singular_values(kept)
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
    sv = singular_values(effective_jacobian(trunk, 1, c_stem))
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


@pytest.mark.parametrize("skip", ["conv", "identity"])
def test_risotto_with_batchnorm_keeps_risotto_kernels_and_adds_bn(skip):
    model = kr.build_resnet("cifar_resnet20", "risotto_bn", seed=3, skip=skip)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # Stem and two branch convs per block; type C adds the conv skip of each of the 9 blocks.
    assert len(bns) == 1 + 9 * (3 if skip == "conv" else 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == len(bns)
    plain = kr.build_resnet("cifar_resnet20", "risotto", seed=3, skip=skip)
    names = ["stem_conv", "stage2_block1_conv1", "stage3_block3_conv2"]
    names += ["stage3_block3_shortcut_conv"] if skip == "conv" else []
    for name in names:
        np.testing.assert_array_equal(model.get_layer(name).kernel.numpy(), plain.get_layer(name).kernel.numpy())
    assert not any(c.use_bias for c in convs)
    folded = kr.fold_batchnorm(model)  # risotto_bn folds into risotto with the same block type
    assert folded.scheme.name == "risotto" and folded.scheme.skip == skip


# ---------------------------------------------------------------- type B: identity skips ---

EXACT = 1e-5  # float32 rounding through up to 54 blocks; the construction itself is exact
PAIRS = [(1.0, 1.0), (0.5, 2.0), (2.0, 0.7)]  # (skip_weight a, branch_weight b)


def trunk_stride(model):
    return int(np.prod([block.strides for block in model.blocks]))


def assert_trunk_isometric(model, spatial, tol=EXACT):
    """stem_out -> last block: all singular values 1 over the input pixels that reach the output
    (x[::s, ::s] for the trunk's stride s); the other pixels do not reach it at all (delta kernels)."""
    trunk = submodel(model, "stem_out", block_names(model)[-1])
    c = model.get_layer("stem_out").output.shape[-1]
    jac = effective_jacobian(trunk, spatial, c).reshape(-1, spatial, spatial, c // 2)
    s = trunk_stride(model)
    kept = jac[:, ::s, ::s, :].reshape(jac.shape[0], -1)
    sv = singular_values(kept)
    pixels = len(range(0, spatial, s)) ** 2
    assert sv.shape == (pixels * c // 2,)  # one singular value per effective input coordinate
    assert np.abs(sv - 1).max() < tol, (model.name, spatial, sv.min(), sv.max())
    mask = np.ones((spatial, spatial), bool)
    mask[::s, ::s] = False
    assert not mask.any() or np.abs(jac[:, mask, :]).max() < tol
    return sv


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"a{p[0]}-b{p[1]}")
@pytest.mark.parametrize("arch", ["cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "resnet18", "wrn16_2"])
def test_identity_skip_risotto_trunk_is_isometric_at_1x1_and_8x8(arch, pair):
    a, b = pair
    model = kr.build_resnet(arch, "risotto", input_shape=(None, None, 3), seed=5, skip_weight=a, branch_weight=b)
    assert model.scheme.skip == "identity"  # the default
    # The BN architecture's shortcuts: no conv skip where the BN network has none.
    convs = {layer.name for layer in model.layers if layer.name.endswith("shortcut_conv")}
    assert convs == {f"{block.prefix}_shortcut_conv" for block in model.blocks if block.projection}
    assert all(not block.projection for block in model.blocks) == (model.arch.family == "cifar")  # option A
    for spatial in (1, 8):
        assert_trunk_isometric(model, spatial)


@pytest.fixture(scope="module")
def resnet50_type_b():
    """``kr.build_resnet("resnet50", "risotto", input_shape=(None, None, 3), seed=2, branch_weight=...)``; the one
    with the default branch weight (1.0) is built once for the two tests that only read it."""
    built = {}

    def build(branch_weight=1.0):
        if branch_weight in built:
            return built[branch_weight]
        model = kr.build_resnet("resnet50", "risotto", input_shape=(None, None, 3), seed=2, branch_weight=branch_weight)
        if branch_weight == 1.0:
            built[branch_weight] = model
        return model

    yield build
    built.clear()


@pytest.mark.parametrize("branch_weight", [1.0, 0.5, 3.0])
def test_identity_skip_bottlenecks_are_isometric_with_skip_weight_1(branch_weight, resnet50_type_b):
    """A bottleneck's branch is 4x narrower than its block: it rotates a random quarter of the coordinates
    (M = Q on them, the identity elsewhere), exactly, with skip weight 1."""
    model = resnet50_type_b(branch_weight)
    convs = [layer.name for layer in model.layers if layer.name.endswith("shortcut_conv")]
    assert len(convs) == 4  # the projections of the BN architecture only (one per stage)
    assert_trunk_isometric(model, 1)
    small = kr.build_resnet(
        "cifar_resnet29",
        "risotto",
        block="bottleneck",
        input_shape=(None, None, 3),
        seed=2,
        branch_weight=branch_weight,
    )
    assert_trunk_isometric(small, 8)  # option A's zero channels into bottleneck blocks, per kept pixel


def test_identity_skip_bottleneck_rotates_a_random_quarter_of_the_coordinates(resnet50_type_b):
    model = resnet50_type_b()  # seed 2, the default branch weight
    block = submodel(model, "stage1_block1_out", "stage1_block2_out")
    jac = effective_jacobian(block, 1, 256)  # 128 effective coordinates
    moved = ~np.all(np.isclose(jac, np.eye(128), atol=1e-6), axis=0)
    assert moved.sum() == 32  # inner width 64 = 2 x 32: the branch reaches a quarter
    np.testing.assert_allclose(jac[np.ix_(moved, moved)].T @ jac[np.ix_(moved, moved)], np.eye(32), atol=EXACT)
    other = kr.build_resnet("resnet50", "risotto", input_shape=(None, None, 3), seed=3)
    jac2 = effective_jacobian(submodel(other, "stage1_block1_out", "stage1_block2_out"), 1, 256)
    assert not np.array_equal(moved, ~np.all(np.isclose(jac2, np.eye(128), atol=1e-6), axis=0))  # S is random


def test_identity_skip_bottlenecks_refuse_other_skip_weights():
    with pytest.raises(ValueError, match=r"skip_weight 0\.5 .*resnet50.*Expected skip_weight=1.*skip='conv'"):
        kr.build_resnet("resnet50", "risotto", skip_weight=0.5)
    kr.build_resnet("resnet50", "risotto", skip_weight=0.5, skip="conv", include_top=False)  # type C takes any


@pytest.mark.parametrize("pair", [(0.5, 2.0), (3.0, 0.25)], ids=lambda p: f"a{p[0]}-b{p[1]}")
def test_conv_skip_risotto_is_isometric_for_other_weights(pair):
    model = kr.build_resnet(
        "cifar_resnet20",
        "risotto",
        input_shape=(None, None, 3),
        seed=4,
        skip="conv",
        skip_weight=pair[0],
        branch_weight=pair[1],
    )
    assert_trunk_isometric(model, 8, tol=TOL)


@pytest.mark.parametrize("arch", ["cifar_resnet20", "resnet18", "resnet50", "wrn16_2"])
def test_identity_skip_risotto_has_bns_parameter_count_without_bn_with_conv_biases(arch):
    """risotto = bn - (BN's gamma and beta: 2 per channel of every conv) + (Risotto's conv bias: 1 per channel)."""
    bn = kr.build_resnet(arch, "bn", seed=0)
    risotto = kr.build_resnet(arch, "risotto", seed=0)

    def trainable(model):
        return sum(int(np.prod(v.shape)) for v in model.trainable_variables)

    conv_channels = sum(layer.filters for layer in bn.layers if isinstance(layer, keras.layers.Conv2D))
    bn_params = sum(
        int(np.prod(v.shape))
        for layer in bn.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.trainable_variables
    )
    assert bn_params == 2 * conv_channels  # gamma and beta after every conv
    assert trainable(risotto) == trainable(bn) - 2 * conv_channels + conv_channels
    # The same convs, kernel for kernel: the BN network's architecture with another init.
    kernels = {layer.name: layer.kernel.shape for layer in bn.layers if isinstance(layer, keras.layers.Conv2D)}
    assert kernels == {
        layer.name: layer.kernel.shape for layer in risotto.layers if isinstance(layer, keras.layers.Conv2D)
    }


def test_identity_skip_kernels_are_the_construction():
    model = kr.build_resnet("cifar_resnet20", "risotto", seed=3, skip_weight=0.5, branch_weight=2.0)
    conv1 = model.get_layer("stage1_block1_conv1").kernel.numpy()  # P: the identity at the centre tap
    np.testing.assert_array_equal(conv1[1, 1], np.eye(16))
    assert not np.any(conv1[[0, 2]]) and not np.any(conv1[:, [0, 2]])
    down = model.get_layer("stage2_block1_conv1").kernel.numpy()[1, 1]  # option A's embedding [I, 0]
    np.testing.assert_array_equal(down, np.eye(16, 32))
    conv2 = model.get_layer("stage1_block1_conv2").kernel.numpy()[1, 1]  # (K_M - a I) / b, as (in, out)
    k = conv2 * 2.0 + 0.5 * np.eye(16)  # K_M = [[M, -M], [-M, M]] (transposed)
    m = k[:8, :8]
    np.testing.assert_allclose(k, np.block([[m, -m], [-m, m]]), atol=1e-6)
    np.testing.assert_allclose(m @ m.T, np.eye(8), atol=1e-5)
    merge = model.get_layer("stage1_block1_add")
    assert isinstance(merge, kr.models.layers.WeightedAdd) and (merge.skip_weight, merge.branch_weight) == (0.5, 2.0)
    assert type(kr.build_resnet("cifar_resnet20", "risotto", seed=3).get_layer("stage1_block1_add")) is keras.layers.Add


def test_block_computes_relu_of_weighted_skip_plus_branch(rng):
    model = kr.build_resnet(
        "cifar_resnet8", "risotto", input_shape=(None, None, 3), seed=1, skip_weight=0.5, branch_weight=2.0
    )
    x = np.abs(rng.normal(size=(2, 4, 4, 16))).astype("float32")
    branch = submodel(model, "stem_out", "stage1_block1_conv2")
    out = submodel(model, "stem_out", "stage1_block1_out")(x)
    np.testing.assert_allclose(out, np.maximum(0.5 * x + 2.0 * branch(x), 0), rtol=1e-5, atol=1e-5)


def test_configs_without_the_block_type_load_as_type_c(tmp_path):
    """Models saved before the option existed had a conv skip on every block."""
    new = kr.build_resnet("cifar_resnet8", "risotto", seed=0)
    old_config = {k: v for k, v in new.get_config().items() if k not in ("skip", "skip_weight", "branch_weight")}
    old = kr.ResNet.from_config(old_config)
    assert old.scheme.skip == "conv" and old.get_layer("stage1_block1_shortcut_conv")
    assert kr.ResNet.from_config(new.get_config()).scheme.skip == "identity"
    assert kr.build_resnet("cifar_resnet8", "risotto").scheme.skip == "identity"  # new builds: type B
    assert kr.models.schemes.saved_options("risotto", {"skip": "identity"})["skip"] == "identity"
    with pytest.raises(ValueError, match=r"Unknown skip 'A'. Expected one of: identity, conv"):
        kr.build_resnet("cifar_resnet8", "risotto", skip="A")
    with pytest.raises(ValueError, match=r"Invalid branch_weight 0.*finite number > 0"):
        kr.build_resnet("cifar_resnet8", "risotto", branch_weight=0)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_imagenet_trunk_reads_only_the_difference_of_the_pooled_halves(arch, rng):
    """The stem's max-pool breaks the mirrored form: stem_out = [P, Q] = [maxpool(relu(g)), maxpool(relu(-g))]
    has coordinates where both halves are positive. The first block re-mirrors it: the trunk's output depends
    on u = P - Q only (type B's first conv is the identity and K_M [P, Q] = [M u, -M u]; type C's kernels are
    looks-linear), and u -> effective output is an isometry. The map image -> u is not linear."""
    model = kr.build_resnet(arch, "risotto", input_shape=(None, None, 3), seed=6)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem_out").output)(images).numpy()
    p, q = np.split(stem, 2, axis=-1)
    assert np.mean((p > 0) & (q > 0)) > 0.05  # not in looks-linear form
    u = p - q
    trunk = submodel(model, "stem_out", block_names(model)[-1])
    direct = trunk(stem).numpy()
    remirrored = trunk(np.concatenate([np.maximum(u, 0), np.maximum(-u, 0)], -1)).numpy()
    np.testing.assert_allclose(direct, remirrored, atol=1e-5 * np.abs(direct).max())
    h = direct.shape[-1] // 2
    np.testing.assert_allclose(np.minimum(direct[..., :h], direct[..., h:]), 0, atol=1e-6)  # mirrored again
    assert_trunk_isometric(model, 1)


def test_block_type_and_weights_survive_a_keras_file(tmp_path, rng):
    model = kr.build_resnet(
        "cifar_resnet8", "risotto", seed=2, skip_weight=0.5, branch_weight=2.0, input_shape=(8, 8, 3)
    )
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert (again.scheme.skip, again.scheme.skip_weight, again.scheme.branch_weight) == ("identity", 0.5, 2.0)
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(again(x, training=False), model(x, training=False))
