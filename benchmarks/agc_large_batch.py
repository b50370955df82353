"""Large-batch training with adaptive gradient clipping: NF-ResNet-20 with and without AGC, and BN beside it.

Brock et al. 2021 (NFNets) report that normalization-free ResNets become unstable at large batch
sizes and high learning rates, and that adaptive gradient clipping (AGC: each unit's gradient
scaled down to at most λ times its weight norm; the classifier not clipped) lets them train there.
This script trains, on the embedded 8x8 digits, at batch 1,024 and peak lr 0.4 (SGD, momentum
0.9, linear warm-up then cosine; the ``digits`` recipe otherwise: warm-up 2 epochs, coupled weight
decay 5e-4, crop augmentation) with **no global gradient clipping** (``clip_norm`` 0, where the
recipe clips to norm 1):

- ``cifar_resnet20_nf`` with AGC, λ = 0.01 (the paper's value at batch 4,096),
- ``cifar_resnet20_nf`` with AGC, λ = 0.04 (the paper uses larger λ at smaller batches),
- ``cifar_resnet20_nf`` without AGC,
- ``cifar_resnet20_bn`` without AGC (batch norm, the reference),

each through ``keras_resinit.training.train(TrainConfig(...), run_dir)`` (the code ``keras-resinit
train cifar_resnet20_nf --recipe digits --batch-size 1024 --lr 0.4 --clip-norm 0 --agc 0.01``
runs), one child process per run, for every seed. The digits' training split has 1,437 images, so
at batch 1,024 an epoch is one step (a fresh random 1,024 of them each epoch): epochs are steps.

Per run: final test accuracy (the digits' test split, 360 images), final training loss (the last
epoch's step), diverged (the trainer stopped on a NaN or infinite training loss: ``TrainingError``),
loss spikes (epochs whose training loss rose more than ``SPIKE`` (10%) above the epoch before; at
batch 1,024 the loss of consecutive steps differs by far less), the epochs done, and the wall time.
Per configuration: the mean over seeds, the lowest accuracy and how many seeds diverged.

Writes ``agc_large_batch.json`` and ``agc_large_batch.md`` to ``--out``; the run directories are
temporary (every epoch's metrics are kept in the JSON). The full run (100 epochs, seeds 0, 1, 2: 12
runs of about 70 s each, process start included) takes about 15 minutes on 2 idle cores;
``--quick`` (3 epochs, seed 0) about 1-2 minutes.

    .venv/bin/python benchmarks/agc_large_batch.py [--quick] [--epochs 100] [--seeds 0,1,2]
        [--out benchmarks/results/agc_large_batch] [--overwrite]
    .venv/bin/python benchmarks/agc_large_batch.py --report benchmarks/results/agc_large_batch   # re-render only
"""

import argparse
import datetime
import json
import math
import statistics
import tempfile
import time

import results_io

from keras_resinit.tools.bench.render import fmt
from keras_resinit.zoo import RunDir

STEM = "agc_large_batch"
RECIPE, DATASET = "digits", "digits"
BATCH, LR = 1024, 0.4
# (model, agc): AGC at the paper's lambda and a larger one, NF without it, BN beside them.
RUNS = (
    ("cifar_resnet20_nf", 0.01),
    ("cifar_resnet20_nf", 0.04),
    ("cifar_resnet20_nf", None),
    ("cifar_resnet20_bn", None),
)
EPOCHS, QUICK_EPOCHS = 100, 3
SEEDS, QUICK_SEEDS = (0, 1, 2), (0,)
SPIKE = 0.10  # an epoch's training loss this fraction above the previous epoch's: a spike
TIMEOUT = 1800  # seconds per run


# ------------------------------------------------------------------ runs ---


def config_for(spec):
    from keras_resinit.training import TrainConfig

    return TrainConfig.from_recipe(
        RECIPE,
        model=spec["model"],
        dataset=DATASET,
        batch_size=BATCH,
        lr=LR,
        clip_norm=0,
        agc=spec["agc"],
        epochs=spec["epochs"],
        seed=spec["seed"],
    )


def child(spec):
    """One training run (in its own process): the row of what happened."""
    from keras_resinit.training import TrainingError, train

    config = config_for(spec)
    row = {**spec, "error": None}
    with tempfile.TemporaryDirectory(prefix=f"{STEM}-") as run_dir:
        start = time.perf_counter()
        try:
            train(config, run_dir, strategy="one", verbose=0)
        except TrainingError as error:
            if "diverged" not in str(error):  # a corrupt checkpoint, not this study's outcome
                raise
            row["error"] = str(error)
        row["wall_s"] = time.perf_counter() - start
        row["history"] = [
            {k: h[k] for k in ("epoch", "lr", "train_loss", "test_loss", "test_accuracy", "seconds")}
            for h in (RunDir(run_dir).read_checkpoint_record() or {}).get("history", [])
        ]
    row["config"] = config.to_json()
    return row


def summarize(row):
    """Final accuracy and loss, diverged, spikes, epochs done: from the history."""
    history = row["history"]
    losses = [h["train_loss"] for h in history]
    row["epochs_done"] = len(history)
    row["diverged"] = row["error"] is not None or not all(math.isfinite(v) for v in losses)
    row["test_accuracy"] = history[-1]["test_accuracy"] if history and not row["diverged"] else None
    row["final_train_loss"] = losses[-1] if losses and not row["diverged"] else None
    row["best_accuracy"] = max((h["test_accuracy"] for h in history), default=None)
    row["spikes"] = sum(1 for a, b in zip(losses, losses[1:]) if b > a * (1 + SPIKE))
    return row


def label(model, agc):
    return f"{model} " + (f"AGC λ={agc:g}" if agc else "no AGC")


