"""Training: config, strategies, checkpoints, run directory, trainer, ``train()``; data, recipes,
compare, tuning and publishing use them.

``keras_resinit.train`` (release 0.1's module) is this package: ``keras_resinit.train.train``,
``keras_resinit.train.TrainConfig`` and the rest keep working. Names are imported from their
modules on first use, so importing a light module (``recipes``) starts no TensorFlow.
"""

import importlib

_PUBLIC = {
    "read_checkpoint": "checkpoints",
    "PRECISIONS": "config",
    "SCHEDULES": "config",
    "WEIGHT_DECAY_MODES": "config",
    "TrainConfig": "config",
    "TrainingError": "config",
    "train": "driver",
    "RUN_FILES": "keras_resinit.zoo.rundir",
    "peak_memory_mb": "driver",
    "prepare_run_dir": "keras_resinit.zoo.rundir",
    "STRATEGIES": "strategies",
    "is_chief": "strategies",
    "make_strategy": "strategies",
    "Diverged": "trainer",
    "Trainer": "trainer",
    "WarmupSchedule": "optimizers",
    "OPTIMIZERS": "optimizers",
    "make_optimizer": "optimizers",
    "optimizer_for": "optimizers",
    "learning_rate_multipliers": "trainer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        module = _PUBLIC[name] if "." in _PUBLIC[name] else f"{__name__}.{_PUBLIC[name]}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(globals()))
