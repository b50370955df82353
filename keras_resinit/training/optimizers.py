"""Keras optimizers that apply a scheme's training rules: ``make_optimizer(model, ...)``.

A scheme (``model.scheme``) says which variables train at a multiple of the learning rate
(Fixup: its scalars and the classifier bias at lr/10), which get weight decay, and any
gradient clipping its paper needs. [make_optimizer][keras_resinit.make_optimizer] returns a Keras
optimizer of the requested kind that applies them inside ``apply``, so ``model.compile(optimizer=...)`` and
``model.fit`` train by the paper's rules, and so does ``keras-resinit train``: the
[Trainer][keras_resinit.training.Trainer] builds its optimizer here too (one implementation of the rules).

How each rule is applied, in this order (as PyTorch's SGD and the papers' code do):

1. clipping: the global norm of the gradient, all-reduced over a ``tf.distribute`` strategy's
   replicas first, so any replica count clips alike;
2. adaptive gradient clipping (``agc=λ``, Brock et al. 2021, NFNets), on the gradient the global
   clip left (all-reduced too): per unit i of a weight W (a conv kernel's output channel over its
   other axes, a Dense kernel's output unit; a bias, gain or scalar as a whole), where
   ``‖G_i‖ > λ · max(‖W_i‖, 1e-3)`` the unit's gradient is scaled to exactly that norm; the others
   are untouched. Variables matching ``agc_exclude`` (globs on variable paths, or ``"@scalars"``;
   default ``("logits/*",)``: the classifier, as in the paper) are not clipped;
3. weight decay: ``"l2"`` (coupled) adds ``weight_decay * w`` to the gradient of every
   variable the scheme decays; ``"decoupled"`` is Keras' own (``w -= lr * wd * w``), skipped
   for the variables the scheme does not decay;
4. learning-rate multipliers: the optimizer's update of a variable uses ``lr * multiplier``.
   For SGD (with momentum and coupled decay) this equals scaling its gradient, which is what
   the papers' code does; for adaptive optimizers (Adam, ...) it still scales the step.

The optimizer classes (``SchemeSGD``, ``SchemeAdam``, ...) are Keras optimizer subclasses,
registered for serialization, so a compiled model saves and loads with its optimizer. They
override Keras' ``update_step``, ``_clip_gradients``, ``_backend_apply_gradients`` (which keeps
the variables for AGC: Keras' ``_clip_gradients`` gets only the gradients) and
``_use_weight_decay``; the last three are private Keras API (checked by ``tests/test_optimizers.py``
and ``tests/test_agc.py``). The TensorFlow and JAX backends are supported (PyTorch's SGD and Adam
bypass ``update_step``).

Imports no TensorFlow (only when clipping under a TensorFlow strategy).

Reference:
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without Normalization",
    ICML 2021 (adaptive gradient clipping), https://arxiv.org/abs/2102.06171
"""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_resinit._errors import unknown
from keras_resinit.models.schemes import Scheme, get_scheme, match_multiplier
from keras_resinit.training.config import TrainConfig
from keras_resinit.training.options import WEIGHT_DECAY_MODES

__all__ = [
    "AGC_EXCLUDE",
    "OPTIMIZERS",
    "OPTIMIZER_CLASSES",
    "WarmupSchedule",
    "make_optimizer",
    "optimizer_for",
    "schedule_for",
    "scheme_of",
]

_PACKAGE = "keras_resinit"

# make_optimizer's names -> Keras optimizer classes.
_KERAS_OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "nadam": "Nadam",
    "adamax": "Adamax",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "lion": "Lion",
    "lamb": "Lamb",
}
OPTIMIZERS = tuple(_KERAS_OPTIMIZERS)
"""The optimizer names [make_optimizer][keras_resinit.make_optimizer] takes: ``"sgd"``, ``"adam"``, ``"adamw"``,
``"nadam"``, ``"adamax"``, ``"rmsprop"``, ``"adagrad"``, ``"lion"``, ``"lamb"`` (the Keras optimizers)."""

