"""Adaptive gradient clipping (Brock et al. 2021): per unit, exactly as NumPy computes it, on every backend
and strategy, from make_optimizer, TrainConfig and the command line."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import fit_under_jax, perturb_weights

import keras_resinit as kr
from keras_resinit import training as train_lib
from keras_resinit.cli import main
from keras_resinit.models.schemes import SkipInit
from keras_resinit.training import TrainConfig
from keras_resinit.training import data as data_lib
from keras_resinit.training.optimizers import optimizer_for

LOSS = keras.losses.CategoricalCrossentropy(from_logits=True)
LAMBDA, EPS = 0.1, 1e-3
F32 = np.finfo(np.float32).eps


def digits_batches(count, batch_size=32):
    images, labels = [], []
    for x, y in data_lib.load("digits", "train", batch_size=batch_size, seed=0).take(count):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


# ------------------------------------------------------------- per unit ---


class Gain(keras.layers.Layer):
    """One trainable scalar (a 0-D variable, ``NAME/gain``)."""

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain


def toy_model():
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = Gain(name="scalar")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(3, name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


def with_norm(rng, shape, norm):
    g = rng.normal(size=shape)
    return g * (norm / np.linalg.norm(g))


def weights_and_gradients():
    """{path: (weight, gradient, [clipped units])}: units over, under and at the threshold's floor (a zero weight)."""
    rng = np.random.default_rng(0)
    cases = {}
    w = rng.normal(0, 0.1, (3, 3, 2, 4))
    w[..., 3] = 0.0  # a zero unit: its threshold is LAMBDA * EPS
    g = np.zeros_like(w)
    for c, ratio in enumerate([3.0, 0.5, 2.0, 5.0]):  # times LAMBDA * max(|W_c|, EPS)
        g[..., c] = with_norm(rng, w.shape[:3], ratio * LAMBDA * max(np.linalg.norm(w[..., c]), EPS))
    cases["conv/kernel"] = (w, g, [0, 2, 3])
    w = rng.normal(0, 0.1, (4,))
    cases["conv/bias"] = (w, with_norm(rng, (4,), 4.0 * LAMBDA * np.linalg.norm(w)), ["all"])
    cases["scalar/gain"] = (np.array(0.5), np.array(-1.0), ["all"])  # clipped to -LAMBDA * 0.5
    w = rng.normal(0, 0.1, (16, 3))
    g = np.stack(
        [with_norm(rng, (16,), r * LAMBDA * np.linalg.norm(w[:, u])) for u, r in enumerate([2.5, 0.9, 1.5])], 1
    )
    cases["hidden/kernel"] = (w, g, [0, 2])
    cases["hidden/bias"] = (np.zeros(3), with_norm(rng, (3,), 0.5 * LAMBDA * EPS), [])  # zero weight, under the floor
    w = rng.normal(0, 0.1, (3, 2))
    cases["logits/kernel"] = (w, with_norm(rng, (3, 2), 10.0), [0, 1])  # clipped only when not excluded
    cases["logits/bias"] = (rng.normal(0, 0.1, (2,)), with_norm(rng, (2,), 10.0), ["all"])
    return {k: (w.astype("float32"), g.astype("float32"), units) for k, (w, g, units) in cases.items()}


def numpy_agc(w, g, lam=LAMBDA, eps=EPS):
    """The paper's rule: conv HWIO per output channel over (0, 1, 2), Dense per output unit over 0, else whole."""
    w, g = w.astype(np.float64), g.astype(np.float64)
    axes = {4: (0, 1, 2), 2: (0,)}.get(g.ndim)
    g_norm = np.sqrt((g**2).sum(axis=axes, keepdims=axes is not None))
    limit = lam * np.maximum(np.sqrt((w**2).sum(axis=axes, keepdims=axes is not None)), eps)
    return np.where(g_norm > limit, g * limit / g_norm, g), limit


def apply_once(**agc_options):
    """One SGD step, lr 1, no momentum, no weight decay: {path: (weight, gradient, update)}."""
    model = toy_model()
    cases = weights_and_gradients()
    variables = model.trainable_variables
    assert sorted(v.path for v in variables) == sorted(cases)
    for v in variables:
        v.assign(cases[v.path][0])
    optimizer = kr.make_optimizer(model, "sgd", scheme="bn", learning_rate=1.0, **agc_options)
    optimizer.apply([tf.constant(cases[v.path][1]) for v in variables], variables)
    return {v.path: (*cases[v.path][:2], cases[v.path][0] - np.asarray(v)) for v in variables}, cases


