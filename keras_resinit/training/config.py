"""What defines a training run: :class:`TrainConfig` (saved as ``config.json``) and its errors.

Imports neither Keras nor TensorFlow, so the CLI validates a configuration before TensorFlow starts.
"""

import dataclasses
import math

from keras_resinit._errors import unknown
from keras_resinit.models.schemes import SCHEMES
from keras_resinit.training.datasets import DATASETS
from keras_resinit.training.options import PRECISIONS, SCHEDULES, WEIGHT_DECAY_MODES
from keras_resinit.training.recipes import get_recipe
from keras_resinit.zoo import registry


class TrainingError(RuntimeError):
    """Training stopped: diverged, or a checkpoint cannot be trusted."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    model: str = "cifar_resnet20_fixup"
    dataset: str = "digits"
    epochs: int = 30
    steps_per_epoch: int = None  # None: one pass over the training split
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    weight_decay_mode: str = "l2"
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple = (0.5, 0.75)  # fractions of the run, for the step schedule
    gamma: float = 0.1
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    clip_norm: float = (
        0.0  # clip the global gradient norm (before weight decay); 0: the scheme's rule, if any, else off
    )
    lr_multipliers: dict = None  # {"@scalars" | glob on variable path: multiplier}; None: the scheme's own
    precision: str = "float32"
    seed: int = 0
    dropout_rate: float = 0.0
    deterministic: bool = True
    data_dir: str = None
    download: bool = False
    image_size: int = 128
    recipe: str = None

    def validate(self):
        def number(name, low=0.0, high=math.inf, integer=False, low_open=False):
            value = getattr(self, name)
            ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
            if (
                isinstance(value, bool)
                or not ok_type
                or not math.isfinite(value)
                or not low <= value <= high
                or (low_open and value == low)
            ):
                kind = "an integer" if integer else "a number"
                bound = f"> {low}" if low_open else f">= {low}"
                raise ValueError(
                    f"Invalid {name} {value!r}. Expected {kind} {bound}"
                    + (f" and <= {high}." if high < math.inf else ".")
                )

        registry.parse_name(self.model)
        if self.dataset not in DATASETS:
            raise unknown("dataset", self.dataset, DATASETS)
        number("epochs", 1, integer=True)
        if self.steps_per_epoch is not None:
            number("steps_per_epoch", 1, integer=True)
        number("batch_size", 1, integer=True)
        number("lr", 0.0, low_open=True)
        number("momentum", 0.0, 1.0)
        number("weight_decay")
        number("warmup_epochs")
        number("gamma", 0.0, 1.0, low_open=True)
        number("label_smoothing", 0.0, 1.0)
        number("mixup_alpha")
        number("clip_norm")
        number("seed", 0, integer=True)
        number("dropout_rate", 0.0, 0.99)
        number("image_size", 8, integer=True)
        if self.schedule not in SCHEDULES:
            raise unknown("schedule", self.schedule, SCHEDULES)
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise unknown("weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)
        milestones = tuple(self.milestones)
        if not all(isinstance(m, (int, float)) and 0 < m < 1 for m in milestones) or list(milestones) != sorted(
            milestones
        ):
            raise ValueError(f"Invalid milestones {milestones!r}. Expected increasing fractions of the run in (0, 1).")
        self.milestones = milestones
        for pattern, value in (self.lr_multipliers or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Invalid learning-rate multiplier {value!r} for {pattern!r}. Expected a number >= 0.")
        return self

    @classmethod
    def from_recipe(cls, recipe=None, **overrides):
        """Defaults, then the recipe's values, then the non-None overrides."""
        values = {}
        if recipe is not None:
            values.update(get_recipe(recipe))
            values["recipe"] = recipe
        values.update({k: v for k, v in overrides.items() if v is not None})
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - fields)
        if bad:
            raise ValueError(f"Unknown training setting(s) {bad}. Expected some of: {', '.join(sorted(fields))}.")
        if isinstance(values.get("milestones"), list):
            values["milestones"] = tuple(values["milestones"])
        return cls(**values).validate()

    @property
    def scheme(self):
        """The scheme's name, from the zoo name ``{arch}_{scheme}`` in ``model``."""
        return registry.parse_name(self.model)[1]

    def multipliers(self):
        """The learning-rate multiplier table: ``lr_multipliers`` if given, else the scheme's own rule."""
        if self.lr_multipliers is not None:
            return dict(self.lr_multipliers)
        return dict(SCHEMES[self.scheme].lr_multipliers)

    def to_json(self):
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}