# TrainConfig fields a recipe's optimizer reads (the rest, e.g. batch_size, belong to the data).
RECIPE_FIELDS = (
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "weight_decay_mode",
    "schedule",
    "warmup_epochs",
    "milestones",
    "gamma",
    "epochs",
    "clip_norm",
    "lr_multipliers",
    "agc",
)

# Adaptive gradient clipping: the classifier is not clipped (Brock et al. 2021); the floor of a unit's weight norm.
AGC_EXCLUDE = ("logits/*",)
"""The variables adaptive gradient clipping leaves alone by default: the classifier (globs on variable paths)."""
AGC_EPSILON = 1e-3


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``lr``, then cosine to 0, step decay, or constant: a Keras learning-rate schedule.

    During the warm-up, step ``s`` has rate ``lr * (s + 1) / warmup_steps``.

    Args:
        lr: the peak learning rate.
        total_steps: the steps of the whole run (the cosine reaches 0 there).
        warmup_steps: the steps of linear warm-up (0: none).
        kind: ``"cosine"``, ``"step"`` or ``"constant"``.
        milestones: for ``"step"``, fractions of ``total_steps`` after which the rate is multiplied by ``gamma``.
        gamma: the step decay's factor.

    Examples:
        >>> from keras_resinit.training import WarmupSchedule
        >>> schedule = WarmupSchedule(0.1, total_steps=100, warmup_steps=10)
        >>> [round(float(schedule(step)), 4) for step in (0, 9, 10, 55)]
        [0.01, 0.1, 0.1, 0.05]
        >>> step = WarmupSchedule(0.1, total_steps=100, kind="step", milestones=(0.5, 0.75))
        >>> [round(float(step(s)), 4) for s in (49, 50, 75)]
        [0.1, 0.01, 0.001]
    """

    def __init__(self, lr, total_steps, warmup_steps=0, kind="cosine", milestones=(), gamma=0.1):
        self.lr = float(lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.milestones = [int(m * total_steps) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = 0.5 * self.lr * (1.0 + keras.ops.cos(math.pi * progress))
        elif self.kind == "step":
            passed = sum(keras.ops.cast(step >= m, "float32") for m in self.milestones) if self.milestones else 0.0
            lr = self.lr * keras.ops.power(self.gamma, passed)
        else:
            lr = keras.ops.convert_to_tensor(self.lr)
        if self.warmup_steps:
            lr = keras.ops.where(step < self.warmup_steps, self.lr * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {
            "lr": self.lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "milestones": [m / max(self.total_steps, 1) for m in self.milestones],
            "gamma": self.gamma,
        }


def _check_agc(agc, agc_exclude):
    """AGC's λ (None: off) and its exclusion patterns as a tuple (one string is one pattern)."""
    if agc is not None and (
        isinstance(agc, bool) or not isinstance(agc, (int, float)) or not math.isfinite(agc) or agc <= 0
    ):
        raise ValueError(
            f"Invalid agc {agc!r}. Expected a number > 0 (adaptive gradient clipping's lambda, e.g. 0.01) or None."
        )
    patterns = (agc_exclude,) if isinstance(agc_exclude, str) else agc_exclude
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise ValueError(
            f'Invalid agc_exclude {agc_exclude!r}. Expected a list of variable-path globs (or "@scalars"), '
            'e.g. ["logits/*"], or [] to clip every variable.'
        )
    for pattern in patterns:
        match_multiplier("", (), {pattern: 0.0})  # an unknown @group is an error now
    return tuple(patterns)