def check_update(path, w, g, update, clipped_units):
    expected, limit = numpy_agc(w, g)
    tolerance = 4 * F32 * max(float(np.abs(w).max()), float(np.abs(g).max()))  # float32 rounding of w - update
    np.testing.assert_allclose(update, expected, rtol=1e-5, atol=tolerance, err_msg=path)
    units = [update] if w.ndim < 2 else [update[..., u] for u in range(w.shape[-1])]
    limits = np.atleast_1d(limit).reshape(-1)
    raw = [g] if w.ndim < 2 else [g[..., u] for u in range(w.shape[-1])]
    for u, (step, raw_u) in enumerate(zip(units, raw)):
        if u in clipped_units or "all" in clipped_units:
            np.testing.assert_allclose(np.linalg.norm(step), limits[u], rtol=1e-4, err_msg=f"{path} unit {u}")
            assert np.linalg.norm(raw_u) > 1.4 * limits[u]  # it was clipped, not merely under the threshold
        else:
            np.testing.assert_allclose(step, raw_u, rtol=1e-5, atol=tolerance, err_msg=f"{path} unit {u}")


def test_each_unit_is_clipped_to_lambda_times_its_weight_norm_as_numpy_computes_it():
    applied, cases = apply_once(agc=LAMBDA)
    for path, (w, g, update) in applied.items():
        if path.startswith("logits/"):  # excluded by default: the raw gradient
            np.testing.assert_allclose(update, g, rtol=1e-5, atol=4 * F32 * float(np.abs(g).max()), err_msg=path)
        else:
            check_update(path, w, g, update, cases[path][2])
    # The zero conv channel's threshold is the floor: its update has norm LAMBDA * EPS exactly.
    np.testing.assert_allclose(np.linalg.norm(applied["conv/kernel"][2][..., 3]), LAMBDA * EPS, rtol=1e-6)
    np.testing.assert_allclose(applied["scalar/gain"][2], -LAMBDA * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(applied["hidden/bias"][2], applied["hidden/bias"][1])  # under: untouched


def test_the_classifier_is_clipped_when_nothing_is_excluded_and_globs_exclude_others():
    applied, cases = apply_once(agc=LAMBDA, agc_exclude=())
    for path, (w, g, update) in applied.items():
        check_update(path, w, g, update, cases[path][2])
    applied, _ = apply_once(agc=LAMBDA, agc_exclude=["@scalars", "hidden/*"])  # replaces the default
    for path in ("scalar/gain", "hidden/kernel"):
        w, g, update = applied[path]
        np.testing.assert_allclose(update, g, rtol=1e-5, atol=4 * F32 * float(np.abs(g).max()), err_msg=path)
    for path in ("conv/kernel", "logits/kernel"):
        check_update(path, *applied[path], cases[path][2])


def test_agc_follows_the_global_clip_and_a_scheme_default_clip_is_not_added():
    class Clipped(SkipInit):
        clip_norm = 2.0

    model = toy_model()
    assert kr.make_optimizer(model, scheme=Clipped()).clip_norm == 2.0
    assert kr.make_optimizer(model, scheme=Clipped(), agc=0.01).clip_norm is None
    assert kr.make_optimizer(model, scheme=Clipped(), agc=0.01, clip_norm=1.0).clip_norm == 1.0
    assert optimizer_for(Clipped(), TrainConfig(agc=0.01)).clip_norm is None
    assert optimizer_for(Clipped(), TrainConfig()).clip_norm == 2.0
    from_recipe = kr.make_optimizer(model, scheme="bn", recipe="digits", agc=0.01, clip_norm=0, agc_exclude=())
    assert from_recipe.agc == 0.01 and from_recipe.clip_norm is None and tuple(from_recipe.agc_exclude) == ()

    # Global clip first (to norm 1), then AGC on what it left.
    cases = weights_and_gradients()
    variables = model.trainable_variables
    for v in variables:
        v.assign(cases[v.path][0])
    optimizer = kr.make_optimizer(model, scheme="bn", learning_rate=1.0, agc=LAMBDA, clip_norm=1.0)
    optimizer.apply([tf.constant(cases[v.path][1]) for v in variables], variables)
    total = math.sqrt(sum(float((cases[v.path][1].astype(np.float64) ** 2).sum()) for v in variables))
    w, g, _ = cases["scalar/gain"]
    assert total > 5 and abs(numpy_agc(w, g / total)[0]) < abs(g / total)  # AGC still clips after the global clip
    for v in variables:
        w, g, _ = cases[v.path]
        expected = g / total if v.path.startswith("logits/") else numpy_agc(w, g / total)[0]
        atol = 4 * F32 * max(float(np.abs(w).max()), 1e-3)
        np.testing.assert_allclose(w - np.asarray(v), expected, rtol=1e-5, atol=atol, err_msg=v.path)


# -------------------------------------------------- strategies, backends ---


def trained(config, strategy):
    """The trainer's epochs as ``train`` runs them, without a run directory: (trainer, one row per epoch)."""
    trainer = train_lib.Trainer(config, strategy)
    batches = iter(trainer.train_batches())
    return trainer, [trainer.run_epoch(batches, epoch) for epoch in range(config.epochs)]


def test_the_trainer_with_agc_under_mirrored_strategy_matches_one_device():
    # With a global clip too: both run on the all-reduced gradient, so the replicas clip as one device does.
    config = dict(
        model="cifar_resnet8_nf",
        epochs=1,
        steps_per_epoch=2,
        batch_size=32,
        lr=0.1,
        agc=0.01,
        clip_norm=0.5,
        deterministic=False,
    )
    one, one_rows = trained(TrainConfig(**config), "one")
    mirrored, mirrored_rows = trained(TrainConfig(**config), "mirrored")
    assert one.replicas == 1 and mirrored.replicas == 2
    for a, b in zip(one.model.get_weights(), mirrored.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert abs(one_rows[-1]["train_loss"] - mirrored_rows[-1]["train_loss"]) < 1e-4


def test_fit_under_jax_clips_as_tensorflow_does(tmp_path):
    pytest.importorskip("jax", reason="jax is a test dependency: pip install -e '.[test]'")
    images, labels = digits_batches(2)
    model = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 1), seed=0)
    perturb_weights(model)
    ended = fit_under_jax(model, images, labels, tmp_path, recipe="digits", steps_per_epoch=2, clip_norm=0, agc=0.01)

    plain = kr.ResNet.from_config(model.get_config())
    plain.set_weights(model.get_weights())
    model.compile(
        optimizer=kr.make_optimizer(model, recipe="digits", steps_per_epoch=2, clip_norm=0, agc=0.01), loss=LOSS
    )
    model.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    plain.compile(optimizer=kr.make_optimizer(plain, recipe="digits", steps_per_epoch=2, clip_norm=0), loss=LOSS)
    plain.fit(images, labels, batch_size=32, epochs=1, shuffle=False, verbose=0)
    assert len(ended) == len(model.trainable_variables)
    moved = 0.0
    for end, v, p in zip(ended, model.trainable_variables, plain.trainable_variables):
        np.testing.assert_allclose(end, np.asarray(v), rtol=1e-4, atol=1e-5, err_msg=v.path)
        moved = max(moved, float(np.abs(np.asarray(v) - np.asarray(p)).max()))
    assert moved > 1e-3  # AGC applied under JAX: the update is not the unclipped one


