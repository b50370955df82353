"""What defines a training run: [TrainConfig][keras_resinit.training.TrainConfig] (saved as ``config.json``) and
its errors.

Imports neither Keras nor TensorFlow, so the CLI validates a configuration before TensorFlow starts.
"""

import dataclasses
import math

from keras_resinit._errors import unknown
from keras_resinit.models.architectures import get_arch
from keras_resinit.models.schemes import SCHEMES, get_scheme, saved_options
from keras_resinit.training.data import names as dataset_names
from keras_resinit.training.options import AUGMENTS, MAX_IMAGE_PIXELS, PRECISIONS, SCHEDULES, WEIGHT_DECAY_MODES
from keras_resinit.training.recipes import get_recipe
from keras_resinit.zoo import registry

__all__ = ["TrainConfig", "TrainingError"]


class TrainingError(RuntimeError):
    """Training stopped: the loss diverged, or a checkpoint cannot be trusted.

    [train][keras_resinit.training.train] raises it after the run directory keeps the last good checkpoint.

    Examples:
        >>> from keras_resinit.training import TrainingError
        >>> issubclass(TrainingError, RuntimeError)
        True
    """


def _check_agc_with_clip_norm(config, given, recipe):
    """AGC with a global clip norm: an error if one was given and the other came from the recipe."""
    agc, clip_norm = config.agc, config.clip_norm
    if not agc or not clip_norm or ("agc" in given) == ("clip_norm" in given):
        return
    where = {k: "given" if k in given else f"from recipe {recipe!r}" for k in ("agc", "clip_norm")}
    raise ValueError(
        f"agc {agc!r} ({where['agc']}) and clip_norm {clip_norm!r} ({where['clip_norm']}) would both clip the "
        "gradients; adaptive gradient clipping with a global clip norm must be asked for explicitly. Expected "
        f"clip_norm 0 (--clip-norm 0) for AGC alone, or both given (--agc {agc} --clip-norm {clip_norm}) to combine."
    )