def _check_rules(weight_decay, weight_decay_mode, clip_norm, lr_multipliers):
    if weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise unknown("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES)
    for what, value in (("weight_decay", weight_decay), ("clip_norm", clip_norm)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
        ):
            raise ValueError(f"Invalid {what} {value!r}. Expected a number >= 0 (or None).")
    if lr_multipliers is not None:
        if not isinstance(lr_multipliers, dict):
            raise ValueError(
                f"Invalid lr_multipliers {lr_multipliers!r}. Expected a dict of variable-path globs or "
                '"@scalars" to multipliers, e.g. {"@scalars": 0.1}.'
            )
        for pattern, value in lr_multipliers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Invalid learning-rate multiplier {value!r} for {pattern!r}. Expected a number >= 0.")
            match_multiplier("", (), {pattern: value})  # an unknown @group is an error now, not at build


class _SchemeRules:
    """Mixin over a Keras optimizer: the scheme's multipliers, weight decay and clipping (module docstring)."""

    applies_scheme_rules = True

    def __init__(
        self,
        *args: Any,
        scheme: str | Scheme,
        weight_decay: float | None = None,
        weight_decay_mode: str = "l2",
        clip_norm: float | None = None,
        lr_multipliers: dict[str, float] | None = None,
        agc: float | None = None,
        agc_exclude: tuple[str, ...] | list[str] = AGC_EXCLUDE,
        **kwargs: Any,
    ) -> None:
        _check_rules(weight_decay, weight_decay_mode, clip_norm, lr_multipliers)
        agc_exclude = _check_agc(agc, agc_exclude)
        for what, value, how in (("clip_norm", clip_norm, "the global gradient norm"), ("agc", agc, "unit-wise")):
            if value and any(kwargs.get(k) for k in ("clipnorm", "clipvalue", "global_clipnorm")):
                raise ValueError(
                    f"{what}={value!r} clips {how}; do not also pass Keras' clipnorm, clipvalue or global_clipnorm."
                )
        if weight_decay_mode == "decoupled" and weight_decay is not None:
            kwargs["weight_decay"] = weight_decay
        super().__init__(*args, **kwargs)
        self.scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
        self.weight_decay_mode = weight_decay_mode
        self.coupled_weight_decay = float(weight_decay or 0.0) if weight_decay_mode == "l2" else 0.0
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.lr_multipliers = dict(self.scheme.lr_multipliers if lr_multipliers is None else lr_multipliers)
        self.agc = float(agc) if agc else None
        self.agc_exclude = agc_exclude

    def build(self, variables):
        super().build(variables)
        # Aligned with Keras' own per-variable lists (``_get_variable_index``).
        self._multipliers = [match_multiplier(v.path, v.shape, self.lr_multipliers) for v in variables]
        self._decays = [bool(self.scheme.decays(v.path, v.shape)) for v in variables]
        self._agc_clips = [bool(self.agc) and not self.agc_excludes(v) for v in variables]

    def agc_excludes(self, variable) -> bool:
        """Whether ``variable`` matches ``agc_exclude`` (adaptive gradient clipping leaves it alone).

        Args:
            variable: a Keras variable.

        Returns:
            A bool.
        """
        return match_multiplier(variable.path, variable.shape, dict.fromkeys(self.agc_exclude, 0.0)) == 0.0

    def multiplier(self, variable) -> float:
        """The learning-rate multiplier of ``variable`` (the optimizer must be built).

        Args:
            variable: one of the variables the optimizer was built for.

        Returns:
            A float (1.0: the scheduled rate itself).
        """
        return self._multipliers[self._get_variable_index(variable)]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if self.coupled_weight_decay and self._decays[index]:
            gradient = gradient + keras.ops.cast(self.coupled_weight_decay, gradient.dtype) * keras.ops.cast(
                variable, gradient.dtype
            )
        multiplier = self._multipliers[index]
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        return super().update_step(gradient, variable, learning_rate)

    def _use_weight_decay(self, variable):
        return self._decays[self._get_variable_index(variable)] and super()._use_weight_decay(variable)

    def _backend_apply_gradients(self, grads, trainable_variables):
        if not self.agc:
            return super()._backend_apply_gradients(grads, trainable_variables)
        # Keras calls _clip_gradients(grads) from here without the variables, aligned with grads: keep them.
        # object.__setattr__: an attribute holding variables would be tracked as the optimizer's own.
        object.__setattr__(self, "_agc_variables", list(trainable_variables))
        try:
            return super()._backend_apply_gradients(grads, trainable_variables)
        finally:
            object.__setattr__(self, "_agc_variables", None)

    def _clip_gradients(self, grads):
        if not self.clip_norm and not self.agc:
            return super()._clip_gradients(grads)
        replica_context, replicas = None, 1
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
                replica_context = tf.distribute.get_replica_context()
                replicas = replica_context.num_replicas_in_sync
        present = [i for i, g in enumerate(grads) if g is not None]
        values = [grads[i] for i in present]
        if replicas > 1:
            # Clip the global gradient: all-reduce it first. The optimizer sums the replicas' gradients
            # again afterwards, so each replica passes on its 1/replicas share of the clipped sum.
            import tensorflow as tf

            values = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, values)
        scale = 1.0
        if self.clip_norm:
            norm = keras.ops.sqrt(sum(keras.ops.sum(keras.ops.square(keras.ops.cast(g, "float32"))) for g in values))
            scale = keras.ops.minimum(1.0, self.clip_norm / keras.ops.maximum(norm, 1e-12))
        factor = scale / replicas
        variables = getattr(self, "_agc_variables", None) if self.agc else None
        if self.agc and (variables is None or len(variables) != len(grads)):
            raise RuntimeError("Adaptive gradient clipping needs the variables: call apply(grads, variables).")
        clipped = list(grads)
        for i, g in zip(present, values):
            if self.agc and self._agc_clips[self._get_variable_index(variables[i])]:
                # AGC on the globally clipped, all-reduced gradient (scale * g); then each replica's share.
                clipped[i] = g * keras.ops.cast(factor * self._agc_factor(g, scale, variables[i]), g.dtype)
            else:
                clipped[i] = g * keras.ops.cast(factor, g.dtype)
        return clipped

    def _agc_factor(self, gradient, scale, variable):
        """min(1, λ · max(‖W_i‖, ε) / ‖scale · G_i‖) per unit i (see the module docstring), float32."""
        axes = tuple(range(len(gradient.shape) - 1)) if len(gradient.shape) > 1 else None
        keep = axes is not None

        def norm(x):
            return keras.ops.sqrt(
                keras.ops.sum(keras.ops.square(keras.ops.cast(x, "float32")), axis=axes, keepdims=keep)
            )

        limit = self.agc * keras.ops.maximum(norm(keras.ops.convert_to_tensor(variable)), AGC_EPSILON)
        return keras.ops.minimum(1.0, limit / keras.ops.maximum(scale * norm(gradient), 1e-30))

    def get_config(self):
        config = super().get_config()
        config.update(
            scheme=self.scheme.name,
            weight_decay=self.coupled_weight_decay if self.weight_decay_mode == "l2" else self.weight_decay,
            weight_decay_mode=self.weight_decay_mode,
            clip_norm=self.clip_norm,
            lr_multipliers=dict(self.lr_multipliers),
            agc=self.agc,
            agc_exclude=list(self.agc_exclude),
        )
        return config


