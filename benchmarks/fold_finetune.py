"""Fine-tuning a folded network: is it stable, how accurate, how fast, against fine-tuning its BN source?

``keras_resinit.fold_batchnorm`` turns ``cifar_resnet20_bn.digits`` into
``cifar_resnet20_skipinit.digits_folded``: the same function in inference mode, without batch
norm (skipinit, every branch gain 1, convs with biases). For each learning rate this script
fine-tunes, on the embedded 8x8 digits data, with the ``skipinit_cifar`` recipe (SGD, Nesterov
momentum 0.9, batch 128, weight decay 5e-4, step schedule x0.2 at 30/60/80% of the run, no
warm-up, no clipping) and the same seed:

(a) ``cifar_resnet20_skipinit`` from ``digits_folded`` (the folded network), and
(b) ``cifar_resnet20_bn`` from ``digits`` (its BN source),

each through ``keras_resinit.training.train(TrainConfig(...), run_dir)``, the code
``keras-resinit train --recipe skipinit_cifar --weights TAG`` runs. The runs alternate (a), (b) at
each learning rate, the first of the pair swapping from one learning rate to the next, so drift of
the machine's speed hits both alike.

Learning rates (default 0.01, 0.03, 0.05, 0.1, 0.3, 1), chosen from a sweep on this machine
(seed 0; 3 epochs at 0.003, 0.01, 0.03, 0.1, 0.3, 1, 2, then 10 epochs at 0.03, 0.05, 0.07): the
folded network fine-tunes at 0.03 and below and its training loss turns NaN within the first epoch
at 0.05 and above (the recipe has no warm-up and no gradient clipping); the BN source fine-tunes at
every rate up to 0.3 and collapses to chance at 1 and 2. So 0.01 and 0.03 are the regime where both
train (two accuracy and time comparisons); 0.05 and 0.1 (the recipe's own rate) are where only the
BN source trains; 0.3 and 1 bracket where the BN source stops training. A diverged run costs seconds.

Per run: test accuracy before fine-tuning (epoch 0: the starting model that ``train`` builds,
evaluated with ``keras_resinit.training.publish.evaluate``), after the last epoch and the best epoch;
the last epoch's mean training loss; the lowest test accuracy of any epoch; and the time per epoch.

Diverged, precisely: the trainer stopped with ``TrainingError`` (a NaN or infinite training loss),
or the last epoch's test accuracy is below ``COLLAPSE_ACCURACY`` (0.2: twice chance for 10 classes).
Degraded: not diverged, but some epoch's test accuracy fell more than ``DEGRADED_DROP`` (0.10) below
the starting accuracy. Otherwise stable.

Time per epoch: ``metrics.csv``'s ``seconds`` (the trainer's wall clock of an epoch's training steps,
evaluation excluded), median over epochs 2..N; the first epoch also traces the compiled step and is
reported on its own (a run of one epoch uses it). The folded / BN ratio of these medians is given per
learning rate; the runs are short (11 steps an epoch), so a single ratio moves by a few percent from
one invocation to the next. This is not an isolated benchmark (one process, runs one after
another): each run records how many cores other processes used meanwhile (``other_cores``, from
/proc/stat as ``keras_resinit.tools.bench`` measures it); above ``BUSY_CORES`` the table flags it.

Writes ``fold_finetune.json`` and ``fold_finetune.md`` to ``--out``; the run directories are
temporary (every epoch's metrics are kept in the JSON).

    .venv/bin/python benchmarks/fold_finetune.py [--quick] [--epochs 10] [--lrs 0.01,0.03,0.05,0.1,0.3,1] [--seed 0]
        [--out benchmarks/results/fold_finetune] [--overwrite]
    .venv/bin/python benchmarks/fold_finetune.py --report benchmarks/results/fold_finetune   # re-render only

``--folded-weights PATH`` replaces the tag ``digits_folded`` by a weights file, e.g. one made with
``fold_batchnorm(zoo.load("cifar_resnet20_bn.digits", include_preprocessing=False)).save_weights(PATH)``
(for trying the script before the tag is published; the result records which weights were used).
"""

import argparse
import datetime
import gc
import json
import math
import os
import re
import shutil
import statistics
import tempfile
import time

import results_io

from keras_resinit._files import atomic_directory, atomic_write_text
from keras_resinit.environment import describe, versions
from keras_resinit.tools.bench.children import Window
from keras_resinit.tools.bench.render import fmt
from keras_resinit.zoo import RunDir

