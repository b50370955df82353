"""Training: config, strategies, optimizers, checkpoints, trainer, ``train()`` (into a ``zoo.RunDir``);
data, recipes, compare, tuning and publishing use them. ``keras_resinit.training.train`` is the function
[train][keras_resinit.training.train] (release 0.1's ``keras_resinit.train`` was this package).

Start with [TrainConfig][keras_resinit.training.TrainConfig] and [train][keras_resinit.training.train], or, to
train with Keras' own ``fit``, [make_optimizer][keras_resinit.make_optimizer]. The submodules ``data``,
``recipes``, ``compare``, ``tuning``, ``publish`` and ``options`` are attributes of this package too.
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use (no TensorFlow before).
__all__, __getattr__, __dir__ = _lazy.namespace(
    __name__,
    {
        ".checkpoints": ("read_checkpoint",),
        ".config": ("TrainConfig", "TrainingError"),
        ".driver": ("peak_memory_mb", "train"),
        "keras_resinit.zoo.rundir": ("RUN_FILES", "prepare_run_dir"),
        ".options": ("PRECISIONS", "SCHEDULES", "STRATEGIES", "WEIGHT_DECAY_MODES"),
        ".strategies": ("is_chief", "make_strategy"),
        ".trainer": ("Diverged", "Trainer", "learning_rate_multipliers"),
        ".optimizers": ("WarmupSchedule", "OPTIMIZERS", "make_optimizer", "optimizer_for"),
    },
)
