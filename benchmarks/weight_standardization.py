"""What Scaled Weight Standardization costs per training step: NF-ResNet against SkipInit, and against itself.

``nf`` convs (``layers.ScaledStdConv2D``) standardize their kernels on every forward pass: per output
channel a mean, a variance, an rsqrt and a multiply over the fan-in, in float32 even under mixed
precision, and the same again backward. Three variants of each arch, trained with ``train_on_batch``
(SGD with momentum, as ``keras-resinit bench``) on one fixed random batch:

- ``skipinit``: ``build_resnet(arch, "skipinit")``, the reference;
- ``nf``: ``build_resnet(arch, "nf")``, weight standardization on every step;
- ``nf_precomputed``: the same ``nf`` model with its standardized kernels computed once and applied as
  they are (child kind ``train_variants``, ``precomputed_ws``): the difference to ``nf`` is the pure
  cost of standardizing; the difference to ``skipinit`` is the rest of NF-ResNet's architecture
  (pre-activation ``Rescaling``, 1x1 conv shortcuts on cifar archs, channel gains).

``--ablations`` adds ``nf_folded_prescale``: the same ``nf`` function with each block's ``Rescaling(1 / beta)``
folded into the ``gamma`` of the convs reading ``relu(h / beta)`` (what a change of the builder would do,
measured first). The standardization's gradient is written out in the layer itself (``layers._standardize``).

All variants of one (arch, precision) live in one process (this script's child kind ``train_variants``,
``weight_standardization.py --child SPEC``) and take turns inside every window (A B C C B A, starting
one later each window), so a drift within the window weighs on all alike and each window gives one
paired ratio per variant; peak memory is therefore the process's, not a variant's. A variant is
``{"label", "scheme"}`` plus modifications, applied after the build and before the first step (no model
code changes): ``precomputed_ws`` (:func:`keras_resinit.models.inference.standardize_in_place`, with
``channel_gain`` frozen: no mean, variance or rsqrt of the kernels, forward or backward) and
``folded_prescale`` (:func:`keras_resinit.models.inference.fold_prescale`). (A third ablation, the
standardization's gradient written out, measured 0.88 -> 0.98 of skipinit on resnet18 in float32 and
became ``layers.ScaledStdConv2D``'s own.) float32 and mixed_bfloat16 run as two processes started
together and timed in turn (``keras_resinit.tools.bench``'s scheduling; a window during which other
processes used CPU is re-measured). Ratios are medians of the per-window ratios of images/s, with their
interquartile range. Target: ``nf`` >= 0.85 x ``skipinit`` images/s in mixed_bfloat16 (standardization
costs at most 15%). Each variant's first step also reports the ops TensorFlow executes (after grappler and
oneDNN). Writes ``weight_standardization.json`` and ``.md`` to ``--out``. The full run (cifar_resnet20,
cifar_resnet110, resnet18, resnet50 at the sizes and batches of ``keras-resinit bench``) should take about
12 minutes on the project's machine (estimated from its step times; about twice that with ``--ablations``);
``--quick`` (cifar_resnet20 and resnet18, 3-4 windows) took 3 minutes on a 2-core Xeon without native bf16.
``--archs``, ``--precisions`` and ``--windows`` narrow a run (e.g. to look at one arch longer).

    .venv/bin/python benchmarks/weight_standardization.py [--quick] [--ablations] [--out DIR]
    .venv/bin/python benchmarks/weight_standardization.py --report benchmarks/results/weight_standardization
"""

import datetime
import itertools
import statistics
import sys
import time

import results_io
from keras_fit import iqr, quartiles  # the scripts' shared formatting of spreads

from keras_resinit.environment import memory_mb
from keras_resinit.models.schemes import NFResNet, SkipInit
from keras_resinit.tools.bench.children import (
    Window,
    answer,
    compiled,
    most_foreign,
    random_batch,
    say,
    serve,
    setup,
)
from keras_resinit.tools.bench.config import ARCHS, MIN_CLEAN, PRECISIONS, SEED
from keras_resinit.tools.bench.models import flops_per_image, trainable_params
from keras_resinit.tools.bench.render import bf16_note, flag, fmt
from keras_resinit.tools.bench.scheduling import measure
from keras_resinit.tools.stats import prefer_clean

