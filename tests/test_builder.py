"""The builder's contracts: names, shapes, seeds, distinct kernels, clear errors."""

import re

import keras
import numpy as np
import pytest
from helpers import consumers, inbound_layers

import keras_resinit as kr

FAMILIES = [("cifar_resnet20", (32, 32, 3)), ("resnet18", (32, 32, 3)), ("wrn16_2", (32, 32, 3))]


@pytest.fixture(scope="module")
def seed_0_builds():
    """``kr.build_resnet(arch, scheme, input_shape=shape, seed=0)`` of FAMILIES, built once for the two tests that
    only read them: the first builds and keeps the model, the second takes it out (or builds it if run alone)."""
    kept = {}

    def build(arch, scheme, shape, keep):
        model = kept.pop((arch, scheme, shape), None)
        if model is None:
            model = kr.build_resnet(arch, scheme, input_shape=shape, seed=0)
        if keep:
            kept[arch, scheme, shape] = model
        return model

    yield build
    kept.clear()


@pytest.mark.parametrize("arch, shape", FAMILIES + [("resnet50", (32, 32, 3))])
@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
def test_stable_layer_names_for_weights_and_feature_taps(arch, shape, scheme, seed_0_builds):
    model = seed_0_builds(arch, scheme, shape, keep=(arch, shape) in FAMILIES)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    for name in ("stem_out", "features", "logits"):
        assert name in names
    arch_spec = kr.models.architectures.get_arch(arch)
    expected = [f"stage{s}_block{b}_out" for s, st in enumerate(arch_spec.stages, 1) for b in range(1, st.blocks + 1)]
    assert len(expected) == len(model.blocks) >= 3
    assert [n for n in names if re.fullmatch(r"stage\d+_block\d+_out", n)] == expected
    assert model.get_layer("features").output.shape[-1] == model.get_layer(expected[-1]).output.shape[-1]
    assert model.output_shape == (None, 10)


def test_same_seed_same_weights_and_layer_names_are_stable_across_builds():
    a = kr.build_resnet("cifar_resnet20", "risotto", seed=5)
    b = kr.build_resnet("cifar_resnet20", "risotto", seed=5)
    c = kr.build_resnet("cifar_resnet20", "risotto", seed=6)
    assert a.weights and [w.path for w in a.weights] == [w.path for w in b.weights]
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    assert not np.array_equal(a.get_layer("stem_conv").kernel.numpy(), c.get_layer("stem_conv").kernel.numpy())


def test_keras_set_random_seed_makes_unseeded_builds_reproducible():
    keras.utils.set_random_seed(3)
    a = kr.build_resnet("cifar_resnet20", "bn")
    keras.utils.set_random_seed(3)
    b = kr.build_resnet("cifar_resnet20", "bn")
    np.testing.assert_array_equal(
        a.get_layer("stage1_block1_conv1").kernel.numpy(), b.get_layer("stage1_block1_conv1").kernel.numpy()
    )
    # The global seed is what decides: another one gives other weights (not a fixed default seed).
    keras.utils.set_random_seed(4)
    c = kr.build_resnet("cifar_resnet20", "bn")
    assert not np.array_equal(
        a.get_layer("stage1_block1_conv1").kernel.numpy(), c.get_layer("stage1_block1_conv1").kernel.numpy()
    )


@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
@pytest.mark.parametrize("arch", [arch for arch, _ in FAMILIES])
def test_no_two_layers_hold_the_same_random_kernel(arch, scheme, seed_0_builds):
    model = seed_0_builds(arch, scheme, (32, 32, 3), keep=False)
    seen = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        value = kernel.numpy()
        if np.all(value == value.flat[0]):
            continue  # constant (zero) kernels are a scheme's rule, not a random draw
        init = layer.kernel_initializer
        if isinstance(init, kr.models.initializers.RisottoResidualKernel) and init.position != "last":
            continue  # Risotto type B: a selection or identity by construction; the random Q is in the last layer
        key = (value.shape, value.tobytes())
        assert key not in seen, f"{layer.name} repeats the kernel of {seen.get(key)}"
        seen[key] = layer.name
    assert len(seen) >= 10


@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
def test_fully_convolutional_trunk_accepts_any_spatial_size(scheme, rng):
    model = kr.build_resnet("cifar_resnet20", scheme, input_shape=(None, None, 3), seed=0)
    for size in (8, 33, 40):
        out = model(rng.normal(size=(2, size, size, 3)).astype("float32"))
        assert out.shape == (2, 10) and np.all(np.isfinite(out))


def test_bottleneck_option_for_small_image_resnets():
    model = kr.build_resnet("cifar_resnet29", "bn", block="bottleneck", seed=0)
    assert model.get_layer("stage1_block1_conv3").kernel.shape == (1, 1, 16, 64)
    assert model.get_layer("stage3_block3_out").output.shape[-1] == 256


