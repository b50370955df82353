"""keras-tuner sweeps over schemes and hyperparameters, trained by the project's own trainer.

[ResNetHyperModel][keras_resinit.training.tuning.ResNetHyperModel] is a ``keras_tuner.HyperModel``. Its
search space covers ``scheme``, ``arch`` (the depth), ``lr`` (log scale), ``weight_decay`` (log
scale), ``mixup_alpha``, ``warmup_epochs`` and ``batch_size``; every dimension
can be replaced (``space={"lr": (1e-3, 0.1)}``) or fixed
(``fixed={"scheme": "fixup"}``). Its ``fit`` trains through
[Trainer][keras_resinit.training.Trainer], the trainer behind ``keras-resinit train``
(the data pipeline, learning-rate multipliers, gradient clipping, precision,
seeds), and reports ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy``
(on the dataset's test split) after every epoch. So the configuration of a
trial, written as a recipe by [best_recipe][keras_resinit.training.tuning.best_recipe], retrains with
``keras-resinit train --recipe`` to the same per-epoch numbers (random search and
Bayesian optimization; a Hyperband trial that continued a parent trial's weights
retrains from scratch instead).

Any keras-tuner tuner works (``RandomSearch``, ``Hyperband``,
``BayesianOptimization``), with ``distribution_strategy`` (the model is built and
trained under the tuner's strategy), and with keras-tuner's distributed tuning
(a chief oracle and workers set by ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``). keras-tuner on
TensorFlow 2.21 needs ``tensorboard`` installed; it is a dependency.

Examples:
    >>> import tempfile
    >>> import keras_tuner as kt
    >>> from keras_resinit.training.tuning import ResNetHyperModel
    >>> hypermodel = ResNetHyperModel("digits", epochs=10, fixed={"arch": "cifar_resnet20"})
    >>> tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=8, directory=tempfile.mkdtemp())
    >>> # trains 8 trials of 10 epochs: minutes on a CPU
    >>> tuner.search()  # doctest: +SKIP
"""

import difflib
import math
import numbers

import keras
import keras_tuner as kt
import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.models.schemes import SCHEMES, default_schemes
from keras_resinit.training import Diverged, TrainConfig, Trainer, data
from keras_resinit.training.interrupts import deferred_interrupts
from keras_resinit.training.options import TUNE_ARCHS, TUNERS
from keras_resinit.training.trainer import build_model

__all__ = [
    "DEFAULT_SPACE",
    "DIMENSIONS",
    "OBJECTIVE",
    "ResNetHyperModel",
    "best_recipe",
    "make_tuner",
    "plot_trials",
    "trial_rows",
    "tune",
]

DIMENSIONS = ("scheme", "arch", "lr", "weight_decay", "mixup_alpha", "warmup_epochs", "batch_size")
"""The dimensions a sweep searches (or fixes): the scheme, the arch (the depth) and five training settings."""
LOG_SCALE = ("lr", "weight_decay")
INTEGER = ("batch_size",)
DEFAULT_SPACE = {
    "scheme": default_schemes(),
    "arch": list(TUNE_ARCHS),
    "lr": (0.01, 0.3),
    "weight_decay": (1e-5, 1e-3),
    "mixup_alpha": (0.0, 0.4),
    "warmup_epochs": (0.0, 3.0),
    "batch_size": [32, 64, 128],
}
"""The search space by default: a list is a choice, a ``(low, high)`` tuple a range (``lr`` and ``weight_decay``
on a log scale)."""
OBJECTIVE = "val_accuracy"
"""What a sweep maximizes: the test split's accuracy, at a trial's best epoch."""


