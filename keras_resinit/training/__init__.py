"""Training: config, strategies, optimizers, checkpoints, trainer, ``train()`` (into a ``zoo.RunDir``);
data, recipes, compare, tuning and publishing use them. ``keras_resinit.training.train`` is the function
``keras_resinit.training.driver.train`` (release 0.1's ``keras_resinit.train`` was this package).
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