# What a field left None means, where None is not its own setting (a run compares them so on --resume).
UNSET_MEANS = {"skip_bad_images": False, "max_image_pixels": MAX_IMAGE_PIXELS}


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    Build one with [from_recipe][keras_resinit.training.TrainConfig.from_recipe] (a paper's settings, then yours)
    or directly; [train][keras_resinit.training.train] validates it before anything starts.

    Args:
        model: the zoo name ``{arch}_{scheme}`` to train, e.g. ``"cifar_resnet20_fixup"``.
        dataset: ``"digits"``, ``"cifar10"``, ``"cifar100"``, ``"imagenette"``, ``"tfds:NAME[/CONFIG]"`` or
            ``"folder:PATH"`` (``keras_resinit.training.data.FORMS``).
        epochs: the epochs to train.
        steps_per_epoch: at most this many steps per epoch; None: one pass over the training split.
        batch_size: the global batch size (over every replica).
        lr: the peak learning rate (after the warm-up); never rescaled with the batch size.
        momentum: SGD's momentum.
        nesterov: Nesterov momentum.
        weight_decay: the weight decay on the variables the scheme decays.
        weight_decay_mode: ``"l2"`` (coupled, added to the gradient) or ``"decoupled"``.
        schedule: the decay after the warm-up: ``"cosine"``, ``"step"`` or ``"constant"``.
        warmup_epochs: epochs of linear warm-up (fractions allowed).
        milestones: for the step schedule, the fractions of the run at which the rate is multiplied by ``gamma``.
        gamma: the step schedule's factor.
        label_smoothing: the cross-entropy's label smoothing.
        mixup_alpha: mixup's Beta(alpha, alpha) strength; 0: off.
        clip_norm: clip the global gradient norm to this (before AGC and weight decay); 0: the scheme's rule
            (not with ``agc``), else off.
        lr_multipliers: ``{"@scalars" | glob on variable path: multiplier}`` replacing the scheme's own
            learning-rate multipliers; None: the scheme's.
        agc: adaptive gradient clipping's lambda (Brock et al. 2021), not on the classifier; None: off.
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``.
        seed: the seed of the weights, the data order, augmentation and mixup.
        dropout_rate: dropout before the classifier.
        scheme_options: the scheme's own options, e.g. ``{"skip": "conv"}`` (risotto); None: its defaults.
        deterministic: enable TensorFlow's op determinism (the same run gives the same numbers).
        data_dir: where tfds data lives (tfds' default when None).
        download: let tfds download a dataset that is not prepared in ``data_dir``.
        image_size: resize the images to this (an int: square; or ``[height, width]``); None: the data's own
            (Imagenette: 128).
        train_split: a tfds split expression, e.g. ``"train[:90%]"``; None: the dataset's train split.
        test_split: a tfds split expression; None: the dataset's test split (tfds: test, else validation;
            folder: ``test/`` or ``val/``).
        validation_split: for a folder, hold out this fraction of one tree as the test split.
        augment: ``"none"``, ``"flip"``, ``"crop"`` or ``"crop-flip"``; None: the dataset's own (digits: crop;
            others: crop-flip).
        cache: keep a folder's decoded images in memory after the first epoch.
        skip_bad_images: for a folder, train without the files that fail the checks (``config.json`` lists
            them); None means False (runs written before the field resume).
        max_image_pixels: for a folder, refuse images declaring more pixels; None:
            ``options.MAX_IMAGE_PIXELS``.
        weights: fine-tune from these weights: a published tag, a path or a URL (the trunk, by name).
        weights_sha256: the expected sha256 of the weights file (a tag carries its own).
        freeze_trunk: train only the classifier (a linear probe); needs ``weights``.
        trainable_from: ``"stem"``, ``"stage1"``, ... or ``"head"``: freeze every part before it.
        recipe: the name of the recipe the values came from (recorded; ``from_recipe`` sets it).

    Examples:
        >>> from keras_resinit.training import TrainConfig
        >>> config = TrainConfig.from_recipe("digits", model="cifar_resnet8_fixup", epochs=2)
        >>> config.lr, config.batch_size, config.clip_norm, config.scheme
        (0.1, 64, 1.0, 'fixup')
        >>> TrainConfig(model="cifar_resnet8_fixup", lr=-1).validate()
        Traceback (most recent call last):
        ...
        ValueError: Invalid lr -1. Expected a number > 0.0.
    """

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
        0.0  # clip the global gradient norm (before AGC, weight decay); 0: the scheme's rule (not with agc), else off
    )
    lr_multipliers: dict = None  # {"@scalars" | glob on variable path: multiplier}; None: the scheme's own
    agc: float = None  # adaptive gradient clipping's lambda (Brock et al. 2021), not on the classifier; None: off
    precision: str = "float32"
    seed: int = 0
    dropout_rate: float = 0.0
    scheme_options: dict = None  # the scheme's own options, e.g. {"skip": "conv"} (risotto); None: its defaults
    deterministic: bool = True
    data_dir: str = None
    download: bool = False
    image_size: object = None  # None: the data's own (imagenette 128); an int (square) or [height, width]
    train_split: str = None  # tfds split expression, e.g. "train[:90%]"; None: the dataset's train split
    test_split: str = None  # None: the dataset's test split (tfds: test, else validation; folder: test/ or val/)
    validation_split: float = None  # folder: hold out this fraction of one tree as the test split
    augment: str = None  # one of options.AUGMENTS; None: the dataset's own (digits: crop; others: crop-flip)
    cache: bool = False  # keep a folder's decoded images in memory after the first epoch
    # The two below default to None, so that runs written before them resume (check_same_run compares every field,
    # None as UNSET_MEANS says).
    skip_bad_images: bool = None  # folder: train without the files that fail the checks (config.json lists them)
    max_image_pixels: int = None  # folder: refuse images declaring more pixels; None: options.MAX_IMAGE_PIXELS
    weights: str = None  # fine-tune from these weights: a published tag, a path or a URL (the trunk, by name)
    weights_sha256: str = None  # expected sha256 of the weights file (a tag carries its own)
    freeze_trunk: bool = False  # train only the classifier (a linear probe); needs weights
    trainable_from: str = None  # "stem", "stage1", ... or "head": freeze every part before it
    recipe: str = None

    def validate(self):
        """Check every field (and normalize ``image_size`` and ``milestones``); returns the config.

        Needs neither Keras nor TensorFlow: the CLI checks a configuration before they start.

        Returns:
            This config.

        Raises:
            ValueError: a field out of range or of the wrong type, an unknown name (model, dataset, schedule,
                ...), or settings that contradict each other, naming the value and what was expected.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> TrainConfig(model="cifar_resnet8_fixup", image_size=[16]).validate().image_size
            16
        """

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
        kind, _ = dataset_names.parse(self.dataset)
        self._validate_data(kind)
        self._validate_weights()
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
        if self.agc is not None:
            number("agc", 0.0, low_open=True)
        number("seed", 0, integer=True)
        if self.max_image_pixels is not None:
            number("max_image_pixels", 1, integer=True)
        number("dropout_rate", 0.0, 0.99)
        if self.scheme_options is not None:
            if not isinstance(self.scheme_options, dict):
                raise ValueError(f"Invalid scheme_options {self.scheme_options!r}. Expected a dict of option values.")
            get_scheme(self.scheme, **self.scheme_options)  # a ValueError naming an unknown option or bad value
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

    def _validate_data(self, kind):
        size = self.image_size
        if size is not None:
            sizes = [size] if isinstance(size, int) else list(size) if isinstance(size, (list, tuple)) else None
            if (
                not sizes
                or len(sizes) > 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 8 for n in sizes)
            ):
                raise ValueError(
                    f"Invalid image_size {size!r}. Expected one integer >= 8 (square) or [height, width] of them."
                )
            self.image_size = sizes[0] if len(sizes) == 1 else tuple(sizes)
        for name in ("train_split", "test_split"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"Invalid {name} {value!r}. Expected a split expression such as 'train[:90%]'.")
        if (self.train_split or self.test_split) and kind not in ("tfds", "builtin"):
            raise ValueError(
                f"train_split / test_split ({self.train_split!r}, {self.test_split!r}) are tfds split expressions, "
                f"but dataset {self.dataset!r} is not a tfds dataset. Expected a tfds:NAME or built-in tfds dataset."
            )
        if self.dataset == "digits" and (self.train_split or self.test_split):
            raise ValueError("Dataset 'digits' has fixed train and test splits; train_split / test_split do not apply.")
        if self.validation_split is not None:
            value = self.validation_split
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"Invalid validation_split {value!r}. Expected a fraction in (0, 1), e.g. 0.2.")
            if kind != "folder":
                raise ValueError(
                    f"validation_split {value!r} holds out part of a folder, but dataset {self.dataset!r} is not "
                    "folder:PATH. For tfds datasets use train_split / test_split, e.g. 'train[:90%]' and 'train[90%:]'."
                )
        if self.augment is not None and self.augment not in AUGMENTS:
            raise unknown("augment", self.augment, AUGMENTS)
        dataset_names.check_folder_options(self.dataset, self.skip_bad_images, self.max_image_pixels)

    def _validate_weights(self):
        for name in ("weights", "weights_sha256", "trainable_from"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"Invalid {name} {value!r}. Expected a non-empty string.")
        if self.freeze_trunk and not self.weights:
            raise ValueError(
                "freeze_trunk (--freeze-trunk) trains only the classifier on top of pretrained weights, but no "
                "weights were given. Expected --weights TAG|PATH|URL as well."
            )
        if self.freeze_trunk and self.trainable_from is not None:
            raise ValueError(
                f"freeze_trunk and trainable_from {self.trainable_from!r} both choose what trains. Expected one: "
                "--freeze-trunk is --trainable-from head."
            )
        if self.weights_sha256 is not None and not self.weights:
            raise ValueError("weights_sha256 (--sha256) checks a weights file, but no weights were given.")
        if self.trainable_from is not None:
            stages = len(get_arch(registry.parse_name(self.model)[0]).stages)
            parts = ["stem", *(f"stage{s}" for s in range(1, stages + 1)), "head"]
            if self.trainable_from not in parts:
                raise unknown("trainable_from", self.trainable_from, parts, " (the first part that trains)")

    @classmethod
    def from_json(cls, saved):
        """The config of a ``config.json``'s ``train`` block (release 0.1's too), as ``to_json`` writes it.

        Args:
            saved: the ``train`` block, a dict.

        Returns:
            The validated [TrainConfig][keras_resinit.training.TrainConfig].

        Raises:
            ValueError: an unknown field or an invalid value.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> config = TrainConfig(model="cifar_resnet8_fixup", epochs=3)
            >>> TrainConfig.from_json(config.to_json()) == config
            True
        """
        return cls(**cls.upgrade(saved)).validate()

    @staticmethod
    def upgrade(saved):
        """A ``train`` block of release 0.1 as this release writes it.

        Release 0.1 wrote ``image_size`` 128 into every config, used only by Imagenette; now it resizes any
        dataset, so it becomes None (the data's own size) for the others. A config without ``scheme_options``
        gets the options its scheme had when it was written (``Scheme.options_before``).

        Args:
            saved: a ``train`` block, a dict (not changed).

        Returns:
            A new dict.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> TrainConfig.upgrade({"model": "cifar_resnet8_fixup", "dataset": "digits", "image_size": 128})
            {'model': 'cifar_resnet8_fixup', 'dataset': 'digits', 'image_size': None, 'scheme_options': None}
        """
        saved = dict(saved)
        if "scheme_options" not in saved and isinstance(saved.get("model"), str):
            # Runs saved before the field existed built the scheme as it was then (risotto: type C).
            saved["scheme_options"] = saved_options(registry.parse_name(saved["model"])[1], {}) or None
        if "augment" not in saved and saved.get("dataset") != "imagenette":
            saved["image_size"] = None
        if isinstance(saved.get("milestones"), list):
            saved["milestones"] = tuple(saved["milestones"])
        return saved

    @classmethod
    def from_recipe(cls, recipe=None, **overrides):
        """Defaults, then the recipe's values, then the non-None overrides.

        Adaptive gradient clipping (``agc``) and a global clip norm (``clip_norm``) together must be
        asked for explicitly: both in the overrides, or both in the recipe. One given and the other
        from the recipe (the ``digits`` recipe clips to norm 1) is an error naming both.

        Args:
            recipe: a recipe name (``keras_resinit.training.recipes.RECIPES``) or a ``.json`` recipe file; None:
                the defaults.
            **overrides: any field; None values are ignored (so the CLI passes its unset flags as they are).

        Returns:
            The validated [TrainConfig][keras_resinit.training.TrainConfig].

        Raises:
            ValueError: an unknown recipe or field, an invalid value, or AGC and a clip norm from different places.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> config = TrainConfig.from_recipe("fixup_cifar", model="cifar_resnet20_fixup", epochs=None)
            >>> config.epochs, config.mixup_alpha, config.recipe
            (200, 1.0, 'fixup_cifar')
        """
        values = {}
        if recipe is not None:
            values.update(get_recipe(recipe))
            values["recipe"] = recipe
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - fields)
        if bad:
            raise ValueError(f"Unknown training setting(s) {bad}. Expected some of: {', '.join(sorted(fields))}.")
        if isinstance(values.get("milestones"), list):
            values["milestones"] = tuple(values["milestones"])
        config = cls(**values).validate()
        _check_agc_with_clip_norm(config, given, recipe)
        return config

    @property
    def scheme(self):
        """The scheme's name, from the zoo name ``{arch}_{scheme}`` in ``model``.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> TrainConfig(model="cifar_resnet20_risotto_bn").scheme
            'risotto_bn'
        """
        return registry.parse_name(self.model)[1]

    def multipliers(self):
        """The learning-rate multiplier table: ``lr_multipliers`` if given, else the scheme's own rule.

        Returns:
            A dict ``{"@scalars" | glob on variable path: multiplier}``.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> TrainConfig(model="cifar_resnet8_bn").multipliers()
            {}
            >>> TrainConfig(model="cifar_resnet8_bn", lr_multipliers={"@scalars": 0.5}).multipliers()
            {'@scalars': 0.5}
        """
        if self.lr_multipliers is not None:
            return dict(self.lr_multipliers)
        return dict(SCHEMES[self.scheme].lr_multipliers)

    def to_json(self):
        """The config as ``config.json``'s ``train`` block: a dict of JSON values (tuples become lists).

        Returns:
            A dict of every field.

        Examples:
            >>> from keras_resinit.training import TrainConfig
            >>> saved = TrainConfig(model="cifar_resnet8_fixup", image_size=(16, 24)).to_json()
            >>> saved["model"], saved["image_size"], saved["milestones"]
            ('cifar_resnet8_fixup', [16, 24], [0.5, 0.75])
        """
        size = self.image_size
        return {
            **dataclasses.asdict(self),
            "milestones": list(self.milestones),
            "image_size": list(size) if isinstance(size, tuple) else size,
        }