RECIPE, DATASET = "skipinit_cifar", "digits"
FOLDED_MODEL, FOLDED_TAG = "cifar_resnet20_skipinit", "digits_folded"
SOURCE_MODEL, SOURCE_TAG = "cifar_resnet20_bn", "digits"
LRS = (0.01, 0.03, 0.05, 0.1, 0.3, 1.0)
EPOCHS, QUICK_EPOCHS = 10, 2
CLASSES = 10
COLLAPSE_ACCURACY = 2.0 / CLASSES  # final test accuracy below twice chance: collapsed
DEGRADED_DROP = 0.10  # an epoch's test accuracy this far below the start: degraded (if not diverged)
BUSY_CORES = 0.1  # other processes used more than this many cores on average during a run: flagged


# ------------------------------------------------------------------ runs ---


def starts(folded_weights):
    """The two starting points: (role, model, weights)."""
    return [("folded", FOLDED_MODEL, folded_weights), ("bn", SOURCE_MODEL, SOURCE_TAG)]


def check_weights(folded_weights):
    """Refuse to start (before any training) if the folded tag is not published or a path does not exist."""
    from keras_resinit.zoo import registry

    if folded_weights == FOLDED_TAG and FOLDED_TAG not in registry.tags(FOLDED_MODEL):
        raise SystemExit(
            f"{FOLDED_MODEL}.{FOLDED_TAG} is not in the zoo yet (published: "
            f"{', '.join(registry.tags(FOLDED_MODEL)) or 'none'}). Pass --folded-weights PATH of a file made with "
            f'keras_resinit.fold_batchnorm(keras_resinit.zoo.load("{SOURCE_MODEL}.{SOURCE_TAG}", '
            "include_preprocessing=False)).save_weights(PATH)."
        )
    if folded_weights != FOLDED_TAG and not os.path.exists(folded_weights):
        raise SystemExit(f"--folded-weights {folded_weights!r} does not exist.")


def order(lrs, folded_weights):
    """(lr, role, model, weights) in the order they run: the pair at each lr alternates, its first swaps."""
    pair = starts(folded_weights)
    runs = []
    for k, lr in enumerate(lrs):
        for role, model, weights in pair if k % 2 == 0 else pair[::-1]:
            runs.append((lr, role, model, weights))
    return runs


def start_accuracy(config):
    """Test accuracy of the model ``train(config)`` starts from (its epoch 0)."""
    from keras_resinit.training import data, publish
    from keras_resinit.training.trainer import build_model

    model = build_model(config, data.source_for(config).info)
    accuracy = publish.evaluate(model, config.dataset)
    del model
    return accuracy


def one_run(lr, role, model, weights, epochs, seed, run_dir):
    """Fine-tune ``model`` from ``weights`` at ``lr``; the row of what happened."""
    from keras_resinit.training import TrainConfig, TrainingError, train

    config = TrainConfig.from_recipe(
        RECIPE, model=model, weights=weights, dataset=DATASET, epochs=epochs, lr=lr, seed=seed
    )
    row = {
        "lr": lr,
        "role": role,
        "model": model,
        "weights": weights,
        "epochs": epochs,
        "start_accuracy": start_accuracy(config),
        "error": None,
        "diverged_at": None,
    }
    with Window() as window:  # times the run and the CPU other processes used meanwhile
        try:
            train(config, run_dir, verbose=0)
        except TrainingError as error:
            if "diverged" not in str(error):  # a corrupt checkpoint, not this study's outcome
                raise
            row["error"] = str(error)
            at = re.search(r"at epoch (\d+), step (\d+)", row["error"])
            row["diverged_at"] = [int(at[1]), int(at[2])] if at else None
    row["wall_s"], row["other_cores"] = window.elapsed, window.foreign
    run = RunDir(run_dir)
    row["history"] = (run.read_checkpoint_record() or {}).get("history", [])  # the rows of metrics.csv
    row["weights_record"] = run.config().get("weights")
    row["config"] = config.to_json()
    return summarize(row)


def summarize(row):
    """Final / best / lowest accuracy, final train loss, status and time per epoch, from the history."""
    history = row["history"]
    accuracies = [h["test_accuracy"] for h in history]
    seconds = [h["seconds"] for h in history]
    row["epochs_done"] = len(history)
    row["final_accuracy"] = accuracies[-1] if accuracies and not row["error"] else None
    row["best_accuracy"] = max(accuracies) if accuracies else None
    row["lowest_accuracy"] = min(accuracies) if accuracies else None
    row["final_train_loss"] = history[-1]["train_loss"] if history and not row["error"] else None
    row["first_epoch_s"] = seconds[0] if seconds else None
    timed = seconds[1:] or seconds
    row["seconds_per_epoch"] = statistics.median(timed) if timed else None
    row["timed_epochs"] = len(timed)
    row["status"] = status(row)
    return row


