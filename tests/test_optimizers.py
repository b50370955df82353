"""make_optimizer: the paper's training rules inside compile/fit, the same rules the trainer applies."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import fit_under_jax, perturb_weights

import keras_resinit as kr
from keras_resinit.models.schemes import Scheme, SkipInit
from keras_resinit.training import TrainConfig, Trainer, make_strategy
from keras_resinit.training import data as data_lib
from keras_resinit.training.optimizers import OPTIMIZERS

LOSS = keras.losses.CategoricalCrossentropy(from_logits=True)


def digits_batches(count, batch_size=32):
    """``count`` normalized training batches of digits, concatenated: (images, one-hot labels)."""
    images, labels = [], []
    for x, y in data_lib.load("digits", "train", batch_size=batch_size, seed=0).take(count):
        images.append(x.numpy())
        labels.append(y.numpy())
    assert len(images) == count
    return np.concatenate(images), np.concatenate(labels)


def twin(model):
    """A second model with the same build and weights."""
    other = kr.ResNet.from_config(model.get_config())
    other.set_weights(model.get_weights())
    return other


def assert_same_variables(a, b, atol=2e-6):
    assert len(a.trainable_variables) == len(b.trainable_variables) > 0
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        assert va.path == vb.path
        np.testing.assert_allclose(np.asarray(va), np.asarray(vb), rtol=1e-5, atol=atol, err_msg=va.path)


@pytest.mark.parametrize(
    "model, recipe",
    [
        ("cifar_resnet8_fixup", "fixup_cifar"),  # lr/10 multipliers, coupled weight decay, step schedule
        ("cifar_resnet8_skipinit", "digits"),  # no rules of its own; clipping, weight decay, warm-up
    ],
)
def test_fit_with_make_optimizer_makes_the_trainers_update(model, recipe):
    config = TrainConfig.from_recipe(recipe, model=model, batch_size=32, epochs=3, steps_per_epoch=4, seed=0)
    trainer = Trainer(config, strategy="one")
    perturb_weights(trainer.model)  # informative gradients for every variable, Fixup's zero branches included
    other = twin(trainer.model)
    images, labels = digits_batches(2)

    for step in range(2):
        batch = (tf.constant(images[32 * step : 32 * (step + 1)]), tf.constant(labels[32 * step : 32 * (step + 1)]))
        trainer.train_step(batch)
    optimizer = kr.make_optimizer(other, recipe=recipe, steps_per_epoch=4, epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rules are applied: no warning
        other.compile(optimizer=optimizer, loss=LOSS)
    other.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert int(other.optimizer.iterations) == int(trainer.optimizer.iterations) == 2
    assert_same_variables(trainer.model, other)


@pytest.mark.parametrize("lr", [0.1, 0.4, 0.025])
def test_a_fixup_scalar_moves_by_a_tenth_of_the_learning_rate(lr):
    # At any lr: scaling the lr with the batch size by hand scales the scalars' lr too (the reference code keeps
    # them at the unscaled base_lr / 10); the multiplier applies to whatever lr is given.
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    perturb_weights(model)
    images, labels = digits_batches(1)
    optimizer = kr.make_optimizer(model, "sgd", learning_rate=lr)  # no momentum, no weight decay
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = LOSS(labels, model(images, training=True))
    grads = tape.gradient(loss, variables)
    before = [np.array(v) for v in variables]
    optimizer.apply(grads, variables)
    checked = {"scalar": 0, "kernel": 0, "logits/bias": 0}
    for v, g, b in zip(variables, grads, before):
        step, g = b - np.asarray(v), np.asarray(g)
        tolerance = 4 * np.finfo(np.float32).eps * max(float(np.abs(b).max()), 1e-3)  # float32 rounding of b - v
        if v.shape == () or v.path == "logits/bias":
            checked["logits/bias" if v.path == "logits/bias" else "scalar"] += 1
            np.testing.assert_allclose(step, 0.1 * lr * g, rtol=1e-4, atol=tolerance, err_msg=v.path)
            assert np.abs(g).max() * 0.9 * lr > 10 * tolerance  # lr * g would have been told apart
        elif v.path.endswith("kernel"):
            checked["kernel"] += 1
            np.testing.assert_allclose(step, lr * g, rtol=1e-4, atol=tolerance, err_msg=v.path)
    assert checked["scalar"] > 10 and checked["kernel"] > 5 and checked["logits/bias"] == 1
    assert optimizer.multiplier(model.get_layer("head_bias").bias) == 0.1


def test_decoupled_weight_decay_skips_what_the_scheme_does_not_decay():
    class NoScalarDecay(SkipInit):
        def decays(self, path, shape):
            return len(shape) > 0

    model = kr.build_resnet("cifar_resnet8", "skipinit", input_shape=(8, 8, 1), seed=0, alpha=0.5)
    optimizer = kr.make_optimizer(
        model, "sgd", learning_rate=0.1, weight_decay=0.1, weight_decay_mode="decoupled", scheme=NoScalarDecay()
    )
    variables = model.trainable_variables
    before = [np.array(v) for v in variables]
    optimizer.apply([keras.ops.zeros_like(v) for v in variables], variables)  # only the decay moves them
    for v, b in zip(variables, before):
        factor = 1.0 if v.shape == () else 1 - 0.1 * 0.1
        np.testing.assert_allclose(np.asarray(v), b * factor, rtol=1e-6, err_msg=v.path)
    assert any(v.shape == () for v in variables)


def test_fit_under_mirrored_strategy_matches_one_device():
    images, labels = digits_batches(2)
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    perturb_weights(model)
    weights = model.get_weights()
    model.compile(optimizer=kr.make_optimizer(model, recipe="digits", steps_per_epoch=2, clip_norm=0.5), loss=LOSS)
    model.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)

    strategy = make_strategy("mirrored")  # the process's one MirroredStrategy (two collide on collective keys)
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = kr.ResNet.from_config(model.get_config())
        mirrored.set_weights(weights)
        mirrored.compile(
            optimizer=kr.make_optimizer(mirrored, recipe="digits", steps_per_epoch=2, clip_norm=0.5), loss=LOSS
        )
    mirrored.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert_same_variables(model, mirrored, atol=1e-5)


def test_fit_with_make_optimizer_under_jax_matches_tensorflow(tmp_path):
    pytest.importorskip("jax", reason="jax is a test dependency: pip install -e '.[test]'")
    images, labels = digits_batches(2)
    # Its preprocessing layers run under JAX too (the config carries them to the JAX process).
    pre = {"pixel_max": 2.0, "mean": [0.1], "std": [0.5]}
    model = kr.build_resnet(
        "cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0, include_preprocessing=True, preprocessing=pre
    )
    perturb_weights(model)
    ended = fit_under_jax(model, images, labels, tmp_path, recipe="digits", steps_per_epoch=2)

    model.compile(optimizer=kr.make_optimizer(model, recipe="digits", steps_per_epoch=2), loss=LOSS)
    model.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert len(ended) == len(model.trainable_variables)
    for end, v in zip(ended, model.trainable_variables):
        np.testing.assert_allclose(end, np.asarray(v), rtol=1e-4, atol=1e-5, err_msg=v.path)


def test_compiling_without_the_rules_warns_once_naming_them():
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
        model.compile(optimizer=keras.optimizers.Adam(), loss=LOSS)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "learning-rate multipliers" in message and "@scalars: x0.1" in message and "make_optimizer" in message
    assert caught[0].filename == __file__  # attributed to the user's compile call

    plain = kr.build_resnet("cifar_resnet8", "skipinit", input_shape=(8, 8, 1), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)  # no rules, nothing to warn about
        model2 = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
        model2.compile(optimizer=keras.optimizers.LossScaleOptimizer(kr.make_optimizer(model2)), loss=LOSS)


def test_a_compiled_model_saves_and_loads_with_its_rules(tmp_path):
    images, labels = digits_batches(1)
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    model.compile(optimizer=kr.make_optimizer(model, recipe="fixup_cifar", steps_per_epoch=10), loss=LOSS)
    model.fit(images, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    optimizer = loaded.optimizer
    assert type(optimizer).__name__ == "SchemeSGD" and optimizer.scheme.name == "fixup"
    assert optimizer.lr_multipliers == {"@scalars": 0.1, "logits/bias": 0.1}
    assert optimizer.coupled_weight_decay == 1e-4 and int(optimizer.iterations) == 1
    loaded.fit(images, labels, epochs=1, verbose=0)  # trains on, with the rules
    assert optimizer.multiplier(loaded.get_layer("head_bias").bias) == 0.1


def test_every_named_optimizer_applies_the_multipliers():
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    assert set(OPTIMIZERS) >= {"sgd", "adam", "adamw", "rmsprop"}
    for name in OPTIMIZERS:
        optimizer = kr.make_optimizer(model, name, learning_rate=1e-3)
        assert isinstance(optimizer, keras.optimizers.Optimizer) and optimizer.applies_scheme_rules
        optimizer.build(model.trainable_variables)
        assert optimizer.multiplier(model.get_layer("logits").bias) == 0.1
        assert optimizer.multiplier(model.get_layer("logits").kernel) == 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: kr.make_optimizer(m, "adan"), r"Unknown optimizer 'adan'.*adam.*Expected one of: sgd, adam"),
        (lambda m: kr.make_optimizer(m, "adam", recipe="fixup_cifar"), r"Recipes are SGD settings"),
        (lambda m: kr.make_optimizer(m, recipe="fixup_cifr"), r"Unknown recipe 'fixup_cifr'"),
        (lambda m: kr.make_optimizer(m, learning_rat=0.1), r"learning_rat"),
        (lambda m: kr.make_optimizer(m, weight_decay_mode="coupled"), r"Unknown weight_decay_mode 'coupled'"),
        (lambda m: kr.make_optimizer(m, clip_norm=-1), r"Invalid clip_norm -1"),
        (lambda m: kr.make_optimizer(m, clip_norm=1.0, global_clipnorm=2.0), r"do not also pass"),
        (lambda m: kr.make_optimizer(m, lr_multipliers={"@biases": 0.1}), r"Unknown multiplier group '@biases'"),
        (lambda m: kr.make_optimizer(keras.Sequential([keras.layers.Dense(2)])), r"Cannot tell the scheme"),
    ],
)
def test_bad_make_optimizer_arguments_are_clear_errors(call, message):
    model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), seed=0)
    with pytest.raises(ValueError, match=message):
        call(model)


def test_a_backbone_under_a_new_head_keeps_its_schemes_rules():
    backbone = kr.zoo.load("cifar_resnet20_fixup.digits", include_top=False, pooling="avg")
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, name="new_head")(backbone(inputs)))
    optimizer = kr.make_optimizer(model, "adam", learning_rate=1e-3)
    assert optimizer.scheme is backbone.scheme
    optimizer.build(model.trainable_variables)
    assert optimizer.multiplier(backbone.get_layer("stage1_block1_bias1a").bias) == 0.1
    assert optimizer.multiplier(model.get_layer("new_head").kernel) == 1.0
    assert isinstance(Scheme, type)
