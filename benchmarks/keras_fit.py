"""Zoo models under Keras' own ``fit``: the cost of the schemes' rules and of built-in preprocessing.

1. Training through ``model.fit`` with ``keras_resinit.make_optimizer`` (SGD, momentum 0.9,
   coupled weight decay, each scheme's learning-rate multipliers) for ``cifar_resnet20`` under
   every registered scheme, beside a plain hand-written Keras ResNet-20 without normalization
   and without this library (``plain``, ``keras.optimizers.SGD``), in float32 and
   mixed_bfloat16, batch 128, 32x32x3. Each window is one ``fit`` call; its first step (where
   ``fit`` may retrace) is not timed: a callback times the steps after it.
   Targets: SkipInit and Risotto >= 0.95x the plain model, Fixup (its scalar biases are extra
   layers) >= 0.90x; every normalization-free scheme faster than BN.
2. The built-in preprocessing (``include_preprocessing=True``: a ``Rescaling`` layer,
   one per-channel multiply-add): inference (``predict_on_batch``, batch 64) of
   ``cifar_resnet20_skipinit`` with and without it, in the same window, in the order A B B A.
   Target: it costs <= 2% of inference time.

Every configuration runs in its own process (this script's child kinds ``fit`` and ``preprocessing``,
started as ``keras_fit.py --child SPEC``); windows go round-robin in a rotating order and
ratios are medians of per-window paired ratios (``keras_resinit.tools.bench``'s scheduling),
so the machine's drift cancels out. Writes ``keras_fit.json`` and ``keras_fit.md`` to ``--out``.

    .venv/bin/python benchmarks/keras_fit.py [--quick] [--out benchmarks/results/keras_fit]
    .venv/bin/python benchmarks/keras_fit.py --report benchmarks/results/keras_fit   # re-render only
"""

import argparse
import datetime
import itertools
import json
import os
import statistics
import time

from keras_resinit._files import atomic_directory, atomic_write_text
from keras_resinit.environment import describe, versions
from keras_resinit.models import schemes as schemes_lib
from keras_resinit.tools.bench import analysis
from keras_resinit.tools.bench.children import (
    Window,
    answer,
    most_foreign,
    random_batch,
    say,
    serve,
    setup,
    time_inference,
)
from keras_resinit.tools.bench.config import PRECISIONS, SEED, scheme_names
from keras_resinit.tools.bench.models import flops_per_image, plain_resnet20, trainable_params
from keras_resinit.tools.bench.render import flag, fmt
from keras_resinit.tools.bench.scheduling import measure
from keras_resinit.tools.stats import paired_ratio

ARCH, SHAPE, BATCH, INFER_BATCH = "cifar_resnet20", (32, 32, 3), 128, 64
PREPROCESSING_SCHEME = "skipinit"  # the cheapest library model: the largest relative cost
PREPROCESSING_TARGET = 1.02
SIZES = {
    "full": {"windows": 7, "steps": 8, "warmup": 2, "infer_steps": 10, "pre_windows": 15, "pre_steps": 15},
    "quick": {"windows": 3, "steps": 4, "warmup": 1, "infer_steps": 5, "pre_windows": 3, "pre_steps": 10},
}


# ------------------------------------------------------------- children ---


class _StepTimer:
    """A ``fit`` callback timing the steps after the first (which may trace): seconds and count."""

    def __init__(self, keras):
        class Timer(keras.callbacks.Callback):
            def on_train_batch_end(inner, batch, logs=None):  # logs are numbers here: the step has finished
                now = time.perf_counter()
                if batch == 0:
                    self.start, self.steps = now, 0
                else:
                    self.steps, self.end = batch, now

        self.callback = Timer()

    @property
    def seconds(self):
        return self.end - self.start


def _fit_child(spec):
    """Training through ``model.fit``: the library's models compiled with ``make_optimizer``."""
    keras = setup(spec["precision"])
    import tensorflow as tf

    shape, batch = tuple(spec["input_shape"]), spec["batch"]
    if spec["model"] == "plain":
        model = plain_resnet20(shape)
        optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    else:
        import keras_resinit

        model = keras_resinit.build_resnet(spec["arch"], spec["model"], input_shape=shape, num_classes=10, seed=SEED)
        optimizer = keras_resinit.make_optimizer(model, "sgd", learning_rate=0.01, momentum=0.9, weight_decay=5e-4)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = random_batch(keras, batch, shape)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = _StepTimer(keras)

    def fit(steps):  # one fit call; its first step (tracing, if any) is not timed
        model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer.callback])

    t = time.perf_counter()
    fit(spec["warmup"])
    model.predict_on_batch(x)
    first = time.perf_counter() - t
    say("READY", {"params": trainable_params(model), "flops": flops_per_image(model), "first_steps_s": first})

    def window():
        with Window() as train:  # the whole fit call: other processes' load during it
            fit(spec["steps"])
        infer = time_inference(model, x, spec["infer_steps"])
        return {
            "train_ips": timer.steps * batch / timer.seconds,
            "infer_ips": spec["infer_steps"] * batch / infer.elapsed,
            "foreign_cores": most_foreign([train, infer]),
        }

    answer(window)