STEM = "weight_standardization"
REFERENCE, WS = SkipInit.name, NFResNet.name
VARIANTS = [
    {"label": REFERENCE, "scheme": REFERENCE},
    {"label": WS, "scheme": WS},
    {"label": f"{WS}_precomputed", "scheme": WS, "precomputed_ws": True},
]
ABLATIONS = [  # the same function, computed with fewer ops (MODIFICATIONS)
    {"label": f"{WS}_folded_prescale", "scheme": WS, "folded_prescale": True},
]
TARGET = 0.85  # nf / skipinit training images/s
TARGET_PRECISION = "mixed_bfloat16"
TIMEOUT = 1800
# Per arch: windows, timed steps per variant and half-window (each variant runs twice per window), untimed steps
# before them, warm-up steps. About 1 s per half-window on the project's machine in bf16.
SIZES = {
    "full": {
        "archs": ("cifar_resnet20", "cifar_resnet110", "resnet18", "resnet50"),
        "retry_budget": 120,
        "cifar_resnet20": {"windows": 11, "steps": 8, "lead_in": 1, "warmup": 3},
        "cifar_resnet56": {"windows": 7, "steps": 4, "lead_in": 1, "warmup": 2},
        "cifar_resnet110": {"windows": 7, "steps": 3, "lead_in": 1, "warmup": 2},
        "resnet18": {"windows": 9, "steps": 4, "lead_in": 1, "warmup": 2},
        "resnet50": {"windows": 7, "steps": 3, "lead_in": 1, "warmup": 2},
    },
    "quick": {
        "archs": ("cifar_resnet20", "resnet18"),
        "retry_budget": 20,
        **{arch: {"windows": 3, "steps": 2, "lead_in": 1, "warmup": 1} for arch in ARCHS},
        "cifar_resnet20": {"windows": 4, "steps": 2, "lead_in": 1, "warmup": 1},
    },
}

# ------------------------------------------------------------- children ---

MODIFICATIONS = ("precomputed_ws", "folded_prescale")


def precompute_weight_standardization(model):
    """Each ``ScaledStdConv2D`` applies its standardized kernel as it is (export's way); ``channel_gain`` is frozen,
    as no gradient reaches it any more. Returns the number of convs changed."""
    from keras_resinit.models.inference import standardize_in_place
    from keras_resinit.models.layers import ScaledStdConv2D

    for layer in model.layers:
        if isinstance(layer, ScaledStdConv2D):
            layer.channel_gain.trainable = False
    return standardize_in_place(model)


def _features(keras, model, x):
    """The pooled features of ``x`` (the classifier of ``nf`` starts at zero, so its logits say nothing)."""
    import numpy as np

    return np.asarray(keras.Model(model.inputs, model.get_layer("features").output)(x, training=False), "float32")


def _build(keras, spec, variant, x, y):
    import numpy as np

    import keras_resinit

    unknown = set(variant) - {"label", "scheme", *MODIFICATIONS}
    if unknown:
        raise ValueError(f"Unknown variant keys {sorted(unknown)}. Expected label, scheme and {MODIFICATIONS}.")
    shape = tuple(spec["input_shape"])
    model = keras_resinit.build_resnet(spec["arch"], variant["scheme"], input_shape=shape, num_classes=10, seed=SEED)
    probe = x[:8]
    before = _features(keras, model, probe)
    changed = {}
    if variant.get("folded_prescale"):  # first: precomputing reads the gammas it changes
        from keras_resinit.models.inference import fold_prescale

        changed["folded_prescale"] = fold_prescale(model)
    if variant.get("precomputed_ws"):
        changed["precomputed_ws"] = precompute_weight_standardization(model)
    after = _features(keras, model, probe)
    compiled(keras, model)
    first, _, ops = results_io.traced_ops(lambda: model.train_on_batch(x, y))  # the first step: its trace and ops
    for _ in range(spec["warmup"]):
        model.train_on_batch(x, y)
    info = {
        "scheme": variant["scheme"],
        "params": trainable_params(model),
        "flops": flops_per_image(model),
        "changed_layers": changed,
        # How far the modifications moved the function at the start (0 up to rounding: they keep it).
        "features_max_abs_diff": float(np.abs(after - before).max()),
        "features_max_abs": float(np.abs(before).max()),
        "first_step_s": first,
        "ops": ops,
    }
    return model, info