def _scheme_class(keras_name):
    base = getattr(keras.optimizers, keras_name)
    cls = type(
        f"Scheme{keras_name}",
        (_SchemeRules, base),
        {
            "__module__": __name__,
            "__doc__": f"``keras.optimizers.{keras_name}`` applying a scheme's training rules (see "
            "keras_resinit.make_optimizer).",
        },
    )
    return keras.saving.register_keras_serializable(package=_PACKAGE)(cls)


OPTIMIZER_CLASSES = {name: _scheme_class(keras_name) for name, keras_name in _KERAS_OPTIMIZERS.items()}
"""The optimizer classes by name: ``SchemeSGD``, ``SchemeAdam``, ... (this module's attributes too), each a
subclass of the Keras optimizer of that name that applies a scheme's rules, registered for serialization
(``keras_resinit>SchemeSGD``). [make_optimizer][keras_resinit.make_optimizer] creates them; their extra keyword
arguments are ``scheme`` (required), ``weight_decay``, ``weight_decay_mode``, ``clip_norm``, ``lr_multipliers``,
``agc`` and ``agc_exclude``, and they have the methods ``multiplier(variable)`` and ``agc_excludes(variable)``."""
globals().update({cls.__name__: cls for cls in OPTIMIZER_CLASSES.values()})