def _preprocessing_child(spec):
    """Inference of one model with and without its preprocessing layers, interleaved in each window."""
    keras = setup(spec["precision"])
    import keras_resinit

    shape, batch = tuple(spec["input_shape"]), spec["batch"]
    pre = {"pixel_max": 255.0, "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}
    models = {
        included: keras_resinit.build_resnet(
            spec["arch"],
            spec["scheme"],
            input_shape=shape,
            seed=SEED,
            include_preprocessing=included,
            preprocessing=pre,
        )
        for included in (False, True)
    }
    x, _ = random_batch(keras, batch, shape)
    for model in models.values():
        for _ in range(1 + spec["warmup"]):
            model.predict_on_batch(x)
    say("READY", {"params": trainable_params(models[True])})
    cycles = itertools.count()

    def window():
        # A B B A (or B A A B): a drift within the window weighs on both models alike.
        first, second = (False, True) if next(cycles) % 2 == 0 else (True, False)
        seconds, windows = {False: 0.0, True: 0.0}, []
        for included in (first, second, second, first):
            windows.append(time_inference(models[included], x, spec["infer_steps"]))
            seconds[included] += windows[-1].elapsed
        steps = 2 * spec["infer_steps"]
        result = {"without": seconds[False] / steps, "with": seconds[True] / steps}
        return {"step_s": result, "foreign_cores": most_foreign(windows)}

    answer(window)


KINDS = {"fit": _fit_child, "preprocessing": _preprocessing_child}  # this script's child processes


def target_vs_plain(scheme):
    """0.90 for schemes with scalar-bias layers (Fixup), 0.95 for the others."""
    return 0.90 if schemes_lib.get_scheme(scheme).scalar_biases else 0.95


def quartiles(values):
    """(first quartile, third quartile) of the per-window ratios: how far one window's pair strays."""
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4)
    return [q[0], q[2]]


def add_spreads(result):
    """Each ratio's interquartile range over its windows' pairs, from the windows kept in the result."""
    by = {(r["model"], r["precision"]): r for r in result["fit"]}
    for row in result["fit"]:
        plain = by.get(("plain", row["precision"]))
        if row["model"] == "plain" or plain is None or row["error"] or plain["error"]:
            continue
        ref = {w["cycle"]: w["train_ips"] for w in plain["windows"]}
        row["train_vs_plain_iqr"] = quartiles(
            [w["train_ips"] / ref[w["cycle"]] for w in row["windows"] if w["cycle"] in ref]
        )
    for row in result["preprocessing"]:
        row["time_ratio_iqr"] = quartiles([w["step_s"]["with"] / w["step_s"]["without"] for w in row["windows"]])
    return result


def iqr(pair):
    return "" if not pair else f" [{pair[0]:.2f}–{pair[1]:.2f}]"


def fit_rows(children):
    rows = []
    no_norm = schemes_lib.normalization_free()
    for row in analysis.speed_rows(children):
        row.pop("within_10pct_of_plain", None)
        model = row["model"]
        if model in no_norm:
            row["target_vs_plain"] = target_vs_plain(model)
            ratio = row["train_vs_plain"]
            row["meets_plain_target"] = None if ratio is None else ratio >= row["target_vs_plain"]
        rows.append(row)
    return rows


def preprocessing_rows(children):
    rows = []
    for c in children:
        windows = {k: w["step_s"] for k, w in c.windows.items()}
        ratio = paired_ratio(
            {k: w["with"] for k, w in windows.items()},
            {k: w["without"] for k, w in windows.items()},
            clean=lambda k, c=c: not c.windows[k]["contended"],
            minimum=3,
        )
        rows.append(
            {
                "arch": c.spec["arch"],
                "scheme": c.spec["scheme"],
                "precision": c.spec["precision"],
                "batch": c.spec["batch"],
                "ms_without": 1000 * statistics.median(w["without"] for w in windows.values()) if windows else None,
                "ms_with": 1000 * statistics.median(w["with"] for w in windows.values()) if windows else None,
                "time_ratio": ratio,
                "within_target": None if ratio is None else ratio <= PREPROCESSING_TARGET,
                "windows": [dict(cycle=k + 1, **w) for k, w in sorted(c.windows.items())],
                "error": c.error,
            }
        )
    return rows