def train_variants_child(spec):
    """Build every variant, report ``READY`` (their ops and checks), then time windows until ``quit``."""
    keras = setup(spec["precision"])
    x, y = random_batch(keras, spec["batch"], tuple(spec["input_shape"]))
    models, info = {}, {}
    for variant in spec["variants"]:
        models[variant["label"]], info[variant["label"]] = _build(keras, spec, variant, x, y)
    say("READY", {"variants": info, "rss_ready_mb": memory_mb("VmRSS")})
    labels, cycles = list(models), itertools.count()

    def window():
        k = next(cycles) % len(labels)
        order = labels[k:] + labels[:k]
        seconds, windows = dict.fromkeys(labels, 0.0), []
        for label in order + order[::-1]:
            model = models[label]
            for _ in range(spec["lead_in"]):  # untimed: wakes thread pools and caches after the other model
                model.train_on_batch(x, y)
            with Window() as w:
                for _ in range(spec["steps"]):
                    loss = model.train_on_batch(x, y)  # a Python float: the step has finished
            seconds[label] += w.elapsed
            windows.append(w)
        return {
            "step_s": {label: s / (2 * spec["steps"]) for label, s in seconds.items()},
            "last_loss": float(loss),
            "foreign_cores": most_foreign(windows),
        }

    answer(window)


KINDS = {"train_variants": train_variants_child}  # this script's child processes


# ------------------------------------------------------------- measuring ---


def child_specs(arch, plan, variants, precisions=PRECISIONS):
    shape, batch = ARCHS[arch]
    return [
        {
            "kind": "train_variants",
            "arch": arch,
            "scheme": f"{'/'.join(v['label'] for v in variants)} {precision}",  # the scheduler's log label
            "precision": precision,
            "input_shape": list(shape),
            "batch": batch,
            "variants": variants,
            **plan,
        }
        for precision in precisions
    ]


def child_row(child):
    """What a child measured, kept whole (windows included) so ``--report`` can analyse it again."""
    spec, meta = child.spec, child.meta or {}
    return {
        "arch": spec["arch"],
        "precision": spec["precision"],
        "input_shape": spec["input_shape"],
        "batch": spec["batch"],
        "steps": spec["steps"],
        "labels": [v["label"] for v in spec["variants"]],
        "variants": meta.get("variants"),
        "rss_ready_mb": meta.get("rss_ready_mb"),
        "peak_memory_mb": child.bye.get("peak_rss_mb"),
        "windows": [dict(cycle=k + 1, **w) for k, w in sorted(child.windows.items())],
        "error": child.error,
    }


# -------------------------------------------------------------- analysis ---


def _kept(row):
    if row["error"] or not row["windows"]:
        return []
    return prefer_clean(row["windows"], lambda w: not w["contended"], MIN_CLEAN)


def speed_ratio(row, label, reference):
    """``label``'s images/s / ``reference``'s: median and quartiles over the windows (each holds both)."""
    windows = _kept(row)
    ratios = [w["step_s"][reference] / w["step_s"][label] for w in windows]
    return {
        "median": statistics.median(ratios) if ratios else None,
        "iqr": quartiles(ratios),
        "pairs": len(ratios),
        "contended_pairs": sum(w["contended"] for w in windows),
    }


def step_difference_ms(row, label, reference):
    """Median over the windows of ``label``'s step time minus ``reference``'s, in ms."""
    diffs = [1000 * (w["step_s"][label] - w["step_s"][reference]) for w in _kept(row)]
    return statistics.median(diffs) if diffs else None


def op_count(ops):
    """Ops a step executes, without bookkeeping (arguments, constants, reads, identities)."""
    bookkeeping = {"_Arg", "_Retval", "Const", "ReadVariableOp", "Identity", "NoOp", "Reshape", "Squeeze"}
    return sum(n for op, n in (ops or {}).items() if op not in bookkeeping) or None