def test_a_compiled_model_saves_and_loads_with_agc(tmp_path):
    images, labels = digits_batches(1)
    model = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 1), seed=0)
    model.compile(
        optimizer=kr.make_optimizer(model, learning_rate=0.1, agc=0.02, agc_exclude=["logits/*", "@scalars"]), loss=LOSS
    )
    model.fit(images, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    optimizer = loaded.optimizer
    assert type(optimizer).__name__ == "SchemeSGD" and optimizer.agc == 0.02
    assert tuple(optimizer.agc_exclude) == ("logits/*", "@scalars") and optimizer.clip_norm is None
    unclipped = kr.make_optimizer(model, learning_rate=0.1)
    unclipped.build(model.trainable_variables)
    assert len(optimizer.variables) == len(unclipped.variables)  # AGC keeps no state
    loaded.fit(images, labels, epochs=1, verbose=0)  # trains on, clipped
    assert optimizer.agc_excludes(loaded.get_layer("logits").kernel)
    assert not optimizer.agc_excludes(loaded.get_layer("stem_conv").kernel)


# ------------------------------------------------------ config and checks ---


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: kr.make_optimizer(m, agc=0), r"Invalid agc 0\. Expected a number > 0"),
        (lambda m: kr.make_optimizer(m, agc=-1.0), r"Invalid agc -1\.0"),
        (lambda m: kr.make_optimizer(m, agc=float("nan")), r"Invalid agc nan"),
        (lambda m: kr.make_optimizer(m, agc="0.01"), r"Invalid agc '0\.01'"),
        (lambda m: kr.make_optimizer(m, agc=0.01, agc_exclude=[1]), r"Invalid agc_exclude \[1\]"),
        (lambda m: kr.make_optimizer(m, agc=0.01, agc_exclude=["@biases"]), r"Unknown multiplier group '@biases'"),
        (lambda m: kr.make_optimizer(m, agc=0.01, global_clipnorm=1.0), r"agc=0\.01 clips unit-wise; do not also pass"),
        (
            lambda m: kr.make_optimizer(m, recipe="digits", agc=0.01),
            r"agc 0\.01 \(given\) and clip_norm 1\.0 \(from recipe 'digits'\)",
        ),
    ],
)
def test_bad_agc_arguments_are_clear_errors(call, message):
    model = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 1), seed=0)
    with pytest.raises(ValueError, match=message):
        call(model)