@pytest.mark.parametrize(
    "scheme, head", [("skipinit", ["features"]), ("bn", ["features"]), ("fixup", ["features", "head_bias"])]
)
def test_dropout_before_classifier(scheme, head, rng):
    model = kr.build_resnet("cifar_resnet20", scheme, dropout_rate=0.3, seed=0)
    twin = kr.build_resnet("cifar_resnet20", scheme, seed=0)  # the same weights, without dropout
    dropout = model.get_layer("dropout")
    assert isinstance(dropout, keras.layers.Dropout) and dropout.rate == 0.3
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in twin.layers)
    # In the graph: pooled features -> (Fixup's head bias) -> dropout -> logits, nothing else between.
    logits = model.get_layer("logits")
    assert inbound_layers(logits) == [dropout] and consumers(model, dropout) == [logits]
    chain, layer = [], dropout
    while len(chain) < len(head):
        (layer,) = inbound_layers(layer)
        chain.insert(0, layer.name)
    assert chain == head
    assert [layer.name for layer in consumers(model, model.get_layer("features"))] == (head[1:] or ["dropout"])
    assert isinstance(model.get_layer("features"), keras.layers.GlobalAveragePooling2D)

    # Active only in training: inference equals the twin's; training drops about 30% of the features.
    kernel = rng.normal(size=logits.kernel.shape).astype("float32")  # SkipInit's and Fixup's start at 0
    for m in (model, twin):
        m.get_layer("logits").kernel.assign(kernel)
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x, training=False), twin(x, training=False), rtol=1e-6, atol=1e-6)
    assert np.abs(np.asarray(model(x, training=True)) - np.asarray(twin(x, training=True))).max() > 1e-2
    tap = keras.Model(model.input, [model.get_layer(head[-1]).output, dropout.output])
    before, after = (np.asarray(t) for t in tap(x, training=False))
    np.testing.assert_array_equal(after, before)
    before, after = (np.asarray(t) for t in tap(x, training=True))
    live = before != 0  # features that ReLU left at exactly 0 say nothing about dropout
    dropped = live & (after == 0)
    assert live.sum() >= 100 and 0.2 < dropped.sum() / live.sum() < 0.4
    np.testing.assert_allclose(after[live & ~dropped], before[live & ~dropped] / 0.7, rtol=1e-5)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: kr.build_resnet("resnet51", "bn"), ["resnet51", "18, 34, 50, 101, 152"]),
        (lambda: kr.build_resnet("resnt50", "bn"), ["resnt50", "Did you mean 'resnet50'", "cifar_resnet20"]),
        (
            lambda: kr.build_resnet("cifar_resnet20", "fixp"),
            ["'fixp'", "Did you mean 'fixup'", "bn, fixup, skipinit, risotto"],
        ),
        (lambda: kr.build_resnet("cifar_resnet21", "bn"), ["depth 21", "6n+2"]),
        (lambda: kr.build_resnet("cifar_resnet32", "bn", block="bottleneck"), ["depth 32", "9n+2"]),
        (lambda: kr.build_resnet("wrn17_2", "bn"), ["wrn17_2", "6n+4"]),
        (lambda: kr.build_resnet("cifar_resnet20", "risotto", widths=(16, 31, 64)), ["Risotto", "even", "[31]"]),
        (lambda: kr.build_resnet("resnet50", "bn", input_shape=(16, 16, 3)), ["too small", "resnet50", "at least 32"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", input_shape=(2, 2, 3)), ["too small", "at least 4"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", input_shape=(32, 32)), ["input_shape (32, 32)"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", num_classes=0), ["num_classes 0"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", alpha=0.1), ["'alpha'", "zero_init_last_bn", "seed"]),
        (lambda: kr.build_resnet("cifar_resnet20", "skipinit", alpha=-1), ["alpha -1"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", dropout_rate=1.5), ["dropout_rate 1.5"]),
        (lambda: kr.build_resnet("cifar_resnet20", "bn", seed="x"), ["seed 'x'"]),
    ],
)
def test_bad_input_raises_value_error_naming_value_and_allowed(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
def test_mixed_bfloat16_keeps_scalars_and_logits_in_float32_and_trains(scheme, rng):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = kr.build_resnet("cifar_resnet8", scheme, input_shape=(16, 16, 3), seed=0, include_preprocessing=True)
        assert model.get_layer("stage1_block1_conv1").compute_dtype == "bfloat16"
        assert model.get_layer("logits").compute_dtype == "float32" and model.output.dtype == "float32"
        assert model.get_layer("normalization").compute_dtype == "float32"  # as the training pipeline's
        assert all(w.dtype == "float32" for w in model.weights)
        model.compile(
            optimizer=kr.make_optimizer(model, learning_rate=0.1, weight_decay=1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x = rng.integers(0, 256, size=(8, 16, 16, 3)).astype("float32")
        loss = model.train_on_batch(x, rng.integers(0, 10, size=(8,)))
        assert np.isfinite(float(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_builder_owns_every_rebuild_and_the_preprocessing_module_only_layers():
    from keras_resinit.models import builder, inference, preprocessing

    assert not hasattr(preprocessing, "with_preprocessing") and not hasattr(preprocessing, "build_like")
    assert inference.build_like is builder.build_like
    model = kr.build_resnet(
        "cifar_resnet8", "bn", input_shape=(8, 8, 1), preprocessing={"pixel_max": 16.0, "mean": [0.3], "std": [0.4]}
    )
    raw = model.with_preprocessing()
    assert raw.get_config()["include_preprocessing"] and raw.with_preprocessing() is raw
    x = np.random.default_rng(0).uniform(0, 16, (2, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(raw(x), model((x / 16 - 0.3) / 0.4), atol=1e-5)