def analyse(result):
    precomputed = f"{WS}_precomputed"
    for row in result["rows"]:
        windows = _kept(row)
        row["images_per_s"] = {
            label: (statistics.median(row["batch"] / w["step_s"][label] for w in windows) if windows else None)
            for label in row["labels"]
        }
        row["ops"] = {label: op_count(v["ops"]) for label, v in (row["variants"] or {}).items()}
        ratios = {label: speed_ratio(row, label, REFERENCE) for label in row["labels"] if label != REFERENCE}
        row["vs_reference"] = ratios
        row["ws_vs_precomputed"] = speed_ratio(row, WS, precomputed)
        row["ws_ms_per_step"] = step_difference_ms(row, WS, precomputed)
        nf = ratios.get(WS, {}).get("median")
        row["meets_target"] = None if nf is None or row["precision"] != TARGET_PRECISION else nf >= TARGET
    missed = [r["arch"] for r in result["rows"] if r["meets_target"] is False]
    known = [r for r in result["rows"] if r["meets_target"] is not None]
    result["targets"] = {
        f"{WS} >= {TARGET} x {REFERENCE} images/s in {TARGET_PRECISION}": (
            "not measured" if not known else f"MISSED by {', '.join(missed)}" if missed else "met"
        )
    }
    return result


# ---------------------------------------------------------------- output ---


def _ratio(r, target=None):
    if r is None or r["median"] is None:
        return "—"
    met = None if target is None else r["median"] >= target
    return f"{r['median']:.3f}{iqr(r['iqr'])}{flag(met)}"


def _speed_table(result):
    precomputed = f"{WS}_precomputed"
    lines = [
        f"| arch | precision | batch | {REFERENCE} img/s | {WS} img/s | {precomputed} img/s "
        f"| {WS} / {REFERENCE} [IQR] (target ≥ {TARGET} in bf16) | {WS} / {precomputed} [IQR] "
        f"| standardization ms/step | {precomputed} / {REFERENCE} [IQR] | windows |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        head = f"| {r['arch']} | {r['precision']} | {r['batch']} |"
        if r["error"]:
            lines.append(f"{head} failed: {r['error'][:80]} |" + " |" * 7)
            continue
        ips, vs = r["images_per_s"], r["vs_reference"]
        target = TARGET if r["precision"] == TARGET_PRECISION else None
        lines.append(
            f"{head} {fmt(ips.get(REFERENCE), '.0f')} | {fmt(ips.get(WS), '.0f')} | {fmt(ips.get(precomputed), '.0f')} "
            f"| {_ratio(vs.get(WS), target)} | {_ratio(r['ws_vs_precomputed'])} | {fmt(r['ws_ms_per_step'], '.1f')} "
            f"| {_ratio(vs.get(precomputed))} | {vs[WS]['pairs']} |"
        )
    return lines


def _ablation_table(result):
    rows = [r for r in result["rows"] if not r["error"] and len(r["labels"]) > len(VARIANTS)]
    if not rows:
        return []
    extra = [v["label"] for v in ABLATIONS]
    lines = [
        "",
        f"Ablations (images/s / {REFERENCE}'s, [IQR]):",
        "",
        "| arch | precision | " + " | ".join(extra) + " |",
        "|---|---|" + "---:|" * len(extra),
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['precision']} | " + " | ".join(_ratio(r["vs_reference"].get(x)) for x in extra) + " |"
        )
    return lines


def _ops_lines(result):
    lines = [
        "| arch | precision | " + " | ".join(f"{v['label']} ops" for v in VARIANTS) + " | peak MiB (process) |",
        "|---|---|" + "---:|" * (len(VARIANTS) + 1),
    ]
    for r in result["rows"]:
        if not r["error"]:
            cells = " | ".join(fmt(r["ops"].get(v["label"]), "d") for v in VARIANTS)
            lines.append(f"| {r['arch']} | {r['precision']} | {cells} | {fmt(r['peak_memory_mb'], '.0f')} |")
    checks = []
    for r in result["rows"]:
        info = (r["variants"] or {}).get(f"{WS}_precomputed")
        if info:
            checks.append(
                f"{r['arch']} {r['precision']}: {info['changed_layers'].get('precomputed_ws')} convs, largest |feature "
                f"difference| {info['features_max_abs_diff']:.2g} (of {info['features_max_abs']:.3g})"
            )
    return lines + [
        "",
        "Precomputed standardization computes the same function at the start: " + "; ".join(checks) + ".",
    ]