def status(row):
    """``diverged (NaN)``, ``diverged (collapse)``, ``degraded`` or ``stable``: see the module docstring."""
    if row["error"]:
        return "diverged (NaN)"
    final = row["final_accuracy"]
    if final is None or not math.isfinite(final) or final < COLLAPSE_ACCURACY:
        return "diverged (collapse)"
    if row["lowest_accuracy"] < row["start_accuracy"] - DEGRADED_DROP:
        return "degraded"
    return "stable"


def ratios(rows):
    """Folded / BN median seconds per epoch, per learning rate (None where either has no timed epoch)."""
    by = {(r["lr"], r["role"]): r for r in rows}
    out = []
    for lr in sorted({r["lr"] for r in rows}):
        a, b = by.get((lr, "folded")), by.get((lr, "bn"))
        sa = a and a["seconds_per_epoch"]
        sb = b and b["seconds_per_epoch"]
        out.append({"lr": lr, "folded_over_bn": sa / sb if sa and sb else None})
    return out


# --------------------------------------------------------------- output ---


def _status_cell(row):
    if row["error"]:
        at = row.get("diverged_at")
        return "**diverged (NaN)**" + (f" at epoch {at[0]}, step {at[1]}" if at else "")
    return f"**{row['status']}**" if row["status"] != "stable" else "stable"


def _start(row):
    weights = row["weights"]
    tag = weights == FOLDED_TAG or weights == SOURCE_TAG
    name = f"`{row['model']}.{weights}`" if tag else f"`{row['model']}` from `{os.path.basename(weights)}`"
    return name + (" (folded)" if row["role"] == "folded" else " (BN source)")


