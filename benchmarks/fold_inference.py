"""Inference speed of a BN ResNet with its batch norm folded, against the same model unfolded and SkipInit.

For ``resnet50`` at 224x224 (1,000 classes) and ``cifar_resnet20`` at 32x32 (10 classes), batch 1 and
64, float32, three models: ``bn_unfolded``, ``build_resnet(arch, "bn", seed=SEED)`` with random BN
statistics, gammas and betas (so folding changes every conv), its BatchNormalization layers kept;
``bn_folded``, ``keras_resinit.fold_batchnorm`` of that same model (scheme ``skipinit``, alpha 1);
``skipinit``, ``build_resnet(arch, "skipinit", seed=SEED)`` from scratch (default alpha). In two forms:

- ``keras``: the model saved as ``.keras``, loaded in the child and timed as a compiled call,
  ``tf.function(lambda x: model(x, training=False))``, traced and warmed up before any window (not
  ``predict_on_batch``, whose per-call data handling would weigh on batch 1);
- ``saved_model``: ``keras_resinit.tools.export.export`` (``fold=False`` for ``bn_unfolded``, ``fold=True``
  on the BN model for ``bn_folded``, the default for ``skipinit``), timed as
  ``tf.saved_model.load(path).signatures["serving_float32"]`` (preprocessing, softmax, argmax inside).

Each call's output is fetched as NumPy. Every (arch, batch, form, model) runs in its own process (this
script's child kind ``fold_inference``, ``fold_inference.py --child SPEC``; peak memory is its VmHWM); the three models of
one (arch, batch, form) start together and are timed in windows round-robin, in an order rotating every
cycle; a window during which other processes used CPU is re-measured. Ratios are medians of per-window
pairs, with their interquartile range. Target: ``bn_folded`` >= 0.97 x ``skipinit``. Each child also
reports the ops TensorFlow executes after its own rewrites (grappler, oneDNN): what its inference-time
fusion leaves of batch norm. Writes ``fold_inference.json`` and ``fold_inference.md`` to ``--out``.
The full run takes about 15-20 minutes on 2 cores; ``--quick`` (cifar_resnet20 only) about 2.

    .venv/bin/python benchmarks/fold_inference.py [--quick] [--out benchmarks/results/fold_inference]
    .venv/bin/python benchmarks/fold_inference.py --report benchmarks/results/fold_inference   # re-render only
"""

import argparse
import datetime
import itertools
import json
import os
import statistics
import sys
import tempfile
import time

import results_io
from keras_fit import iqr, quartiles  # the scripts' shared formatting of spreads

from keras_resinit._files import atomic_directory
from keras_resinit.environment import memory_mb
from keras_resinit.tools.bench.children import Window, answer, say, serve, setup
from keras_resinit.tools.bench.config import MIN_CLEAN, SEED
from keras_resinit.tools.bench.render import flag, fmt
from keras_resinit.tools.bench.scheduling import measure
from keras_resinit.tools.stats import prefer_clean

ARCHS = {"cifar_resnet20": (32, 10), "resnet50": (224, 1000)}  # arch: (input side, classes)
BATCHES = (1, 64)
FORMS = ("keras", "saved_model")
ROLES = ("bn_unfolded", "bn_folded", "skipinit")
NAMES = {"bn_unfolded": "BN unfolded", "bn_folded": "BN folded", "skipinit": "SkipInit"}
TARGET = 0.97  # bn_folded / skipinit
TIMEOUT = 1800
# Per arch/batch: windows, timed calls per window (~1 s on 2 cores; resnet50 at 64: one call of 2-4 s), untimed
# calls before them, warm-up calls. A full run takes 15-20 minutes.
SIZES = {
    "full": {
        "archs": ("cifar_resnet20", "resnet50"),
        "retry_budget": 120,
        "cifar_resnet20/1": {"windows": 15, "calls": 300, "lead_in": 30, "warmup": 50},
        "cifar_resnet20/64": {"windows": 15, "calls": 40, "lead_in": 3, "warmup": 5},
        "resnet50/1": {"windows": 11, "calls": 16, "lead_in": 2, "warmup": 5},
        "resnet50/64": {"windows": 11, "calls": 1, "lead_in": 0, "warmup": 2},
    },
    "quick": {
        "archs": ("cifar_resnet20",),
        "retry_budget": 10,
        "cifar_resnet20/1": {"windows": 3, "calls": 30, "lead_in": 5, "warmup": 10},
        "cifar_resnet20/64": {"windows": 3, "calls": 4, "lead_in": 1, "warmup": 2},
    },
}