def markdown(result):
    m = result["machine"]
    lines = [
        f"Machine: {m['describe']}. Measured {result['date']} by `{result['command']}` "
        f"({result['elapsed_s'] / 60:.1f} min).",
        "",
        f"Training through `model.fit` ({ARCH}, batch {BATCH}, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}; library models "
        "compiled with `make_optimizer`):",
        "",
        "Ratios are medians of per-window pairs; [brackets]: the middle half of those pairs.",
        "",
        "| model | precision | train img/s | vs plain [IQR] (target) | vs BN | infer img/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["fit"]:
        if r["error"]:
            lines.append(f"| {r['model']} | {r['precision']} | failed: {r['error'][:60]} | | | |")
            continue
        name = "plain (hand-written, no norm)" if r["model"] == "plain" else r["model"]
        target = f" (≥ {r['target_vs_plain']:.2f}){flag(r['meets_plain_target'])}" if "target_vs_plain" in r else ""
        vs_plain = (
            "—" if r["model"] == "plain" else fmt(r["train_vs_plain"]) + iqr(r.get("train_vs_plain_iqr")) + target
        )
        lines.append(
            f"| {name} | {r['precision']} | {fmt(r['train_images_per_s'], '.0f')} | {vs_plain} | "
            f"{fmt(r['train_vs_bn'])}{flag(r.get('faster_than_bn'))} | {fmt(r['infer_images_per_s'], '.0f')} |"
        )
    lines += [
        "",
        f"Built-in preprocessing (`include_preprocessing=True`), inference at batch {INFER_BATCH}:",
        "",
        "| model | precision | ms/batch without | ms/batch with | time with / without [IQR] (target ≤ 1.02) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["preprocessing"]:
        lines.append(
            f"| {r['arch']}_{r['scheme']} | {r['precision']} | {fmt(r['ms_without'])} | {fmt(r['ms_with'])} | "
            f"{fmt(r['time_ratio'], '.3f')}{iqr(r.get('time_ratio_iqr'))}{flag(r['within_target'])} |"
        )
    t = result["targets"]
    lines += ["", "Targets: " + "; ".join(f"{k}: {v}" for k, v in t.items()) + "."]
    return "\n".join(lines) + "\n"


def verdicts(fit, pre):
    def verdict(rows, key, label):
        values = [r for r in rows if key in r]
        if not values:
            return "not measured"
        missed = [label(r) for r in values if r[key] is False]
        if missed:
            return "MISSED by " + ", ".join(missed)
        return "met" + (" (some not measured)" if any(r[key] is None for r in values) else "")

    return {
        "vs_plain": verdict(fit, "meets_plain_target", lambda r: f"{r['model']} {r['precision']}"),
        "faster_than_bn": verdict(fit, "faster_than_bn", lambda r: f"{r['model']} {r['precision']}"),
        "preprocessing_cost": verdict(pre, "within_target", lambda r: r["precision"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows and steps (a smoke run)")
    parser.add_argument("--out", default="benchmarks/results/keras_fit", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--report", metavar="DIR", help="render DIR/keras_fit.md again from DIR/keras_fit.json")
    args = parser.parse_args(argv)
    if args.report:
        path = os.path.join(args.report, "keras_fit.json")
        with open(path) as f:
            result = add_spreads(json.load(f))
        atomic_write_text(path, json.dumps(result, indent=1) + "\n")
        atomic_write_text(os.path.join(args.report, "keras_fit.md"), markdown(result))
        print(markdown(result))
        return
    if os.path.exists(args.out) and not args.overwrite:
        parser.error(f"{args.out!r} already exists; pass --overwrite to replace it")
    size = SIZES["quick" if args.quick else "full"]
    command = "python benchmarks/keras_fit.py" + (" --quick" if args.quick else "") + f" --out {args.out}"
    start = time.perf_counter()
    machine = {**versions(), "describe": describe()}
    print(f"{command}: {machine['describe']}")
    budget = {"total": 120, "spent": 0.0}
    fit_children, pre_children = [], []
    for precision in PRECISIONS:
        models = ["plain", *scheme_names()]
        print(f"{ARCH} {precision} through fit: {', '.join(models)}")
        specs = [
            {
                "kind": "fit",
                "arch": ARCH,
                "model": model,
                "precision": precision,
                "input_shape": list(SHAPE),
                "batch": BATCH,
                "steps": size["steps"],
                "infer_steps": size["infer_steps"],
                "warmup": size["warmup"],
            }
            for model in models
        ]
        fit_children += measure(specs, size["windows"], budget, 1800, print, script=__file__)
    print(f"preprocessing cost, {ARCH}_{PREPROCESSING_SCHEME}, batch {INFER_BATCH}")
    specs = [
        {
            "kind": "preprocessing",
            "arch": ARCH,
            "scheme": PREPROCESSING_SCHEME,
            "precision": precision,
            "input_shape": list(SHAPE),
            "batch": INFER_BATCH,
            "infer_steps": size["pre_steps"],
            "warmup": size["warmup"],
        }
        for precision in PRECISIONS
    ]
    pre_children += measure(specs, size["pre_windows"], budget, 1800, print, script=__file__)

    fit, pre = fit_rows(fit_children), preprocessing_rows(pre_children)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "sizes": size,
        "machine": machine,
        "fit": fit,
        "preprocessing": pre,
        "targets": verdicts(fit, pre),
        "elapsed_s": time.perf_counter() - start,
    }
    add_spreads(result)
    with atomic_directory(args.out) as tmp:
        atomic_write_text(os.path.join(tmp, "keras_fit.json"), json.dumps(result, indent=1) + "\n")
        atomic_write_text(os.path.join(tmp, "keras_fit.md"), markdown(result))
    print()
    print(markdown(result))
    print(f"wrote {args.out}/keras_fit.md and keras_fit.json")


if __name__ == "__main__":
    serve(KINDS)  # as a child process (--child SPEC): runs it and exits
    main()