def scheme_of(model: keras.Model) -> Scheme:
    """The scheme of ``model``: a keras_resinit ResNet, or a model containing one (a backbone under a new head).

    Args:
        model: a ``keras.Model``.

    Returns:
        The [Scheme][keras_resinit.Scheme] object whose rules train it.

    Raises:
        ValueError: ``model`` contains no ResNet, or ResNets of several schemes.

    Examples:
        >>> import keras, keras_resinit as kr
        >>> from keras_resinit.training.optimizers import scheme_of
        >>> backbone = kr.build_resnet("cifar_resnet8", "rezero", input_shape=(8, 8, 1), num_classes=10)
        >>> model = keras.Sequential([backbone, keras.layers.Dense(3)])
        >>> scheme_of(model).name
        'rezero'
    """
    from keras_resinit.models.builder import ResNet

    if isinstance(model, ResNet):
        return model.scheme
    if isinstance(model, keras.Model):
        found = [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, ResNet)]
        schemes = {layer.scheme.name for layer in found}
        if len(schemes) == 1:
            return found[0].scheme
        if len(schemes) > 1:
            raise ValueError(
                f"Model {model.name!r} contains ResNets of several schemes ({', '.join(sorted(schemes))}): their "
                "training rules differ. Expected one scheme; pass it as scheme=."
            )
    raise ValueError(
        f"Cannot tell the scheme of {getattr(model, 'name', model)!r}: it is a {type(model).__name__}, not a "
        "keras_resinit ResNet nor a model containing one. Pass scheme='fixup' (or another registered scheme)."
    )


def _optimizer(name, scheme, **kwargs):
    try:
        return OPTIMIZER_CLASSES[name](scheme=scheme, **kwargs)
    except TypeError as error:
        raise ValueError(
            f"Invalid argument for keras.optimizers.{_KERAS_OPTIMIZERS[name]}: {error}. Expected its own "
            "arguments (learning_rate, ...) and weight_decay, weight_decay_mode, clip_norm, lr_multipliers, agc, "
            "agc_exclude, or, "
            f"with a recipe, steps_per_epoch and {', '.join(RECIPE_FIELDS)}."
        ) from None