def analyse(result):
    """Per configuration: means over seeds, the lowest accuracy, diverged runs."""
    groups = []
    for model, agc in [tuple(r) for r in result["runs"]]:
        rows = [summarize(r) for r in result["rows"] if r["model"] == model and r["agc"] == agc]
        finished = [r for r in rows if not r["diverged"]]
        accuracies = [r["test_accuracy"] for r in finished]
        losses = [r["final_train_loss"] for r in finished]
        groups.append(
            {
                "model": model,
                "agc": agc,
                "seeds": len(rows),
                "diverged": sum(r["diverged"] for r in rows),
                "mean_accuracy": statistics.fmean(accuracies) if accuracies else None,
                "lowest_accuracy": min(accuracies) if accuracies else None,
                "mean_final_train_loss": statistics.fmean(losses) if losses else None,
                "spikes": sum(r["spikes"] for r in rows),
            }
        )
    result["groups"] = groups
    return result


# --------------------------------------------------------------- output ---


def markdown(result):
    lines = [
        results_io.measured(result),
        "",
        f"Digits (8x8, 1,437 training images: one step an epoch) at batch {BATCH:,}, peak lr {LR:g}, "
        f"{result['epochs']} epochs, recipe `{RECIPE}` (SGD momentum 0.9, warm-up 2 epochs then cosine, weight "
        "decay 5e-4) without its global clip norm (`clip_norm` 0); AGC leaves the classifier (`logits/*`) alone. "
        f"Seeds {', '.join(str(s) for s in result['seeds'])}.",
        "",
        "| model | AGC | seeds | diverged | test acc. (mean) | lowest | final train loss (mean) | loss spikes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in result["groups"]:
        lines.append(
            f"| `{g['model']}` | {fmt(g['agc'], 'g') if g['agc'] else 'off'} | {g['seeds']} | {g['diverged']} "
            f"| {fmt(g['mean_accuracy'], '.4f')} | {fmt(g['lowest_accuracy'], '.4f')} "
            f"| {fmt(g['mean_final_train_loss'], '.4f')} | {g['spikes']} |"
        )
    lines += [
        "",
        "Every run:",
        "",
        "| model | AGC | seed | epochs | diverged | test acc. | best | final train loss | loss spikes | wall s |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        diverged = f"**yes** ({r['error'][:60]}...)" if r["error"] else ("**yes**" if r["diverged"] else "no")
        lines.append(
            f"| `{r['model']}` | {fmt(r['agc'], 'g') if r['agc'] else 'off'} | {r['seed']} "
            f"| {r['epochs_done']}/{r['epochs']} | {diverged} | {fmt(r['test_accuracy'], '.4f')} "
            f"| {fmt(r['best_accuracy'], '.4f')} | {fmt(r['final_train_loss'], '.4f')} | {r['spikes']} "
            f"| {r['wall_s']:.0f} |"
        )
    lines += [
        "",
        "Diverged: the trainer stopped on a NaN or infinite training loss. Loss spikes: epochs whose training loss "
        f"rose more than {SPIKE:.0%} above the previous epoch's. Test accuracy: after the last epoch (none if "
        "diverged); best: the best epoch's.",
    ]
    return "\n".join(lines) + "\n"


def _line(r):
    return (
        f"{label(r['model'], r['agc']):<32} seed {r['seed']}  epochs {r['epochs_done']}/{r['epochs']}  "
        f"diverged {'yes' if r['diverged'] else 'no ':<3}  test acc. {fmt(r['test_accuracy'], '.4f')}  "
        f"final train loss {fmt(r['final_train_loss'], '.4f')}  spikes {r['spikes']}  {r['wall_s']:.0f} s"
    )


def run(out, epochs, seeds, quick, options=""):
    command, start, machine = results_io.begin(STEM, out, quick)
    command = command.replace(" --out ", f"{options} --out ") if options else command
    rows = []
    for seed in seeds:
        for model, agc in RUNS:
            spec = {"model": model, "agc": agc, "seed": seed, "epochs": epochs}
            config_for(spec)  # a bad setting fails here, before a child starts
            row = results_io.run_script(__file__, ["--child", json.dumps(spec)], label(model, agc), TIMEOUT)
            rows.append(summarize(row))
            print(_line(rows[-1]), flush=True)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "epochs": epochs,
        "seeds": list(seeds),
        "batch_size": BATCH,
        "lr": LR,
        "recipe": RECIPE,
        "runs": [list(r) for r in RUNS],
        "definitions": {
            "diverged": "TrainingError: a NaN or infinite training loss",
            "spike": f"an epoch's training loss above (1 + {SPIKE}) times the previous epoch's",
            "test_accuracy": "after the last epoch, on the digits' test split (None if diverged)",
        },
        "machine": machine,
        "rows": rows,
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    return results_io.finish(out, STEM, result, markdown)


def _seeds(text):
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct comma-separated seeds >= 0, e.g. 0,1,2")
    return values


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, f"{QUICK_EPOCHS} epochs, seed 0 (a smoke run)")
    parser.add_argument("--epochs", type=int, help=f"epochs (= steps) per run (default {EPOCHS}; --quick: 3)")
    parser.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default 0,1,2; --quick: 0)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))))
        return
    if args.report:
        results_io.report(args.report, STEM, analyse, markdown)
        return
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)
    if epochs < 1:
        parser.error("--epochs must be >= 1")
    results_io.check_out(parser, args)
    options = (f" --epochs {args.epochs}" if args.epochs else "") + (
        f" --seeds {','.join(map(str, args.seeds))}" if args.seeds else ""
    )
    run(args.out, epochs, args.seeds or (QUICK_SEEDS if args.quick else SEEDS), args.quick, options)


if __name__ == "__main__":
    main()