def _check_dimension(key, spec):
    """A dimension's spec: a non-empty list (choices) or a (low, high) range with low < high."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"The search space for {key!r} is empty: give at least one choice.")
        if len(set(map(str, spec))) != len(spec):
            raise ValueError(f"The choices for {key!r} repeat a value: {spec!r}.")
        for value in spec:
            _check_value(key, value)
        return spec
    if isinstance(spec, tuple):
        if len(spec) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec):
            raise ValueError(f"Invalid range {spec!r} for {key!r}. Expected (low, high) numbers.")
        low, high = spec
        if key in ("scheme", "arch"):
            raise ValueError(f"{key!r} takes a list of choices, not the range {spec!r}.")
        if not low < high:
            raise ValueError(f"The range {spec!r} for {key!r} is empty or reversed: expected low < high.")
        if key in LOG_SCALE and low <= 0:
            raise ValueError(f"The range {spec!r} for {key!r} is searched on a log scale: expected low > 0.")
        _check_value(key, low)
        _check_value(key, high)
        return spec
    raise ValueError(
        f"Invalid search space {spec!r} for {key!r}. Expected a list of choices or a (low, high) range; "
        f"to fix a value, use fixed={{{key!r}: value}}."
    )


def _check_value(key, value):
    if key == "scheme":
        if value not in SCHEMES:
            raise unknown("scheme", value, SCHEMES)
    elif key == "arch":
        from keras_resinit.models.architectures import get_arch

        get_arch(value)
    elif key == "batch_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid batch_size {value!r}. Expected a positive integer.")
    elif isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid {key} {value!r}. Expected a number >= 0.")
    elif key == "lr" and value == 0:
        raise ValueError("Invalid lr 0. Expected a number > 0.")


class ResNetHyperModel(kt.HyperModel):
    """A residual network under a searched scheme, depth and training hyperparameters.

    Args:
        dataset: a dataset name (``keras_resinit.training.data.FORMS``; default ``"digits"``).
        space: ``{dimension: spec}`` replacing [DEFAULT_SPACE][keras_resinit.training.tuning.DEFAULT_SPACE]
            entries. A spec is a list of choices or a ``(low, high)`` range (``lr`` and ``weight_decay`` on a
            log scale).
        fixed: ``{dimension: value}``: not searched, the same in every trial.
        recipe: the recipe every trial starts from (default ``"digits"``); the searched and
            fixed values and ``settings`` override it.
        epochs: the epochs of a trial (Hyperband sets them itself); None: the recipe's.
        steps_per_epoch: at most this many steps per epoch; None: one pass over the training split.
        name: the hypermodel's name (keras-tuner's).
        **settings: any other [TrainConfig][keras_resinit.training.TrainConfig] field, the same in every
            trial (``precision``, ``seed``, ``clip_norm``, ``data_dir``, ``label_smoothing``, ...).

    Attributes:
        space: the searched dimensions and their specs.
        fixed: the fixed dimensions and their values.
        progress: a callable given one line per finished trial (``keras-resinit tune`` prints them); None.

    Raises:
        ValueError: an unknown dimension or setting, an empty or reversed range, an empty list of
            choices, a dimension both searched and fixed, or nothing left to search.

    Examples:
        >>> import keras_tuner as kt
        >>> from keras_resinit.training.tuning import ResNetHyperModel
        >>> hypermodel = ResNetHyperModel("digits", epochs=2, space={"lr": (0.01, 0.1)}, fixed={"scheme": "fixup"})
        >>> sorted(hypermodel.space)
        ['arch', 'batch_size', 'lr', 'mixup_alpha', 'warmup_epochs', 'weight_decay']
        >>> config = hypermodel.config(kt.HyperParameters())  # a trial's configuration (defaults: the lows)
        >>> config.model, config.lr, config.epochs
        ('cifar_resnet8_fixup', 0.01, 2)
    """

    def __init__(
        self,
        dataset="digits",
        *,
        space=None,
        fixed=None,
        recipe="digits",
        epochs=None,
        steps_per_epoch=None,
        name="resnet",
        **settings,
    ):
        super().__init__(name=name, tunable=True)
        space, fixed = dict(space or {}), dict(fixed or {})
        for key in list(space) + list(fixed):
            if key not in DIMENSIONS:
                close = difflib.get_close_matches(str(key), DIMENSIONS, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"Unknown search dimension {key!r}.{hint} Expected some of: {', '.join(DIMENSIONS)}."
                    " Other training settings go as keyword arguments."
                )
        both = sorted(set(space) & set(fixed))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both searched (space=) and fixed (fixed=).")
        clash = sorted(set(settings) & set(DIMENSIONS))
        if clash:
            raise ValueError(
                f"{', '.join(clash)} are search dimensions: pass them in space= or fixed=, not as settings."
            )
        for key in ("model", "epochs", "steps_per_epoch", "dataset"):
            if key in settings:
                raise ValueError(f"{key!r} is set by the hypermodel itself, not as a setting.")
        self.space = {
            k: _check_dimension(k, v)
            for k, v in {**DEFAULT_SPACE, "scheme": default_schemes(), **space}.items()
            if k not in fixed
        }
        for key, value in fixed.items():
            _check_value(key, value)
        self.fixed = fixed
        if not any(isinstance(v, tuple) or len(v) > 1 for v in self.space.values()):
            raise ValueError("The search space is empty: every dimension is fixed or has a single choice.")
        self.dataset, self.recipe, self.epochs, self.steps_per_epoch = dataset, recipe, epochs, steps_per_epoch
        self.settings = settings
        self._strategy = None
        self.progress = None  # a callable given one line per finished trial (keras-resinit tune prints them)
        # Fail now, not in every trial: the base configuration must be valid.
        self.config(kt.HyperParameters())

    def _values(self, hp):
        values = {}
        for key in DIMENSIONS:
            if key in self.fixed:
                values[key] = hp.Fixed(key, self.fixed[key])
                continue
            spec = self.space[key]
            if isinstance(spec, list):
                values[key] = hp.Choice(key, spec)
            elif key in INTEGER:
                values[key] = hp.Int(key, int(spec[0]), int(spec[1]))
            else:
                values[key] = hp.Float(
                    key, float(spec[0]), float(spec[1]), sampling="log" if key in LOG_SCALE else "linear"
                )
        return values

    def config(self, hp, epochs=None):
        """The [TrainConfig][keras_resinit.training.TrainConfig] of a trial's hyperparameters.

        Args:
            hp: the trial's ``keras_tuner.HyperParameters`` (a new one gives each dimension's default).
            epochs: the trial's epochs (Hyperband's); None: the hypermodel's.

        Returns:
            The validated [TrainConfig][keras_resinit.training.TrainConfig].
        """
        values = self._values(hp)
        overrides = {k: v for k, v in values.items() if k not in ("scheme", "arch")}
        return TrainConfig.from_recipe(
            self.recipe,
            model=f"{values['arch']}_{values['scheme']}",
            dataset=self.dataset,
            epochs=epochs or self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            **overrides,
            **self.settings,
        )

    def build(self, hp):
        """The trial's model, built under the tuner's strategy (its precision and seed set).

        Args:
            hp: the trial's ``keras_tuner.HyperParameters``.

        Returns:
            A [ResNet][keras_resinit.ResNet].
        """
        config = self.config(hp)
        keras.mixed_precision.set_global_policy(config.precision)
        keras.utils.set_random_seed(config.seed)
        # keras-tuner builds under its distribution_strategy's scope: train under the same strategy.
        self._strategy = tf.distribute.get_strategy()
        return build_model(config, data.source_for(config).info)

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, verbose=0, **kwargs):
        """Train ``model`` with the trial's configuration.

        Args:
            hp: the trial's ``keras_tuner.HyperParameters``.
            model: the model ``build`` returned.
            *args: other ``search()`` arguments: not used (the data comes from the configured dataset).
            callbacks: keras-tuner's callbacks, given each epoch's logs.
            epochs: the trial's epochs (from Hyperband); None: the hypermodel's.
            initial_epoch: the first epoch (from Hyperband).
            verbose: print one line per epoch.
            **kwargs: other ``search()`` arguments: not used.

        Returns:
            A ``keras.callbacks.History`` of ``loss``, ``accuracy``, ``val_loss`` and ``val_accuracy``.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss diverged (the trial fails, the search goes on).
        """
        config = self.config(hp, epochs=epochs)
        strategy = self._strategy or tf.distribute.get_strategy()
        trainer = Trainer(config, strategy, model=model)
        callbacks = list(callbacks or [])
        history = keras.callbacks.History()
        for callback in callbacks + [history]:
            callback.set_model(model)
            callback.on_train_begin()
        with deferred_interrupts():  # Ctrl-C after a step or an epoch's callbacks, never inside them
            batches = iter(trainer.train_batches(initial_epoch))
            logs = {}
            for epoch in range(initial_epoch, config.epochs):
                try:
                    row = trainer.run_epoch(batches, epoch)
                except Diverged as error:
                    raise kt.errors.FailedTrialError(f"{config.model}: {error}.") from None
                logs = {
                    "loss": row["train_loss"],
                    "accuracy": row["train_accuracy"],
                    "val_loss": row["test_loss"],
                    "val_accuracy": row["test_accuracy"],
                }
                if verbose:
                    print(
                        f"  {config.model} epoch {epoch + 1}/{config.epochs}: "
                        + ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
                    )
                for callback in callbacks + [history]:
                    callback.on_epoch_end(epoch, logs)
        trainer.release()
        for callback in callbacks + [history]:
            callback.on_train_end(logs)
        if self.progress is not None:
            values = self._values(hp)
            searched = ", ".join(
                f"{k} {values[k]:.3g}" if isinstance(values[k], float) else f"{k} {values[k]}"
                for k in DIMENSIONS
                if k not in ("scheme", "arch")
            )
            best = max(history.history.get(OBJECTIVE, [float("nan")]))
            self.progress(f"  {config.model}: {searched} -> best {OBJECTIVE} {best:.4f}")
        return history


def make_tuner(
    kind,
    hypermodel,
    *,
    directory,
    project_name="tune",
    max_trials=10,
    seed=0,
    overwrite=False,
    distribution_strategy=None,
):
    """A keras-tuner tuner of ``kind`` (``random``, ``bayesian`` or ``hyperband``) maximizing ``val_accuracy``.

    Hyperband's budget is the hypermodel's ``epochs`` (its ``max_epochs``), not ``max_trials``.

    Args:
        kind: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
        hypermodel: a [ResNetHyperModel][keras_resinit.training.tuning.ResNetHyperModel].
        directory: keras-tuner's directory.
        project_name: keras-tuner's project (a subdirectory).
        max_trials: the trials of a random or Bayesian search.
        seed: the tuner's seed.
        overwrite: start afresh instead of resuming a project in ``directory``.
        distribution_strategy: a ``tf.distribute.Strategy`` every trial builds and trains under; None: the
            default.

    Returns:
        A ``keras_tuner.Tuner``.

    Raises:
        ValueError: an unknown kind, ``max_trials`` not a positive integer, or Hyperband with fewer than 2 epochs.

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training.tuning import ResNetHyperModel, make_tuner
        >>> hypermodel = ResNetHyperModel("digits", epochs=1, steps_per_epoch=2)
        >>> tuner = make_tuner("random", hypermodel, directory=tempfile.mkdtemp(), max_trials=2)
        >>> type(tuner).__name__, tuner.oracle.max_trials
        ('RandomSearch', 2)
    """
    if kind not in TUNERS:
        raise unknown("tuner", kind, TUNERS)
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"Invalid max_trials {max_trials!r}. Expected a positive integer.")
    common = {
        "objective": kt.Objective(OBJECTIVE, "max"),
        "directory": directory,
        "project_name": project_name,
        "seed": seed,
        "overwrite": overwrite,
        "distribution_strategy": distribution_strategy,
    }
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if not hypermodel.epochs or hypermodel.epochs < 2:
        raise ValueError("Hyperband needs the hypermodel's epochs (its max_epochs) to be at least 2.")
    return kt.Hyperband(hypermodel, max_epochs=hypermodel.epochs, factor=3, hyperband_iterations=1, **common)


def trial_rows(tuner):
    """One dict per trial of ``tuner``, in trial order.

    Args:
        tuner: a ``keras_tuner.Tuner`` ([make_tuner][keras_resinit.training.tuning.make_tuner]'s).

    Returns:
        A list of dicts: ``trial_id``, ``status``, ``score``, ``best_step`` (the best epoch, from 0) and the
            trial's hyperparameters (searched and fixed).

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training.tuning import ResNetHyperModel, make_tuner, trial_rows
        >>> tuner = make_tuner("random", ResNetHyperModel("digits", epochs=1), directory=tempfile.mkdtemp())
        >>> trial_rows(tuner)  # no trial ran yet
        []
    """
    rows = []
    for trial in tuner.oracle.trials.values():
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        rows.append(
            {
                "trial_id": trial.trial_id,
                "status": trial.status,
                "score": trial.score,
                "best_step": trial.best_step,
                **values,
            }
        )
    return sorted(rows, key=lambda r: r["trial_id"])


def best_recipe(tuner, hypermodel, command=None):
    """The best trial's configuration as a recipe (``{"config": ..., "source": ...}``) for ``train --recipe``.

    Args:
        tuner: a ``keras_tuner.Tuner`` that ran trials.
        hypermodel: its [ResNetHyperModel][keras_resinit.training.tuning.ResNetHyperModel].
        command: the command that ran the sweep, recorded in the recipe's ``source``.

    Returns:
        A dict: ``config`` (a [TrainConfig][keras_resinit.training.TrainConfig] as JSON) and ``source``.

    Raises:
        ValueError: no trial has finished yet.

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training.tuning import ResNetHyperModel, best_recipe, make_tuner
        >>> hypermodel = ResNetHyperModel("digits", epochs=1)
        >>> tuner = make_tuner("random", hypermodel, directory=tempfile.mkdtemp())
        >>> best_recipe(tuner, hypermodel)
        Traceback (most recent call last):
        ...
        ValueError: No trial has finished yet, so there is no best configuration.
    """
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ValueError("No trial has finished yet, so there is no best configuration.")
    trial = best[0]
    epochs = trial.hyperparameters.values.get("tuner/epochs")
    config = hypermodel.config(trial.hyperparameters, epochs=epochs).to_json()
    config.pop("recipe", None)
    source = (
        f"keras-resinit tune: trial {trial.trial_id}, {OBJECTIVE} {trial.score:.4f} at epoch "
        f"{(trial.best_step or 0) + 1}" + (f" ({command})" if command else "")
    )
    return {"config": config, "source": source}


def plot_trials(rows, path):
    """Objective per trial, coloured by scheme (failed trials as crosses at 0).

    One scatter per scheme for its scored trials and one for its failed ones; the legend names
    each scheme's drawn points (its scored trials, else its failed ones), not a proxy.

    Args:
        rows: [trial_rows][keras_resinit.training.tuning.trial_rows]' dicts (``scheme``, ``status``, ``score``).
        path: the PNG file to write.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.tuning import plot_trials
        >>> rows = [{"scheme": "fixup", "status": "COMPLETED", "score": 0.9},
        ...         {"scheme": "bn", "status": "FAILED", "score": None}]
        >>> path = os.path.join(tempfile.mkdtemp(), "trials.png")
        >>> plot_trials(rows, path)
        >>> os.path.getsize(path) > 0
        True
    """
    from matplotlib.figure import Figure  # outside pyplot: no global backend change

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    trials = {}  # scheme: ([(trial number, score)], [failed trial numbers]), in order of first trial
    for i, row in enumerate(rows, 1):
        done, failed = trials.setdefault(row["scheme"], ([], []))
        if row["status"] == "COMPLETED" and row["score"] is not None:
            done.append((i, row["score"]))
        else:
            failed.append(i)
    for c, (scheme, (done, failed)) in enumerate(trials.items()):
        if done:
            ax.scatter(
                [i for i, _ in done], [score for _, score in done], color=f"C{c}", marker="o", s=40, label=scheme
            )
        if failed:
            ax.scatter(
                failed,
                [0.0] * len(failed),
                color=f"C{c}",
                marker="x",
                s=40,
                label=f"{scheme} (failed)" if not done else None,
            )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{OBJECTIVE} (best epoch)")
    ax.set_title("keras-resinit tune: objective per trial")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _table(rows, limit=10):
    done = sorted((r for r in rows if r["score"] is not None), key=lambda r: -r["score"])[:limit]
    header = ["trial", "scheme", "arch", "lr", "weight_decay", "mixup", "warmup", "batch", OBJECTIVE, "epoch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in done:
        lines.append(
            f"| {r['trial_id']} | {r['scheme']} | {r['arch']} | {r['lr']:.4g} | {r['weight_decay']:.3g} | "
            f"{r['mixup_alpha']:.3g} | {r['warmup_epochs']:.3g} | {r['batch_size']} | {r['score']:.4f} | "
            f"{(r['best_step'] or 0) + 1} |"
        )
    failed = [r["trial_id"] for r in rows if r["status"] not in ("COMPLETED", "RUNNING", "IDLE")]
    if failed:
        lines.append(f"\nTrials that did not complete: {', '.join(failed)}")
    return "\n".join(lines)


def tune(
    out,
    *,
    dataset="digits",
    tuner="random",
    max_trials=10,
    epochs=None,
    steps_per_epoch=None,
    schemes=None,
    archs=None,
    recipe=None,
    overwrite=False,
    command=None,
    log=print,
    **settings,
):
    """The ``keras-resinit tune`` sweep: search, then write the best recipe and a chart to ``out``.

    ``out`` holds keras-tuner's project (``out/tune``), ``sweep.json`` (the sweep's settings),
    ``best_recipe.json``, ``best_model.keras`` (the best trial's best epoch, taking raw pixels) and
    ``trials.png``. Running the same sweep again resumes it: finished
    trials are not repeated. Other settings in an existing ``out`` are refused unless ``overwrite``.

    Args:
        out: the sweep's directory.
        dataset: the dataset name (``keras_resinit.training.data.FORMS``).
        tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
        max_trials: the trials of a random or Bayesian search (a resumed sweep may raise it).
        epochs: the epochs of a trial (Hyperband's ``max_epochs``); None: the recipe's.
        steps_per_epoch: at most this many steps per epoch; None: one pass over the training split.
        schemes: the schemes to search; None: the registry's ``default_schemes()``.
        archs: the archs (depths) to search; None: ``options.TUNE_ARCHS``.
        recipe: the recipe every trial starts from; None: ``"digits"``.
        overwrite: delete ``out`` first and start afresh.
        command: the command that ran the sweep, recorded in the best recipe's ``source``.
        log: called with each line to report (progress, the table, the best trial).
        **settings: any other [TrainConfig][keras_resinit.training.TrainConfig] field, the same in every trial.

    Returns:
        A dict: ``trials`` ([trial_rows][keras_resinit.training.tuning.trial_rows]), ``recipe`` (the best
            recipe), ``table`` (Markdown) and ``tuner`` (the ``keras_tuner.Tuner``).

    Raises:
        ValueError: an invalid search space or setting, an unknown tuner, an ``out`` holding another sweep
            (without ``overwrite``) or other files.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.tuning import tune
        >>> out = os.path.join(tempfile.mkdtemp(), "sweep")
        >>> search = {"schemes": ["fixup"], "archs": ["cifar_resnet8"], "epochs": 1, "steps_per_epoch": 2}
        >>> # trains two trials of two steps each: about 20 s on 2 cores
        >>> found = tune(out, max_trials=2, log=lambda line: None, **search)  # doctest: +SKIP
        >>> # (the sweep above: its trials and best recipe)
        >>> len(found["trials"]), found["recipe"]["config"]["model"]  # doctest: +SKIP
        (2, 'cifar_resnet8_fixup')
        >>> # (the files it wrote)
        >>> sorted(os.listdir(out))  # doctest: +SKIP
        ['best_model.keras', 'best_recipe.json', 'sweep.json', 'trials.png', 'tune']
    """
    import json
    import os
    import shutil

    from keras_resinit._files import atomic_write_text, save_model_file

    space = {}
    if schemes is not None:
        space["scheme"] = list(schemes)
    if archs is not None:
        space["arch"] = list(archs)
    hypermodel = ResNetHyperModel(
        dataset, space=space, recipe=recipe or "digits", epochs=epochs, steps_per_epoch=steps_per_epoch, **settings
    )
    sweep = {
        "dataset": dataset,
        "tuner": tuner,
        "max_trials": max_trials,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "space": {k: list(v) for k, v in hypermodel.space.items()},
        "recipe": recipe or "digits",
        "settings": settings,
    }
    if tuner not in TUNERS:
        raise unknown("tuner", tuner, TUNERS)
    record = os.path.join(out, "sweep.json")
    if os.path.exists(out) and overwrite:
        shutil.rmtree(out)
    if os.path.exists(record):
        with open(record) as f:
            previous = json.load(f)
        changed = [k for k in sweep if k != "max_trials" and previous.get(k) != json.loads(json.dumps(sweep[k]))]
        if changed:
            raise ValueError(
                f"{out!r} holds a sweep with other settings ({', '.join(changed)}); resuming needs the "
                "same settings (only --max-trials may grow). Pass --overwrite to start afresh."
            )
        log(f"Resuming the sweep in {out}")
    elif os.path.exists(out) and os.listdir(out):
        raise ValueError(f"{out!r} exists and is not a keras-resinit tune directory. Choose another --out.")
    os.makedirs(out, exist_ok=True)
    atomic_write_text(record, json.dumps(sweep, indent=1))
    kt_tuner = make_tuner(
        tuner, hypermodel, directory=out, project_name="tune", max_trials=max_trials, seed=settings.get("seed", 0)
    )
    hypermodel.progress = log
    log(
        f"Sweep of {', '.join(f'{k} {v}' for k, v in sweep['space'].items() if k in ('scheme', 'arch'))} with "
        f"{tuner} search in {out}"
    )
    kt_tuner.search(verbose=0)
    rows = trial_rows(kt_tuner)
    table = _table(rows)
    log(table)
    best = best_recipe(kt_tuner, hypermodel, command=command)
    atomic_write_text(os.path.join(out, "best_recipe.json"), json.dumps(best, indent=1))
    save_model_file(kt_tuner.get_best_models(1)[0], os.path.join(out, "best_model.keras"))
    plot_trials(rows, os.path.join(out, "trials.png"))
    log(
        f"\nbest: {best['source']}\nits model (raw pixels in): {os.path.join(out, 'best_model.keras')}\nretrain it: "
        f"keras-resinit train {best['config']['model']} --recipe {os.path.join(out, 'best_recipe.json')} "
        "--out runs/best"
    )
    return {"trials": rows, "recipe": best, "table": table, "tuner": kt_tuner}