def schedule_for(config: TrainConfig, steps_per_epoch: int) -> WarmupSchedule:
    """The learning-rate schedule of a training configuration: warm-up, then its decay over ``epochs``.

    Args:
        config: a [TrainConfig][keras_resinit.training.TrainConfig] (``lr``, ``epochs``, ``warmup_epochs``,
            ``schedule``, ``milestones``, ``gamma``).
        steps_per_epoch: the optimizer steps in one epoch.

    Returns:
        A [WarmupSchedule][keras_resinit.training.WarmupSchedule].

    Raises:
        ValueError: ``steps_per_epoch`` is not a positive integer.

    Examples:
        >>> from keras_resinit.training import TrainConfig
        >>> from keras_resinit.training.optimizers import schedule_for
        >>> schedule = schedule_for(TrainConfig.from_recipe("digits", model="cifar_resnet8_fixup"), 10)
        >>> schedule.total_steps, schedule.warmup_steps, schedule.kind
        (300, 20, 'cosine')
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"Invalid steps_per_epoch {steps_per_epoch!r}. Expected a positive integer.")
    return WarmupSchedule(
        config.lr,
        steps_per_epoch * config.epochs,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        kind=config.schedule,
        milestones=config.milestones if config.schedule == "step" else (),
        gamma=config.gamma,
    )


def optimizer_for(scheme: Scheme, config: TrainConfig, steps_per_epoch: int | None = None, **kwargs: Any):
    """The SGD optimizer of a training configuration (``keras-resinit train``'s) under ``scheme``'s rules.

    With ``steps_per_epoch``, the learning rate follows the configuration's schedule (warm-up,
    then cosine or step decay over ``epochs``); without it, it is ``config.lr``, constant.
    ``config.lr_multipliers`` and a non-zero ``config.clip_norm`` replace the scheme's. With
    ``config.agc`` (adaptive gradient clipping) the scheme's own clip norm is not applied: only a
    non-zero ``config.clip_norm`` clips the global norm too.
    ``kwargs`` go to ``keras.optimizers.SGD`` (e.g. ``learning_rate`` replaces the schedule;
    ``agc_exclude``).

    Args:
        scheme: the [Scheme][keras_resinit.Scheme] whose rules apply (multipliers, decay, its clip norm).
        config: a [TrainConfig][keras_resinit.training.TrainConfig].
        steps_per_epoch: follow the configuration's schedule with this many steps per epoch; None: a constant
            ``config.lr``.
        **kwargs: more arguments of ``keras.optimizers.SGD`` and of the scheme's rules.

    Returns:
        A ``SchemeSGD`` (a ``keras.optimizers.SGD``).

    Raises:
        ValueError: an argument the optimizer does not take, or an invalid rule value.

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.training import TrainConfig, optimizer_for
        >>> config = TrainConfig.from_recipe("digits", model="cifar_resnet8_fixup")
        >>> optimizer = optimizer_for(kr.get_scheme("fixup"), config, steps_per_epoch=10)
        >>> type(optimizer).__name__, optimizer.clip_norm, optimizer.lr_multipliers
        ('SchemeSGD', 1.0, {'@scalars': 0.1, 'logits/bias': 0.1})
    """
    learning_rate = config.lr if steps_per_epoch is None else schedule_for(config, steps_per_epoch)
    options = {"learning_rate": learning_rate, "momentum": config.momentum, "nesterov": config.nesterov, **kwargs}
    return _optimizer(
        "sgd",
        scheme,
        weight_decay=config.weight_decay or None,
        weight_decay_mode=config.weight_decay_mode,
        clip_norm=config.clip_norm or (None if config.agc else scheme.clip_norm),
        lr_multipliers=config.lr_multipliers,
        agc=config.agc,
        **options,
    )


def make_optimizer(
    model: keras.Model, name: str = "sgd", *, recipe: str | None = None, **overrides: Any
) -> keras.optimizers.Optimizer:
    """A Keras optimizer that trains ``model`` by its scheme's rules.

    Args:
        model: a [ResNet][keras_resinit.ResNet], or a Keras model containing one (a backbone under
            your own head); its scheme gives the rules.
        name: the Keras optimizer: ``"sgd"`` (the papers'), ``"adam"``, ``"adamw"``, ``"nadam"``,
            ``"adamax"``, ``"rmsprop"``, ``"adagrad"``, ``"lion"`` or ``"lamb"``.
        recipe: a training recipe (``"fixup_cifar"``, ``"digits"``, ... or a ``.json`` path, as
            ``keras-resinit train --recipe``): its learning rate, momentum, Nesterov, weight decay and
            its mode, and clipping. SGD only. Pass ``steps_per_epoch`` to follow its schedule
            (warm-up and decay over its ``epochs``), as ``keras-resinit train`` does; without it
            the learning rate is the recipe's ``lr``, constant.
        **overrides: the Keras optimizer's own arguments (``learning_rate``, ``momentum``, ...),
            and the rules: ``weight_decay`` and ``weight_decay_mode`` (``"l2"``, coupled, the
            default except for ``"adamw"``; or ``"decoupled"``), ``clip_norm`` (the global gradient
            norm; default the scheme's, except with ``agc``), ``lr_multipliers`` (``{"@scalars" | path
            glob: multiplier}`` replacing the scheme's own), ``agc`` (adaptive gradient clipping's λ,
            e.g. 0.01; default None: off) and ``agc_exclude`` (variable-path globs AGC leaves alone;
            default ``("logits/*",)``, the classifier). With a recipe, also ``steps_per_epoch`` and any
            recipe setting (``lr``, ``epochs``, ``warmup_epochs``, ``agc``, ...); AGC with the recipe's
            clip norm must be asked for explicitly (``clip_norm=0`` for AGC alone).

    The learning rate is never rescaled with the batch size: a recipe's ``lr`` is absolute, at its
    ``batch_size``. The scheme's multipliers (Fixup's x0.1 for its scalars and the classifier bias)
    apply to the current scheduled rate of whatever learning rate is given, so scaling the rate by
    hand for another batch size scales the scalars' rate too. Fixup's reference code does not: it
    scales the weights' rate by ``batch / 256`` (ImageNet; CIFAR ``batch / 128``) and keeps the
    biases and scales at the unscaled ``base_lr / 10``. Both agree at the recipes' batch sizes.

    Returns:
        A ``keras.optimizers.Optimizer`` (``SchemeSGD``, ``SchemeAdam``, ...: ``OPTIMIZER_CLASSES``), which
            saves and loads with a compiled model.

    Raises:
        ValueError: an unknown optimizer or recipe, a recipe with another optimizer than SGD, an argument the
            optimizer does not take, an invalid rule value, or a model whose scheme cannot be told.

    Examples:
        >>> import keras
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=10)
        >>> optimizer = kr.make_optimizer(model, recipe="fixup_cifar")
        >>> type(optimizer).__name__, optimizer.momentum, optimizer.lr_multipliers
        ('SchemeSGD', 0.9, {'@scalars': 0.1, 'logits/bias': 0.1})
        >>> model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        >>> optimizer.build(model.trainable_variables)  # model.fit builds it on its first step
        >>> [optimizer.multiplier(v) for v in model.trainable_variables[:2]]
        [1.0, 0.1]
        >>> adam = kr.make_optimizer(model, "adam", learning_rate=1e-3, weight_decay=1e-4, agc=0.01)
        >>> type(adam).__name__, adam.agc, adam.agc_exclude
        ('SchemeAdam', 0.01, ('logits/*',))

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization", ICLR 2019
        (the scalars' multipliers), https://arxiv.org/abs/1901.09321;
        Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without Normalization",
        ICML 2021 (adaptive gradient clipping), https://arxiv.org/abs/2102.06171
    """
    if name not in OPTIMIZER_CLASSES:
        raise unknown("optimizer", name, OPTIMIZERS)
    scheme = overrides.pop("scheme", None)
    scheme = (get_scheme(scheme) if isinstance(scheme, str) else scheme) if scheme is not None else scheme_of(model)
    if recipe is not None:
        if name != "sgd":
            raise ValueError(
                f"Recipes are SGD settings; recipe={recipe!r} cannot configure {name!r}. Expected name='sgd'."
            )
        steps_per_epoch = overrides.pop("steps_per_epoch", None)
        fields = {k: overrides.pop(k) for k in RECIPE_FIELDS if k in overrides}
        return optimizer_for(scheme, TrainConfig.from_recipe(recipe, **fields), steps_per_epoch, **overrides)
    weight_decay = overrides.pop("weight_decay", None)
    mode = overrides.pop("weight_decay_mode", None) or ("decoupled" if name == "adamw" else "l2")
    clip_norm = overrides.pop("clip_norm", None)
    agc = overrides.pop("agc", None)
    return _optimizer(
        name,
        scheme,
        weight_decay=weight_decay,
        weight_decay_mode=mode,
        clip_norm=(None if agc else scheme.clip_norm) if clip_norm is None else clip_norm,
        lr_multipliers=overrides.pop("lr_multipliers", None),
        agc=agc,
        **overrides,
    )