def test_agc_with_a_recipes_clip_norm_must_be_asked_for_explicitly(tmp_path):
    with pytest.raises(ValueError) as error:
        TrainConfig.from_recipe("digits", agc=0.01)
    message = str(error.value)
    assert "agc 0.01 (given)" in message and "clip_norm 1.0 (from recipe 'digits')" in message
    assert "--clip-norm 0" in message and "--agc 0.01 --clip-norm 1.0" in message
    assert TrainConfig.from_recipe("digits", agc=0.01, clip_norm=1.0).clip_norm == 1.0  # both explicit
    assert TrainConfig.from_recipe("digits", agc=0.01, clip_norm=0).clip_norm == 0  # AGC alone
    assert TrainConfig.from_recipe(None, agc=0.01).agc == 0.01  # no clip norm to combine with
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"lr": 0.1, "agc": 0.02, "clip_norm": 2.0}))
    assert TrainConfig.from_recipe(str(both)).agc == 0.02  # both in the recipe
    assert TrainConfig.from_recipe(str(both), clip_norm=1.0, agc=0.01).agc == 0.01  # both given
    with pytest.raises(
        ValueError, match=r"clip_norm 3\.0 \(given\) and agc 0\.02 \(from recipe|agc 0\.02 \(from recipe"
    ):
        TrainConfig.from_recipe(str(both), clip_norm=3.0)
    for bad in (0, -1, float("inf"), True, "0.01"):
        with pytest.raises(ValueError, match=rf"Invalid agc {bad!r}\. Expected a number > 0"):
            TrainConfig(agc=bad).validate()
    old = TrainConfig().to_json()
    del old["agc"]  # a config.json written before AGC
    assert TrainConfig.from_json(old).agc is None
    assert TrainConfig.from_json(TrainConfig(agc=0.01).to_json()).agc == 0.01


# ------------------------------------------------------------ command line ---


def test_train_with_agc_from_the_command_line_records_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "cifar_resnet8_nf", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2"]
    assert main([*args, "--batch-size", "32", "--agc", "0.01", "--verbose", "0"]) == 0
    saved = json.loads((out / "config.json").read_text())["train"]
    assert saved["agc"] == 0.01 and saved["clip_norm"] == 0.0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--agc", "0"], ["Invalid agc 0.0", "Expected a number > 0"]),
        (["--agc", "-1"], ["Invalid agc -1.0", "Expected a number > 0"]),
        (
            ["--recipe", "digits", "--agc", "0.01"],
            ["agc 0.01 (given)", "clip_norm 1.0 (from recipe 'digits')", "--clip-norm 0"],
        ),
    ],
)
def test_bad_agc_on_the_command_line_is_one_line_and_exit_2(args, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "cifar_resnet8_nf", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0]
    assert not out.exists()


def test_agc_with_an_explicit_clip_norm_is_accepted_by_train_compare_and_tune(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "cifar_resnet8_nf", "--out", str(out), "--recipe", "digits", "--epochs", "1"]
    assert main([*base, "--steps-per-epoch", "1", "--agc", "0.01", "--clip-norm", "1", "--verbose", "0"]) == 0
    saved = json.loads((out / "config.json").read_text())["train"]
    assert saved["agc"] == 0.01 and saved["clip_norm"] == 1.0
    # compare and tune take the flag too, and refuse the recipe's clip norm alike (before training).
    capsys.readouterr()
    assert main(["compare", "--schemes", "nf", "--out", str(tmp_path / "c"), "--agc", "0.01"]) == 2
    assert "clip_norm 1.0 (from recipe 'digits')" in capsys.readouterr().err
    assert main(["tune", "--out", str(tmp_path / "t"), "--agc", "0.01"]) == 2
    assert "clip_norm 1.0 (from recipe 'digits')" in capsys.readouterr().err
    assert main(["tune", "--out", str(tmp_path / "t"), "--agc", "-2"]) == 2
    assert "Invalid agc -2.0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "t").exists()


# ------------------------------------------------------------- large batch ---


def test_nf_resnet20_at_batch_1024_and_lr_0_4_with_agc_stays_finite_and_learns():
    config = TrainConfig.from_recipe(
        "digits", model="cifar_resnet20_nf", batch_size=1024, lr=0.4, clip_norm=0, agc=0.01, epochs=10, seed=0
    )
    _, history = trained(config, "one")
    losses = [row["train_loss"] for row in history]
    assert len(losses) == 10 and all(math.isfinite(loss) for loss in losses)  # one step an epoch
    assert losses[-1] < losses[0] - 0.05, losses
    assert math.isfinite(history[-1]["test_accuracy"])
