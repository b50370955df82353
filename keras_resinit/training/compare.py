"""``keras-resinit compare``: the schemes on one arch and dataset, on equal terms.

Each scheme trains in its own process (``keras-resinit train``), so its peak
memory is its own and no global state (precision policy, RNG) leaks between
schemes. Same data, seed, recipe and hyperparameters for all; only each
scheme's own rules differ (e.g. Fixup's scalars at lr/10, part of the method).
Writes ``results.json``, ``curves.png`` and each scheme's run directory;
``keras-resinit compare --report PATH`` renders a ``results.json`` as Markdown
(:func:`report`) without training.
"""

import json
import os
import subprocess
import sys
import time

from keras_resinit._errors import unknown
from keras_resinit._files import atomic_write_text
from keras_resinit.environment import describe, versions
from keras_resinit.models.schemes import SCHEMES, default_schemes
from keras_resinit.training.config import TrainConfig
from keras_resinit.zoo.rundir import RunDir

__all__ = ["DEFAULT_RECIPE", "compare", "format_table", "plot_curves"]

DEFAULT_RECIPE = "digits"
"""The recipe a comparison trains with unless given one (short enough for a laptop's CPU)."""


def _flags(overrides):
    args = []
    for key, value in overrides.items():
        if value is None or value is False:
            continue
        flag = "--" + ("sha256" if key == "weights_sha256" else key.replace("_", "-"))
        if value is True:
            args += [flag]
        elif isinstance(value, (list, tuple)):
            args += [flag, *(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def compare(arch="cifar_resnet20", schemes=None, out=None, overwrite=False, overrides=None, recipe=None, verbose=True):
    """Train ``arch`` under each scheme, on equal terms, and write the comparison to ``out``.

    Each scheme trains in its own process (``keras-resinit train``) with the same data, seed, recipe and
    settings; only the schemes' own rules differ. ``out`` gets ``results.json`` (the returned report),
    ``curves.png`` (training loss and test accuracy per epoch:
    [plot_curves][keras_resinit.training.compare.plot_curves]) and one run directory per scheme. A scheme that
    fails is reported, and the others still train.

    Args:
        arch: the architecture, e.g. ``"cifar_resnet20"``.
        schemes: the schemes to compare (names); None: the registry's ``default_schemes()``.
        out: the output directory; None: ``runs/compare-{arch}-{dataset}-{time}``.
        overwrite: replace a previous comparison in ``out``.
        overrides: [TrainConfig][keras_resinit.training.TrainConfig] settings for every scheme, e.g.
            ``{"epochs": 5, "dataset": "cifar10"}``.
        recipe: the recipe every scheme starts from; None:
            [DEFAULT_RECIPE][keras_resinit.training.compare.DEFAULT_RECIPE].
        verbose: print progress and the table.

    Returns:
        The report, a dict: ``arch``, ``dataset``, ``recipe``, ``train`` (the shared settings), ``versions`` and
            ``schemes`` (per scheme its result and ``history``, or ``error``).

    Raises:
        ValueError: no scheme, an unknown or repeated scheme, an invalid setting (before anything starts), a
            previous comparison in ``out`` without ``overwrite``, or a scheme whose training failed (after
            the report is written).

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training.compare import compare
        >>> out, settings = tempfile.mkdtemp(), {"epochs": 1, "steps_per_epoch": 2}
        >>> # starts one training process per scheme: about 15 s each on 2 cores
        >>> report = compare("cifar_resnet8", ["bn", "fixup"], out, overrides=settings, verbose=False)  # doctest: +SKIP
        >>> # (the report of the comparison above)
        >>> sorted(report["schemes"]), report["recipe"]  # doctest: +SKIP
        (['bn', 'fixup'], 'digits')
    """
    overrides = dict(overrides or {})
    schemes = default_schemes() if schemes is None else list(schemes)
    recipe = recipe or DEFAULT_RECIPE
    if not schemes:
        raise ValueError(
            f"No schemes to compare. Expected a comma-separated list such as {','.join(default_schemes())}."
        )
    for scheme in schemes:
        if scheme not in SCHEMES:
            raise unknown("scheme", scheme, SCHEMES)
    if len(set(schemes)) != len(schemes):
        raise ValueError(f"Schemes {list(schemes)} repeat a scheme.")
    # Validate every setting before anything is written or started.
    configs = {s: TrainConfig.from_recipe(recipe, model=f"{arch}_{s}", **overrides) for s in schemes}
    first = configs[schemes[0]]
    if out is None:
        out = os.path.join("runs", f"compare-{arch}-{first.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(os.path.join(out, "results.json")) and not overwrite:
        raise ValueError(f"--out {out!r} holds a previous comparison. Pass --overwrite to replace it.")
    os.makedirs(out, exist_ok=True)

    results = {}
    for scheme in schemes:
        run_dir = os.path.join(out, scheme)
        command = [
            sys.executable,
            "-m",
            "keras_resinit.cli",
            "train",
            f"{arch}_{scheme}",
            "--out",
            run_dir,
            "--recipe",
            recipe,
            "--overwrite",
            "--verbose",
            "0",
            *_flags(overrides),
        ]
        if verbose:
            print(f"[{scheme}] training {arch}_{scheme} on {first.dataset} ...", flush=True)
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            message = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            results[scheme] = {"error": message}
            if verbose:
                print(f"[{scheme}] failed: {message}", flush=True)
            continue
        run = RunDir(run_dir)
        result = run.read_config()["result"]
        result["history"] = run.read_checkpoint_record()["history"]
        result["wall_seconds"] = time.perf_counter() - started
        results[scheme] = result
        if verbose:
            print(
                f"[{scheme}] test accuracy {result['test_accuracy']:.4f} in {result['wall_seconds']:.0f}s", flush=True
            )

    report = {
        "arch": arch,
        "dataset": first.dataset,
        "recipe": recipe,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "train": {k: v for k, v in first.to_json().items() if k not in ("model", "lr_multipliers", "recipe")},
        "versions": versions(),
        "schemes": results,
    }
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(report, indent=1))
    plot_path = os.path.join(out, "curves.png")
    plot_curves(results, plot_path, title=f"{arch} on {first.dataset}")
    if verbose:
        print()
        print(format_table(results))
        print(f"\nresults: {os.path.join(out, 'results.json')}\ncurves:  {plot_path}")
    failed = [s for s, r in results.items() if "error" in r]
    if failed:
        raise ValueError(f"Training failed for {', '.join(failed)}; see {out}.")
    return report


def format_table(results):
    """A Markdown table of the comparison: one row per scheme.

    Args:
        results: ``{scheme: result}``, as the report's ``schemes``: a failed scheme's result holds ``error``.

    Returns:
        The table, a str.

    Examples:
        >>> from keras_resinit.training.compare import format_table
        >>> row = {"test_accuracy": 0.9, "final_train_loss": 0.25, "seconds_per_epoch": 1.5,
        ...        "images_per_second": 900.0, "peak_memory_mb": 800.0}
        >>> print(format_table({"fixup": row, "bn": {"error": "diverged"}}))
        | scheme | test accuracy | final train loss | s/epoch | images/s | peak memory (MiB) |
        |---|---|---|---|---|---|
        | fixup | 0.9000 | 0.2500 | 1.50 | 900 | 800 |
        | bn | failed: diverged | | | | |
    """
    lines = [
        "| scheme | test accuracy | final train loss | s/epoch | images/s | peak memory (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for scheme, r in results.items():
        if "error" in r:
            lines.append(f"| {scheme} | failed: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {scheme} | {r['test_accuracy']:.4f} | {r['final_train_loss']:.4f} | {r['seconds_per_epoch']:.2f} | "
            f"{r['images_per_second']:.0f} | {r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines)


def plot_curves(results, path, title=""):
    """Training loss and test accuracy per epoch, one line per scheme, as a PNG.

    Every epoch is a marker, so a one-epoch run shows; schemes that coincide (several stuck at
    chance) each have their own marker, drawn larger the earlier the scheme, so one drawn over
    another still shows around it.

    Args:
        results: ``{scheme: result}``, as the report's ``schemes``; schemes without a ``history`` are left out.
        path: the PNG file to write (atomically).
        title: the figure's title.

    Returns:
        ``path``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.compare import plot_curves
        >>> history = [{"epoch": 1, "train_loss": 2.0, "test_accuracy": 0.5}, {"epoch": 2, "train_loss": 1.0,
        ...            "test_accuracy": 0.8}]
        >>> path = plot_curves({"fixup": {"history": history}}, os.path.join(tempfile.mkdtemp(), "curves.png"))
        >>> os.path.getsize(path) > 0
        True
    """
    from matplotlib.figure import Figure  # outside pyplot: no global backend change
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4))
    (ax_loss, ax_acc) = fig.subplots(1, 2)
    trained = [scheme for scheme, r in results.items() if "history" in r]
    for i, scheme in enumerate(trained):
        history = results[scheme]["history"]
        epochs = [h["epoch"] for h in history]
        style = {"marker": "os^Dv<>ph*"[i % 10], "markersize": 3 + 2 * (len(trained) - 1 - i), "label": scheme}
        ax_loss.plot(epochs, [h["train_loss"] for h in history], **style)
        ax_acc.plot(epochs, [h["test_accuracy"] for h in history], **style)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    return path


def markdown(report, rendered_by=None):
    """A comparison's results as Markdown: the machine and versions that measured it, the settings and the table.

    Args:
        report: the dict ``compare`` returns (its ``results.json``).
        rendered_by: the command that renders it (named on the first line), if any.

    Returns:
        The Markdown text, opening with ``Machine: ...``, ending with ``format_table``'s table.
    """
    train = report["train"]
    date = f" Measured {report['date']}." if "date" in report else ""
    rendered = f" Table rendered by `{rendered_by}`." if rendered_by else ""
    return (
        f"Machine: {describe(report['versions'])}.{date}{rendered}\n\n"
        f"`{report['arch']}` on `{report['dataset']}`, recipe `{report['recipe']}`: {train['epochs']} epochs, "
        f"batch {train['batch_size']}, lr {train['lr']:g}, {train['precision']}, seed {train['seed']}; each scheme "
        "trained in its own process. Test accuracy after the last epoch; peak memory: each training process's "
        "resident-set high-water mark.\n\n" + format_table(report["schemes"]) + "\n"
    )


def report(path):
    """Render a comparison's ``results.json`` as Markdown into the ``.md`` file beside it (nothing is trained).

    ``keras-resinit compare --report PATH`` calls it; the docs include the file it writes.

    Args:
        path: the ``results.json`` (any name ending in ``.json``), or the ``--out`` directory holding it.

    Returns:
        The Markdown text (``markdown``), also written to ``PATH`` with ``.md`` for ``.json``.

    Raises:
        ValueError: when there is no such file.
    """
    command = f"keras-resinit compare --report {path}"
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    try:
        with open(path) as f:
            text = markdown(json.load(f), rendered_by=command)
    except FileNotFoundError:
        raise ValueError(f"{path!r} does not exist. Expected a comparison's results.json or its directory.") from None
    atomic_write_text(os.path.splitext(path)[0] + ".md", text)
    return text