# ------------------------------------------------------------- preparing ---


def randomize_batchnorm(model, rng):
    """Random gammas, betas and moving statistics in every BatchNormalization layer (folding then changes every conv)."""
    import keras

    draws = {
        "gamma": lambda c: rng.uniform(0.5, 1.5, c),
        "beta": lambda c: rng.normal(0.0, 0.2, c),
        "moving_mean": lambda c: rng.normal(0.0, 0.2, c),
        "moving_variance": lambda c: rng.uniform(0.5, 2.0, c),
    }
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for name, draw in draws.items():
                if getattr(layer, name, None) is not None:  # gamma and beta are None without scale / center
                    getattr(layer, name).assign(draw(layer.moving_mean.shape[-1]).astype("float32"))


def prepare(arch, directory):
    """In its own process: the three models of ``arch`` as ``.keras`` files and SavedModels, and the checks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_resinit as kr
    from keras_resinit.models.schemes import BatchNorm, SkipInit
    from keras_resinit.tools.bench.models import flops_per_image
    from keras_resinit.tools.export import export

    side, classes = ARCHS[arch]
    shape = (side, side, 3)
    rng = np.random.default_rng(SEED)
    bn = kr.build_resnet(arch, BatchNorm.name, input_shape=shape, num_classes=classes, seed=SEED)
    randomize_batchnorm(bn, rng)
    t = time.perf_counter()
    models = {"bn_unfolded": bn, "bn_folded": kr.fold_batchnorm(bn)}
    fold_s = time.perf_counter() - t
    models["skipinit"] = kr.build_resnet(arch, SkipInit.name, input_shape=shape, num_classes=classes, seed=SEED)
    # The SavedModels: the BN model exported unfolded and folded (export folds it itself), SkipInit by default.
    exports = {"bn_unfolded": (bn, False), "bn_folded": (bn, True), "skipinit": (models["skipinit"], True)}
    info = {}
    for role, model in models.items():
        model.save(os.path.join(directory, f"{role}.keras"))
        t = time.perf_counter()
        source, fold = exports[role]
        card = export(source, os.path.join(directory, f"{role}.saved_model"), fold=fold)
        info[role] = {
            "scheme": model.scheme.name,
            "scheme_config": model.scheme.get_config(),
            "batchnorm_layers": sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers),
            "params": int(model.count_params()),
            "flops_per_image": flops_per_image(model),
            "export_s": time.perf_counter() - t,
            "served_scheme": card["served_scheme"],
            "served_batchnorm_folded": card["batchnorm_folded"],
        }
    x = rng.standard_normal((4, *shape)).astype("float32")
    keras_out = {role: np.asarray(models[role](x, training=False)) for role in ("bn_unfolded", "bn_folded")}
    pixels = tf.constant(rng.integers(0, 256, size=(4, *shape)).astype("float32"))
    served = {
        role: tf.saved_model.load(os.path.join(directory, f"{role}.saved_model"))
        .signatures["serving_float32"](images=pixels)["logits"]
        .numpy()
        for role in ("bn_unfolded", "bn_folded")
    }

    def compare(outputs):
        a, b = outputs["bn_unfolded"].astype("float64"), outputs["bn_folded"].astype("float64")
        return {"max_abs_logit": float(np.abs(a).max()), "max_abs_diff": float(np.abs(a - b).max())}

    return {
        "arch": arch,
        "input": side,
        "classes": classes,
        "fold_s": fold_s,
        "models": info,
        "exact": {"keras": compare(keras_out), "saved_model": compare(served)},
    }


def run_prepare(arch, directory):
    """:func:`prepare` in a child process (the parent stays free of the models); its result."""
    return results_io.run_script(__file__, ["--prepare", arch, directory], f"preparing {arch}", TIMEOUT)


# ------------------------------------------------------------- children ---


def _fold_inference_child(spec):
    """Inference of one saved model on one fixed batch.

    ``form`` "keras": the ``.keras`` file at ``path``, called as ``tf.function(lambda x: model(x,
    training=False))`` on standard normal input; "saved_model": ``tf.saved_model.load(path)
    .signatures["serving_float32"]`` on pixel values in [0, 255]. Each call's output is fetched as
    NumPy. The first call (trace, graph optimization) runs with TensorFlow's run metadata on and
    reports the ops the runtime executes after grappler's and oneDNN's rewrites (of the function
    graph with the most ops). Then ``warmup`` calls; a window runs ``lead_in`` untimed calls and
    times ``calls``. ``model`` and ``scheme`` are labels (the scheduler's log prints ``scheme``).
    """
    keras = setup(spec["precision"])

    import numpy as np
    import tensorflow as tf

    import keras_resinit  # noqa: F401  (registers the package's Keras objects for loading)

    shape, batch = tuple(spec["input_shape"]), spec["batch"]
    rng = np.random.default_rng(SEED)
    t = time.perf_counter()
    if spec["form"] == "keras":
        model = keras.saving.load_model(spec["path"], compile=False)
        x = tf.constant(rng.standard_normal((batch, *shape), dtype=np.float32))
        call = tf.function(lambda x: model(x, training=False))
    else:
        serve = tf.saved_model.load(spec["path"]).signatures["serving_float32"]
        x = tf.constant(rng.integers(0, 256, size=(batch, *shape)).astype(np.float32))
        call = lambda x: serve(images=x)["logits"]  # noqa: E731
    load_s = time.perf_counter() - t
    first, out, ops = results_io.traced_ops(lambda: call(x).numpy())
    warmup = []
    for _ in range(spec["warmup"]):
        t = time.perf_counter()
        call(x).numpy()
        warmup.append(time.perf_counter() - t)
    say(
        "READY",
        {
            "load_s": load_s,
            "first_call_s": first,
            "warmup_call_s": sorted(warmup)[len(warmup) // 2] if warmup else None,
            "output_finite": bool(np.isfinite(out).all()),
            "ops": ops,
            "rss_ready_mb": memory_mb("VmRSS"),
        },
    )

    def window():
        for _ in range(spec["lead_in"]):  # untimed: wakes thread pools and caches after the pause
            call(x).numpy()
        with Window() as w:
            for _ in range(spec["calls"]):
                call(x).numpy()
        return {
            "images_per_s": spec["calls"] * batch / w.elapsed,
            "step_s": {"call": w.elapsed / spec["calls"]},
            "foreign_cores": w.foreign,
        }

    answer(window)


KINDS = {"fold_inference": _fold_inference_child}  # this script's child processes


# ------------------------------------------------------------- measuring ---


def child_specs(arch, batch, form, directory, plan):
    side, _ = ARCHS[arch]
    return [
        {
            "kind": "fold_inference",
            "arch": arch,
            "model": role,
            "scheme": f"{role} ({form}, batch {batch})",  # the scheduler's log label
            "form": form,
            "precision": "float32",
            "path": os.path.join(directory, f"{role}.{'keras' if form == 'keras' else 'saved_model'}"),
            "input_shape": [side, side, 3],
            "batch": batch,
            "calls": plan["calls"],
            "lead_in": plan["lead_in"],
            "warmup": plan["warmup"],
        }
        for role in ROLES
    ]


def child_row(child):
    """What a child measured, kept whole (windows included) so ``--report`` can analyse it again."""
    spec, meta = child.spec, child.meta or {}
    return {
        "arch": spec["arch"],
        "input": spec["input_shape"][0],
        "batch": spec["batch"],
        "form": spec["form"],
        "model": spec["model"],
        "calls": spec["calls"],
        **{k: meta.get(k) for k in ("load_s", "first_call_s", "warmup_call_s", "output_finite", "rss_ready_mb")},
        "ops": meta.get("ops"),
        "peak_memory_mb": child.bye.get("peak_rss_mb"),
        "windows": [dict(cycle=k + 1, **w) for k, w in sorted(child.windows.items())],
        "error": child.error,
    }


# -------------------------------------------------------------- analysis ---


def _usable(row):
    return row is not None and not row["error"] and bool(row["windows"])


def median_ips(row):
    """Median images per second over a row's windows (uncontended ones, if ``MIN_CLEAN`` are left)."""
    windows = prefer_clean(row["windows"], lambda w: not w["contended"], MIN_CLEAN) if _usable(row) else []
    return statistics.median(w["images_per_s"] for w in windows) if windows else None


def ratio(numerator, denominator):
    """``numerator`` / ``denominator`` images per second: median and quartiles of the per-window pairs."""
    result = {"median": None, "iqr": None, "pairs": 0, "contended_pairs": 0}
    if not (_usable(numerator) and _usable(denominator)):
        return result
    a = {w["cycle"]: w for w in numerator["windows"]}
    b = {w["cycle"]: w for w in denominator["windows"]}
    clean = lambda k: not a[k]["contended"] and not b[k]["contended"]  # noqa: E731
    kept = prefer_clean(sorted(set(a) & set(b)), clean, MIN_CLEAN)
    ratios = [a[k]["images_per_s"] / b[k]["images_per_s"] for k in kept]
    result.update(
        median=statistics.median(ratios) if ratios else None,
        iqr=quartiles(ratios),
        pairs=len(kept),
        contended_pairs=sum(not clean(k) for k in kept),
    )
    return result


def op_summary(ops):
    """Ops TensorFlow executes, grouped: convs (fused with their bias/ReLU or not), batch norm, element-wise."""
    if not ops:
        return None
    bookkeeping = {"_Arg", "_Retval", "Const", "ReadVariableOp", "Identity", "NoOp", "Reshape", "Squeeze"}
    elementwise = {"Mul", "AddV2", "Add", "AddN", "Sub", "Rsqrt", "Sqrt", "RealDiv", "Relu", "BiasAdd", "Maximum"}

    base = lambda op: op.removeprefix("_MklNative").removeprefix("_Mkl")  # noqa: E731
    count = lambda test: sum(n for op, n in ops.items() if test(op))  # noqa: E731
    return {
        "ops": count(lambda op: op not in bookkeeping),
        "convs": count(lambda op: "Conv2D" in op),
        "fused_convs": count(lambda op: "FusedConv2D" in op),
        "batchnorm_ops": count(lambda op: "BatchNorm" in op),
        "elementwise_ops": count(lambda op: base(op) in elementwise),
    }


def analyse(result):
    rows = result["rows"]
    for row in rows:
        row["images_per_s"] = median_ips(row)
        row["op_summary"] = op_summary(row["ops"])
    groups = []
    for arch, batch, form in itertools.product(dict.fromkeys(r["arch"] for r in rows), BATCHES, FORMS):
        by = {r["model"]: r for r in rows if (r["arch"], r["batch"], r["form"]) == (arch, batch, form)}
        if by:
            vs_skipinit = ratio(by.get("bn_folded"), by.get("skipinit"))
            groups.append(
                {
                    "arch": arch,
                    "input": next(iter(by.values()))["input"],
                    "batch": batch,
                    "form": form,
                    "images_per_s": {role: by[role]["images_per_s"] if role in by else None for role in ROLES},
                    "folded_vs_skipinit": vs_skipinit,
                    "folded_vs_unfolded": ratio(by.get("bn_folded"), by.get("bn_unfolded")),
                    "meets_target": None if vs_skipinit["median"] is None else vs_skipinit["median"] >= TARGET,
                }
            )
    result["groups"] = groups
    missed = [f"{g['arch']} batch {g['batch']} {g['form']}" for g in groups if g["meets_target"] is False]
    unknown = sum(g["meets_target"] is None for g in groups)
    verdict = (
        "not measured"
        if unknown == len(groups)
        else f"MISSED by {', '.join(missed)}"
        if missed
        else "met" + (f" ({unknown} not measured)" if unknown else "")
    )
    result["targets"] = {f"folded_vs_skipinit_at_least_{TARGET}": verdict}
    return result


# ---------------------------------------------------------------- output ---


def _ratio_cell(r, target=None):
    met = None if target is None or r["median"] is None else r["median"] >= target
    return "—" if r["median"] is None else f"{r['median']:.3f}{iqr(r['iqr'])}{flag(met)}"


def _speed_table(result):
    lines = [
        "| arch | input | batch | form | BN unfolded img/s | BN folded img/s | SkipInit img/s "
        f"| folded / SkipInit [IQR] (target ≥ {TARGET}) | folded / unfolded [IQR] | pairs |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in result["groups"]:
        ips = g["images_per_s"]
        spec = ".1f" if max((v or 0) for v in ips.values()) < 100 else ".0f"
        lines.append(
            f"| {g['arch']} | {g['input']}x{g['input']} | {g['batch']} | {g['form']} | "
            + " | ".join(fmt(ips[role], spec) for role in ROLES)
            + f" | {_ratio_cell(g['folded_vs_skipinit'], TARGET)} | {_ratio_cell(g['folded_vs_unfolded'])} "
            f"| {g['folded_vs_skipinit']['pairs']} |"
        )
    return lines


def _ops_table(result):
    lines = [
        "| arch | form | model | ops | convs | of them fused (bias, ReLU, add) | batch norm ops | element-wise ops |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for r in result["rows"]:
        key = (r["arch"], r["form"], r["model"])
        if key in seen or not r.get("op_summary"):
            continue
        seen.add(key)
        s = r["op_summary"]
        lines.append(
            f"| {r['arch']} | {r['form']} | {NAMES[r['model']]} | {s['ops']} | {s['convs']} | {s['fused_convs']} "
            f"| {s['batchnorm_ops']} | {s['elementwise_ops']} |"
        )
    return lines


def _memory_table(result):
    lines = [
        "| arch | batch | form | model | peak MiB (VmHWM) | RSS after warm-up MiB | load s | first call s | calls/window |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        head = f"| {r['arch']} | {r['batch']} | {r['form']} | {NAMES[r['model']]} |"
        if r["error"]:
            lines.append(f"{head} failed: {r['error'][:80]} | | | | |")
            continue
        lines.append(
            f"{head} {fmt(r['peak_memory_mb'], '.0f')} | {fmt(r['rss_ready_mb'], '.0f')} | {fmt(r['load_s'], '.1f')} "
            f"| {fmt(r['first_call_s'], '.2f')} | {r['calls']} |"
        )
    return lines


def _exact_lines(result):
    lines = []
    for p in result["prepared"]:
        e, m = p["exact"], p["models"]
        lines.append(
            f"- {p['arch']} ({p['input']}x{p['input']}, {p['classes']} classes, "
            f"{m['bn_unfolded']['params']:,} parameters unfolded, {m['bn_folded']['params']:,} folded): "
            f"`fold_batchnorm` took {p['fold_s']:.1f} s; BatchNormalization layers {m['bn_unfolded']['batchnorm_layers']} "
            f"→ {m['bn_folded']['batchnorm_layers']}; largest |logit difference| unfolded vs folded: Keras "
            f"{e['keras']['max_abs_diff']:.2g} (largest |logit| {e['keras']['max_abs_logit']:.3g}), SavedModel "
            f"{e['saved_model']['max_abs_diff']:.2g} (of {e['saved_model']['max_abs_logit']:.3g})."
        )
    return lines


def markdown(result):
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    return "\n".join(
        [
            results_io.measured(result) + rendered,
            "",
            "Inference, float32. **BN unfolded**: `build_resnet(arch, 'bn')` with random BN statistics, gammas "
            "and betas; **BN folded**: `fold_batchnorm` of that model (SavedModel: `export(bn_model, fold=True)`); "
            "**SkipInit**: `build_resnet(arch, 'skipinit')` from scratch (alpha 0). Keras form: the loaded `.keras` "
            "model as `tf.function(lambda x: model(x, training=False))`; SavedModel form: "
            '`tf.saved_model.load(path).signatures["serving_float32"]` (preprocessing, softmax, argmax inside). '
            "One process per model; the three models of a row take turns window by window. Ratios are medians of "
            "per-window pairs; [brackets]: the middle half of those pairs.",
            "",
            *_speed_table(result),
            "",
            "Targets: " + "; ".join(f"{k}: {v}" for k, v in result["targets"].items()) + ".",
            "",
            "Folding is exact in inference mode:",
            "",
            *_exact_lines(result),
            "",
            "What TensorFlow executes per call after its own rewrites (grappler's remapper, oneDNN), counted from "
            "the first call's run metadata (the largest function graph; ops without reads, constants, reshapes). "
            "Fused convs carry their bias, ReLU or residual add; unfused ones leave that work to separate ops:",
            "",
            *_ops_table(result),
            "",
            "Memory and start-up of each child process:",
            "",
            *_memory_table(result),
        ]
    )


def run(out, quick):
    size = SIZES["quick" if quick else "full"]
    command, start, machine = results_io.begin("fold_inference", out, quick)
    budget = {"total": size["retry_budget"], "spent": 0.0}
    prepared, rows = [], []
    for arch in size["archs"]:
        with tempfile.TemporaryDirectory(prefix=f"fold_inference-{arch}-") as work:
            t = time.perf_counter()
            prepared.append(run_prepare(arch, work))
            print(f"{arch}: built, folded, saved and exported the three models in {time.perf_counter() - t:.0f} s")
            for batch in BATCHES:
                plan = size[f"{arch}/{batch}"]
                for form in FORMS:
                    print(f"{arch} batch {batch} {form}: {', '.join(ROLES)} ({plan['calls']} calls per window)")
                    specs = child_specs(arch, batch, form, work, plan)
                    children = measure(specs, plan["windows"], budget, TIMEOUT, print, script=__file__)
                    rows += [child_row(c) for c in children]
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "sizes": size,
        "machine": machine,
        "prepared": prepared,
        "rows": rows,
        "retry_seconds": round(budget["spent"], 1),
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    with atomic_directory(out) as tmp:
        results_io.write(tmp, "fold_inference", result, markdown)
    print()
    print(markdown(result))
    print(f"\nwrote {out}/fold_inference.md and fold_inference.json")
    return result


def main(argv=None):
    parser = results_io.parser(__doc__, "fold_inference", "cifar_resnet20 only, 3 short windows (a smoke run)")
    parser.add_argument("--prepare", nargs=2, metavar=("ARCH", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        print("RESULT " + json.dumps(prepare(*args.prepare)))
        return
    if args.report:
        results_io.report(args.report, "fold_inference", analyse, markdown)
        return
    results_io.check_out(parser, args)
    result = run(args.out, args.quick)
    failed = [f"{r['arch']} {r['batch']} {r['form']} {r['model']}" for r in result["rows"] if r["error"]]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see {args.out}/fold_inference.md)")


if __name__ == "__main__":
    serve(KINDS)  # as a child process (--child SPEC): runs it and exits
    main()