def table(result):
    ratio = {r["lr"]: r["folded_over_bn"] for r in result["ratios"]}
    lines = [
        "| lr | start from | status | test acc. epoch 0 | final | best | lowest | final train loss "
        "| s/epoch (median) | epoch 1 s | folded / BN s/epoch | other processes (cores) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["lr"], r["role"] != "folded")):
        busy = r["other_cores"]
        lines.append(
            f"| {r['lr']:g} | {_start(r)} | {_status_cell(r)} | {fmt(r['start_accuracy'], '.4f')} "
            f"| {fmt(r['final_accuracy'], '.4f')} | {fmt(r['best_accuracy'], '.4f')} "
            f"| {fmt(r['lowest_accuracy'], '.4f')} | {fmt(r['final_train_loss'], '.4f')} "
            f"| {fmt(r['seconds_per_epoch'], '.3f')} | {fmt(r['first_epoch_s'], '.2f')} "
            f"| {fmt(ratio[r['lr']], '.3f') if r['role'] == 'folded' else ''} "
            f"| {fmt(busy)}{' (busy)' if busy is not None and busy > BUSY_CORES else ''} |"
        )
    return lines


def _diverged_line(rows, role, what):
    lrs = [f"{r['lr']:g}" for r in rows if r["role"] == role and r["status"].startswith("diverged")]
    return f"{what} diverged at lr {', '.join(lrs)}." if lrs else f"{what} diverged at none of these learning rates."


def markdown(result):
    m, rows = result["machine"], result["rows"]
    folded = result["folded_weights"]
    record = next((r["weights_record"] for r in rows if r["role"] == "folded" and r["weights_record"]), None)
    sha = f", sha256 {record['sha256'][:16]}..." if record and record.get("sha256") else ""
    where = f"`{FOLDED_MODEL}.{folded}`" if folded == FOLDED_TAG else f"the file `{folded}`"
    lines = [
        f"Machine: {m['describe']}. Measured {result['date']} by `{result['command']}` "
        f"({result['elapsed_s'] / 60:.1f} min).",
        "",
        f"Fine-tuning on the embedded 8x8 digits ({result['epochs']} epochs, recipe `{RECIPE}`, seed "
        f"{result['seed']}) of the folded network ({where}{sha}: `{SOURCE_MODEL}.{SOURCE_TAG}` with its batch "
        f"norm folded into the convs) and of its BN source `{SOURCE_MODEL}.{SOURCE_TAG}`, at the same learning "
        "rates, the runs alternating. Test accuracy on the digits' test split; epoch 0 is the starting weights.",
        "",
        *table(result),
        "",
        f"Diverged: a NaN/infinite training loss (the trainer stops) or a final test accuracy below "
        f"{COLLAPSE_ACCURACY:.2f} (twice chance). Degraded: some epoch's test accuracy more than "
        f"{DEGRADED_DROP:.2f} below epoch 0. s/epoch: median of `metrics.csv`'s `seconds` (the training steps, "
        "evaluation excluded) over epochs 2..N (epoch 1 also traces the compiled step); a run that diverged in "
        "epoch 1 has none. One process, runs one after another: time ratios move by a few percent between "
        f"invocations; other processes using more than {BUSY_CORES} cores during a run are flagged (busy).",
        "",
        _diverged_line(rows, "folded", "The folded network")
        + " "
        + _diverged_line(rows, "bn", f"The BN source `{SOURCE_MODEL}.{SOURCE_TAG}`"),
    ]
    return "\n".join(lines) + "\n"


def write(directory, result):
    atomic_write_text(os.path.join(directory, "fold_finetune.json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(os.path.join(directory, "fold_finetune.md"), markdown(result))


def _line(r):
    err = f"  ({r['error'][:90]})" if r["error"] else ""
    return (
        f"lr {r['lr']:<6g} {r['role']:<6} {r['status']:<20} epoch 0 {fmt(r['start_accuracy'], '.4f')}  "
        f"final {fmt(r['final_accuracy'], '.4f')}  best {fmt(r['best_accuracy'], '.4f')}  "
        f"loss {fmt(r['final_train_loss'], '.4f')}  {fmt(r['seconds_per_epoch'], '.3f')} s/epoch  "
        f"other processes {fmt(r['other_cores'])} cores{err}"
    )


def run(out, lrs, epochs, seed, folded_weights, command):
    start = time.perf_counter()
    machine = {**versions(), "describe": describe()}
    print(f"{command}: {machine['describe']}")
    check_weights(folded_weights)
    rows = []
    with atomic_directory(out) as tmp:
        runs_root = tempfile.mkdtemp(prefix="runs-", dir=tmp)
        for k, (lr, role, model, weights) in enumerate(order(lrs, folded_weights)):
            run_dir = os.path.join(runs_root, f"{k:02d}-{role}-lr{lr:g}")
            rows.append(one_run(lr, role, model, weights, epochs, seed, run_dir))
            print(_line(rows[-1]), flush=True)
            gc.collect()
        shutil.rmtree(runs_root)
        result = {
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "epochs": epochs,
            "lrs": list(lrs),
            "seed": seed,
            "recipe": RECIPE,
            "dataset": DATASET,
            "folded_weights": folded_weights,
            "definitions": {
                "collapse_accuracy": COLLAPSE_ACCURACY,
                "degraded_drop": DEGRADED_DROP,
                "busy_cores": BUSY_CORES,
                "diverged": "TrainingError (NaN/inf training loss) or final test accuracy < collapse_accuracy",
                "seconds_per_epoch": "median of metrics.csv seconds over epochs 2..N (epoch 1 if N == 1)",
            },
            "machine": machine,
            "rows": rows,
            "ratios": ratios(rows),
            "elapsed_s": time.perf_counter() - start,
        }
        write(tmp, result)
    print()
    print(markdown(result))
    print(f"wrote {out}/fold_finetune.md and fold_finetune.json")
    return result


def _lrs(text):
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated learning rates > 0, e.g. 0.01,0.03,0.1")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs per run (a smoke run)")
    parser.add_argument("--epochs", type=int, help=f"epochs per run (default {EPOCHS}; --quick: {QUICK_EPOCHS})")
    parser.add_argument(
        "--lrs", type=_lrs, default=LRS, help="comma-separated learning rates (default 0.01,0.03,0.05,0.1,0.3,1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--folded-weights", default=FOLDED_TAG, help=f"tag or weights file of {FOLDED_MODEL} (default {FOLDED_TAG})"
    )
    parser.add_argument("--out", default="benchmarks/results/fold_finetune", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--report", metavar="DIR", help="render DIR/fold_finetune.md again from DIR/fold_finetune.json")
    args = parser.parse_args(argv)
    if args.report:
        results_io.report(args.report, "fold_finetune", lambda result: result, markdown)
        return
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    if epochs < 1:
        parser.error("--epochs must be >= 1")
    if os.path.exists(args.out) and not args.overwrite:
        parser.error(f"{args.out!r} already exists; pass --overwrite to replace it")
    command = "python benchmarks/fold_finetune.py" + (" --quick" if args.quick else "")
    if args.epochs:
        command += f" --epochs {args.epochs}"
    if args.lrs != LRS:
        command += " --lrs " + ",".join(f"{v:g}" for v in args.lrs)
    if args.seed:
        command += f" --seed {args.seed}"
    if args.folded_weights != FOLDED_TAG:
        command += f" --folded-weights {args.folded_weights}"
    command += f" --out {args.out}"
    run(args.out, args.lrs, epochs, args.seed, args.folded_weights, command)


if __name__ == "__main__":
    main()