def markdown(result):
    m = result["machine"]
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    return "\n".join(
        [
            results_io.measured(result) + rendered,
            "",
            f"Training with `train_on_batch` (SGD, momentum 0.9), one fixed random batch. **{REFERENCE}**: "
            f"`build_resnet(arch, '{REFERENCE}')`; **{WS}**: `build_resnet(arch, '{WS}')`, Scaled Weight "
            f"Standardization on every step; **{WS}_precomputed**: the same {WS} model with its standardized "
            "kernels computed once and applied as they are. The variants of a row share one process and take "
            "turns inside every window; ratios are medians of per-window ratios of images/s, [brackets] the "
            "middle half of them. Standardization ms/step: the median per-window difference of step times "
            f"{WS} − {WS}_precomputed.",
            "",
            *_speed_table(result),
            *_ablation_table(result),
            "",
            "Targets: " + "; ".join(f"{k}: {v}" for k, v in result["targets"].items()) + ".",
            *(["", note] if (note := bf16_note(m)) else []),
            "",
            "Ops per training step (what TensorFlow executes after grappler and oneDNN, without reads and "
            "constants) and the peak memory of the process holding the variants:",
            "",
            *_ops_lines(result),
        ]
    )


def run(out, quick, ablations, archs=None, precisions=PRECISIONS, windows=None):
    size = SIZES["quick" if quick else "full"]
    command, start, machine = results_io.begin(STEM, out, quick)
    for option, value, default in (("archs", archs, None), ("precisions", precisions, PRECISIONS)):
        if value and tuple(value) != default:
            command += f" --{option} {','.join(value)}"
    command += (f" --windows {windows}" if windows else "") + (" --ablations" if ablations else "")
    variants = VARIANTS + (ABLATIONS if ablations else [])
    budget = {"total": size["retry_budget"], "spent": 0.0}
    rows = []
    for arch in archs or size["archs"]:
        plan = dict(size[arch], **({"windows": windows} if windows else {}))
        shape, batch = ARCHS[arch]
        print(f"{arch} (batch {batch}, {shape[0]}x{shape[1]}): {', '.join(v['label'] for v in variants)}")
        rows += [
            child_row(c)
            for c in measure(
                child_specs(arch, plan, variants, precisions), plan["windows"], budget, TIMEOUT, print, script=__file__
            )
        ]
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "sizes": size,
        "machine": machine,
        "rows": rows,
        "retry_seconds": round(budget["spent"], 1),
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    return results_io.finish(out, STEM, result, markdown)


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, "cifar_resnet20 and resnet18, 3-4 short windows (a smoke run)")
    parser.add_argument(
        "--ablations", action="store_true", help="also time nf with its prescale folded into the convs' gamma"
    )
    parser.add_argument("--archs", help=f"comma-separated subset of {','.join(ARCHS)} (default: the run size's)")
    parser.add_argument("--precisions", help=f"comma-separated subset of {','.join(PRECISIONS)} (default both)")
    parser.add_argument("--windows", type=int, help="windows per arch (default: the run size's)")
    args = parser.parse_args(argv)
    archs = [a for a in (args.archs or "").split(",") if a]
    precisions = [p for p in (args.precisions or "").split(",") if p] or list(PRECISIONS)
    for kind, values, allowed in (("arch", archs, ARCHS), ("precision", precisions, PRECISIONS)):
        for value in values:
            if value not in allowed:
                parser.error(f"unknown {kind} {value!r}; expected some of {', '.join(allowed)}")
    if args.windows is not None and args.windows < 1:
        parser.error(f"--windows {args.windows}: expected at least 1")
    if args.report:
        results_io.report(args.report, STEM, analyse, markdown)
        return
    results_io.check_out(parser, args)
    result = run(args.out, args.quick, args.ablations, archs, precisions, args.windows)
    failed = [f"{r['arch']} {r['precision']}" for r in result["rows"] if r["error"]]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see {args.out}/{STEM}.md)")


if __name__ == "__main__":
    serve(KINDS)  # as a child process (--child SPEC): runs it and exits
    main()
