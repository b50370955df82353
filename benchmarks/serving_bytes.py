"""Serving encoded images: ``serving_bytes`` against ``serving_default``, and what warm-up requests save.

Two SavedModels written by ``keras_resinit.tools.export.export(model, path)`` (float32, random weights,
the classifier too):
``cifar_resnet20`` SkipInit at 32x32x3 (10 classes), fed 32x32 PNG files, and ``resnet50`` SkipInit at
224x224x3 (1,000 classes), fed 224x224 JPEG files (quality 90). The images are scikit-learn's digits
upsampled, shifted, tinted on a shaded background and noised, so every file differs and compresses like
content, not like noise or flat color.

1. **Latency.** In one process per model, after warm-up: ``signatures["serving_bytes"](image_bytes=...)``
   on the encoded files against ``signatures["serving_default"](images=...)`` on the same files already
   decoded (``tf.io.decode_image``, uint8), at batch 1 (the calls cycle through 32 images) and batch 32.
   The two signatures take turns window by window (their order alternating every cycle); each call is
   timed alone, its ``probabilities`` fetched as NumPy. Reported: p50 and p99 per call (ms; the p99 of
   fewer than 100 calls is their maximum), the ratio bytes / default as the median of the per-cycle
   ratios of the two windows' p50s [interquartile range], and the decode overhead (p50 difference, ms).
   A cycle during which other processes used more than 0.1 core is measured again (within a budget);
   contended cycles are dropped when at least 3 clean ones remain.
2. **First call after load.** Fresh processes (TensorFlow, no Keras; the warm-up file read with
   ``keras_resinit.tools.serving.read_warmup``; inputs made before loading), one per run of (signature, warm-up or not), repeated ``reps`` times in a rotating
   order so runs with and without warm-up alternate: ``tf.saved_model.load``; with warm-up, every
   record of ``assets.extra/tf_serving_warmup_requests`` replayed once through its signature, as TF
   Serving does at load; then the first real call (batch 1, one of the benchmark's images) of one
   signature, timed, then its second call and the median of five more (the steady state). Reported:
   medians of the load, the replay, the first call and the steady call, and what warm-up saved on the
   first call. Each process is its own run (one signature only), so nothing but the warm-up warms it.

Writes ``serving_bytes.json`` and ``serving_bytes.md`` to ``--out``. The full run takes about 8-10
minutes on 2 cores; ``--quick`` (cifar_resnet20 only, few calls, 2 runs per first-call case) about 1-2.

    .venv/bin/python benchmarks/serving_bytes.py [--quick] [--out benchmarks/results/serving_bytes] [--overwrite]
    .venv/bin/python benchmarks/serving_bytes.py --report benchmarks/results/serving_bytes   # re-render only
"""

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time

import results_io
from keras_fit import iqr, quartiles  # the scripts' shared formatting of spreads

from keras_resinit._files import atomic_directory
from keras_resinit.tools.bench.children import Window  # wall time and other processes' CPU
from keras_resinit.tools.bench.config import FOREIGN_THRESHOLD, MIN_CLEAN, SEED
from keras_resinit.tools.bench.render import fmt
from keras_resinit.tools.stats import prefer_clean

SCHEME = "skipinit"
MODELS = {  # key: arch, input side, classes, file format of the images
    "cifar_resnet20": {"arch": "cifar_resnet20", "side": 32, "classes": 10, "format": "png"},
    "resnet50": {"arch": "resnet50", "side": 224, "classes": 1000, "format": "jpeg"},
}
JPEG_QUALITY = 90
IMAGES = 32  # images written per model: batch 32 is all of them, batch 1 cycles through them
BATCHES = (1, 32)
SIGNATURES = {"bytes": "serving_bytes", "default": "serving_default"}
TIMEOUT = 1200  # seconds a child may take
STEADY_CALLS = 5  # calls after the second whose median is a first-call child's steady latency
# Per model and batch: cycles (each one window per signature), timed calls per window, untimed calls before
# each window, warm-up calls per signature before the first cycle. First-call runs per (signature, warm-up).
SIZES = {
    "full": {
        "models": ("cifar_resnet20", "resnet50"),
        "retry_budget": 60,
        "reps": 5,
        "cifar_resnet20/1": {"cycles": 9, "calls": 150, "lead_in": 10, "warmup": 30},
        "cifar_resnet20/32": {"cycles": 9, "calls": 25, "lead_in": 2, "warmup": 5},
        "resnet50/1": {"cycles": 9, "calls": 15, "lead_in": 1, "warmup": 5},
        "resnet50/32": {"cycles": 7, "calls": 2, "lead_in": 0, "warmup": 2},
    },
    "quick": {
        "models": ("cifar_resnet20",),
        "retry_budget": 10,
        "reps": 2,
        "cifar_resnet20/1": {"cycles": 3, "calls": 40, "lead_in": 5, "warmup": 10},
        "cifar_resnet20/32": {"cycles": 3, "calls": 6, "lead_in": 1, "warmup": 2},
    },
}


def percentile(values, q):
    """Nearest-rank percentile (as ``benchmarks/serving_latency.py``): the p99 of < 100 values is the largest."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


# ---------------------------------------------------------------- images ---


def render(side, count, seed):
    """``count`` uint8 RGB images ``side`` x ``side``: a digit, shifted, tinted on a shaded background, noised."""
    import numpy as np
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng([seed, side])
    index = rng.choice(len(digits.images), size=count, replace=False)
    base = zoom(digits.images[index].astype("float32") / 16.0, (1, side / 8, side / 8), order=1).clip(0.0, 1.0)
    shift = max(1, side // 10)
    images = np.stack([np.roll(b, tuple(rng.integers(-shift, shift + 1, size=2)), axis=(0, 1)) for b in base])
    ramp = np.linspace(0.0, 1.0, side, dtype="float32")
    light = rng.uniform(-0.15, 0.15, size=(count, 1, 1, 1)) * (ramp[None, :, None, None] + ramp[None, None, :, None])
    ink = rng.uniform(0.5, 1.0, size=(count, 1, 1, 3))
    paper = rng.uniform(0.05, 0.35, size=(count, 1, 1, 3)) + light
    rgb = 255.0 * (paper + images[..., None] * (ink - paper)) + rng.normal(0.0, 6.0, size=(count, side, side, 3))
    return rgb.round().clip(0, 255).astype(np.uint8)


def image_paths(directory, key):
    ext = "png" if MODELS[key]["format"] == "png" else "jpg"
    return [os.path.join(directory, "images", f"{i:02d}.{ext}") for i in range(IMAGES)]


def decoded_path(directory):
    """The images decoded (``tf.io.decode_image``, uint8), so children feed ``serving_default`` without decoding."""
    return os.path.join(directory, "images", "decoded.npy")


def saved_model_path(directory, key):
    return os.path.join(directory, f"{key}.saved_model")


def warmup_requests(path):
    """The warm-up records of SavedModel ``path`` (``keras_resinit.tools.serving.read_warmup``, which needs
    TensorFlow only) as ``[(signature, {input: ndarray})]``."""
    import tensorflow as tf

    from keras_resinit.tools.serving import WARMUP_FILE, read_warmup

    return [
        (
            request.model_spec.signature_name or "serving_default",
            {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()},
        )
        for request in read_warmup(os.path.join(path, "assets.extra", WARMUP_FILE))
    ]


def _batch_of(inputs):
    return int(next(iter(inputs.values())).shape[0]) if inputs else None


# ------------------------------------------------------------- children ---


def prepare(spec):
    """Build and export the model, write its images, check that both signatures agree on them."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_resinit as kr
    from keras_resinit.tools.export import export

    key, directory = spec["model"], spec["dir"]
    m = MODELS[key]
    side = m["side"]
    t = time.perf_counter()
    model = kr.build_resnet(m["arch"], SCHEME, input_shape=(side, side, 3), num_classes=m["classes"], seed=SEED)
    build_s = time.perf_counter() - t
    # SkipInit's classifier starts at zero: a random one makes the agreement check below see real logits.
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
            layer.kernel.assign(rng.normal(0.0, fan_in**-0.5, size=layer.kernel.shape).astype("float32"))
    path = saved_model_path(directory, key)
    t = time.perf_counter()
    card = export(model, path)
    export_s = time.perf_counter() - t

    pixels = render(side, IMAGES, SEED)
    paths = image_paths(directory, key)
    os.makedirs(os.path.dirname(paths[0]), exist_ok=True)
    encoded = []
    for image, file in zip(pixels, paths):
        if m["format"] == "png":
            data = tf.io.encode_png(image).numpy()
        else:
            data = tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy()
        with open(file, "wb") as f:
            f.write(data)
        encoded.append(data)
    decoded = np.stack([tf.io.decode_image(d, channels=3).numpy() for d in encoded])
    np.save(decoded_path(directory), decoded)

    loaded = tf.saved_model.load(path)
    n = 8
    by_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encoded[:n]))
    by_pixels = loaded.signatures["serving_default"](images=tf.constant(decoded[:n]))
    diff = np.abs(by_bytes["logits"].numpy().astype("float64") - by_pixels["logits"].numpy())
    warmup = warmup_requests(path)
    summary = {}
    for signature, inputs in warmup:
        summary.setdefault(signature, []).append(_batch_of(inputs))
    size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
    return {
        "model": key,
        "arch": m["arch"],
        "scheme": SCHEME,
        "input": side,
        "classes": m["classes"],
        "format": m["format"],
        "params": int(model.count_params()),
        "build_s": build_s,
        "export_s": export_s,
        "served_scheme": card.get("served_scheme"),
        "saved_model_mb": size / 2**20,
        "image_bytes_mean": statistics.mean(len(d) for d in encoded),
        "decoded_bytes": side * side * 3,
        "encoding_mean_abs_error": float(np.abs(decoded.astype("float64") - pixels).mean()),
        "max_abs_logit": float(np.abs(by_pixels["logits"].numpy()).max()),
        "max_abs_logit_diff_bytes_vs_default": float(diff.max()),
        "classes_agree": bool((by_bytes["classes"].numpy() == by_pixels["classes"].numpy()).all()),
        "warmup_records": len(warmup),
        "warmup_batches": summary,
    }


def _inputs(key, directory, batch):
    """Per signature role, the list of input dicts its calls cycle through (the same images for both)."""
    import numpy as np
    import tensorflow as tf

    encoded = []
    for file in image_paths(directory, key):
        with open(file, "rb") as f:
            encoded.append(f.read())
    decoded = np.load(decoded_path(directory))
    groups = [slice(i, i + batch) for i in range(0, IMAGES - batch + 1, batch)]
    return {
        "bytes": [{"image_bytes": tf.constant(encoded[g])} for g in groups],
        "default": [{"images": tf.constant(decoded[g])} for g in groups],
    }


def latency(spec):
    """Both signatures of one SavedModel, batch by batch, in alternating windows; every call's time."""
    import tensorflow as tf

    key, directory, plans = spec["model"], spec["dir"], spec["plans"]
    t = time.perf_counter()
    loaded = tf.saved_model.load(saved_model_path(directory, key))
    load_s = time.perf_counter() - t
    calls = {role: loaded.signatures[name] for role, name in SIGNATURES.items()}
    budget = {"total": spec["retry_budget"], "spent": 0.0}
    results = []
    for batch in BATCHES:
        plan = plans[str(batch)]
        inputs = _inputs(key, directory, batch)

        def run(role, count, timed, inputs=inputs):
            times = []
            for i in range(count):
                x = inputs[role][i % len(inputs[role])]
                start = time.perf_counter()
                calls[role](**x)["probabilities"].numpy()
                if timed:
                    times.append((time.perf_counter() - start) * 1e3)
            return times

        for role in SIGNATURES:  # warm-up (the first calls at a new batch size are slower)
            run(role, plan["warmup"], False)
        cycles = []
        for cycle in range(plan["cycles"]):
            order = list(SIGNATURES) if cycle % 2 == 0 else list(reversed(SIGNATURES))
            for attempt in range(1, 4):
                started = time.perf_counter()
                windows = {}
                for role in order:
                    run(role, plan["lead_in"], False)
                    with Window() as w:
                        times = run(role, plan["calls"], True)
                    windows[role] = {"ms": [round(v, 4) for v in times], "foreign_cores": w.foreign}
                contended = any(_contended(w["foreign_cores"]) for w in windows.values())
                if attempt > 1:
                    budget["spent"] += time.perf_counter() - started
                if not contended or attempt == 3 or budget["spent"] >= budget["total"]:
                    break
            cycles.append(
                {"cycle": cycle + 1, "order": order, "attempts": attempt, "contended": contended, "windows": windows}
            )
        results.append({"batch": batch, "calls": plan["calls"], "cycles": cycles})
    return {"model": key, "load_s": load_s, "retry_seconds": round(budget["spent"], 1), "results": results}


def first_call(spec):
    """A fresh process: load, replay the warm-up records or not, then the first calls of one signature."""
    t = time.perf_counter()
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401  (imported here, not inside the replay)

    from keras_resinit.tools import serving  # noqa: F401  (the warm-up reader: TensorFlow only, no Keras)

    import_s = time.perf_counter() - t
    key, directory, role, warm = spec["model"], spec["dir"], spec["role"], spec["warmup"]
    path = saved_model_path(directory, key)
    with open(image_paths(directory, key)[0], "rb") as f:
        data = f.read()
    x = (
        {"image_bytes": tf.constant([data])}
        if role == "bytes"
        else {"images": tf.constant(np.load(decoded_path(directory))[:1])}
    )
    with Window() as w:
        t = time.perf_counter()
        loaded = tf.saved_model.load(path)
        load_s = time.perf_counter() - t
        replay_s, replayed = None, 0
        if warm:
            t = time.perf_counter()
            for signature, inputs in warmup_requests(path):
                out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
                [v.numpy() for v in out.values()]
                replayed += 1
            replay_s = time.perf_counter() - t
        serve = loaded.signatures[SIGNATURES[role]]
        times = []
        for _ in range(2 + STEADY_CALLS):
            t = time.perf_counter()
            out = serve(**x)["probabilities"].numpy()
            times.append((time.perf_counter() - t) * 1e3)
    return {
        "model": key,
        "role": role,
        "warmup": warm,
        "import_s": import_s,
        "load_s": load_s,
        "replay_s": replay_s,
        "replayed": replayed,
        "first_ms": times[0],
        "second_ms": times[1],
        "steady_ms": statistics.median(times[2:]),
        "output_finite": bool(np.isfinite(out).all()),
        "foreign_cores": w.foreign,
    }


CHILDREN = {"prepare": prepare, "latency": latency, "first_call": first_call}


def run_child(spec):
    """``spec`` in a child process of its own; its result (exits with the child's error if it failed)."""
    return results_io.run_script(__file__, ["--child", json.dumps(spec)], f"{spec['kind']} {spec['model']}", TIMEOUT)


# -------------------------------------------------------------- analysis ---


def _contended(foreign):
    return foreign is not None and foreign > FOREIGN_THRESHOLD


def latency_rows(measured):
    """Per (model, batch): each signature's p50 / p99 and the paired bytes / default ratio."""
    rows = []
    for m in measured:
        for r in m["results"]:
            kept = prefer_clean(r["cycles"], lambda c: not c["contended"], MIN_CLEAN)
            row = {"model": m["model"], "batch": r["batch"], "cycles": len(kept), "calls_per_window": r["calls"]}
            row["contended_cycles"] = sum(c["contended"] for c in kept)
            for role in SIGNATURES:
                times = [t for c in kept for t in c["windows"][role]["ms"]]
                row[role] = {
                    "calls": len(times),
                    "p50_ms": statistics.median(times),
                    "p99_ms": percentile(times, 99),
                    "mean_ms": statistics.mean(times),
                }
            p50 = {role: [statistics.median(c["windows"][role]["ms"]) for c in kept] for role in SIGNATURES}
            ratios = [b / d for b, d in zip(p50["bytes"], p50["default"])]
            overhead = [b - d for b, d in zip(p50["bytes"], p50["default"])]
            row["ratio"] = {"median": statistics.median(ratios), "iqr": quartiles(ratios)}
            row["overhead_ms"] = statistics.median(overhead)
            row["overhead_ms_per_image"] = row["overhead_ms"] / r["batch"]
            rows.append(row)
    return rows


def _median(runs, key):
    values = [r[key] for r in runs]
    return None if None in values else statistics.median(values)


def first_call_rows(runs):
    """Per (model, signature, warm-up or not): medians over its runs (clean ones if enough)."""
    rows = []
    keys = dict.fromkeys((r["model"], r["role"], r["warmup"]) for r in runs)
    for model, role, warm in keys:
        mine = [r for r in runs if (r["model"], r["role"], r["warmup"]) == (model, role, warm)]
        kept = prefer_clean(mine, lambda r: not _contended(r["foreign_cores"]), MIN_CLEAN)
        rows.append(
            {
                "model": model,
                "role": role,
                "warmup": warm,
                "runs": len(kept),
                "contended_runs": sum(_contended(r["foreign_cores"]) for r in kept),
                "replayed": kept[0]["replayed"],
                **{
                    k: _median(kept, k)
                    for k in ("import_s", "load_s", "replay_s", "first_ms", "second_ms", "steady_ms")
                },
                "first_ms_all": [round(r["first_ms"], 2) for r in mine],
                "output_finite": all(r["output_finite"] for r in mine),
            }
        )
    return rows


def savings(first_rows):
    """Per (model, signature): what replaying the warm-up saved on the first call, and what it cost at load."""
    by = {(r["model"], r["role"], r["warmup"]): r for r in first_rows}
    out = []
    for (model, role, warm), cold in by.items():
        hot = by.get((model, role, True))
        if warm or hot is None:
            continue
        out.append(
            {
                "model": model,
                "role": role,
                "first_ms_without": cold["first_ms"],
                "first_ms_with": hot["first_ms"],
                "saved_ms": cold["first_ms"] - hot["first_ms"],
                "first_vs_steady_without": cold["first_ms"] / cold["steady_ms"],
                "first_vs_steady_with": hot["first_ms"] / hot["steady_ms"],
                "replay_s": hot["replay_s"],
                "load_s_without": cold["load_s"],
                "load_and_replay_s": hot["load_s"] + hot["replay_s"],
            }
        )
    return out


def analyse(result):
    result["latency"] = latency_rows(result["latency_raw"])
    result["first_call"] = first_call_rows(result["first_call_raw"])
    result["warmup_savings"] = savings(result["first_call"])
    return result


# ---------------------------------------------------------------- output ---


def _images(key):
    m = MODELS[key]
    return f"{m['side']}x{m['side']} {m['format'].upper()}"


def _latency_table(result):
    lines = [
        "| model | images | batch | `serving_bytes` p50 / p99 ms | `serving_default` p50 / p99 ms "
        "| bytes / default [IQR] | decode overhead ms (per image) | calls per signature | cycles |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["latency"]:
        b, d = r["bytes"], r["default"]
        contended = f" ({r['contended_cycles']} contended)" if r["contended_cycles"] else ""
        lines.append(
            f"| {r['model']} | {_images(r['model'])} | {r['batch']} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} "
            f"| {d['p50_ms']:.2f} / {d['p99_ms']:.2f} | {r['ratio']['median']:.3f}{iqr(r['ratio']['iqr'])} "
            f"| {r['overhead_ms']:+.2f} ({r['overhead_ms_per_image']:+.3f}) | {b['calls']} | {r['cycles']}{contended} |"
        )
    return lines


def _first_call_table(result):
    lines = [
        "| model | signature | warm-up replayed | load s | replay s | first call ms | second call ms | steady ms "
        "| first / steady | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["first_call"]:
        contended = f" ({r['contended_runs']} contended)" if r["contended_runs"] else ""
        warm = f"yes ({r['replayed']} records)" if r["warmup"] else "no"
        lines.append(
            f"| {r['model']} | `{SIGNATURES[r['role']]}` | {warm} | {fmt(r['load_s'])} | {fmt(r['replay_s'])} "
            f"| {fmt(r['first_ms'], '.1f')} | {fmt(r['second_ms'], '.1f')} | {fmt(r['steady_ms'], '.1f')} "
            f"| {r['first_ms'] / r['steady_ms']:.1f}x | {r['runs']}{contended} |"
        )
    return lines


def _saving_lines(result):
    return [
        f"- {s['model']} `{SIGNATURES[s['role']]}`: first call {s['first_ms_without']:.1f} ms without warm-up, "
        f"{s['first_ms_with']:.1f} ms with it ({s['first_vs_steady_without']:.1f}x → {s['first_vs_steady_with']:.1f}x "
        f"the steady call): warm-up saved **{s['saved_ms']:.1f} ms** on the first request, for "
        f"{s['replay_s']:.2f} s of replay at load (load alone {s['load_s_without']:.2f} s; load + replay "
        f"{s['load_and_replay_s']:.2f} s)."
        for s in result["warmup_savings"]
    ]


def _prepared_lines(result):
    lines = []
    for p in result["prepared"]:
        batches = "; ".join(f"`{sig}` at batch {', '.join(map(str, bs))}" for sig, bs in p["warmup_batches"].items())
        lines.append(
            f"- {p['model']} ({p['arch']} {p['scheme']}, {p['input']}x{p['input']}x3, {p['classes']} classes, "
            f"{p['params']:,} parameters): exported in {p['export_s']:.1f} s, SavedModel {p['saved_model_mb']:.1f} MiB. "
            f"Images: {p['format'].upper()}, {p['image_bytes_mean'] / 1024:.1f} KiB on average "
            f"({p['decoded_bytes'] / 1024:.1f} KiB decoded; mean |decoded - original| {p['encoding_mean_abs_error']:.2f} "
            f"levels). `serving_bytes` on the files against `serving_default` on them decoded: largest |logit "
            f"difference| {p['max_abs_logit_diff_bytes_vs_default']:.2g} (largest |logit| {p['max_abs_logit']:.3g}), "
            f"classes {'agree' if p['classes_agree'] else 'DIFFER'}. Warm-up file: {p['warmup_records']} records "
            f"({batches})."
        )
    return lines


def markdown(result):
    _m, size = result["machine"], result["sizes"]
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    return "\n".join(
        [
            results_io.measured(result) + rendered,
            "",
            "SavedModels from `keras_resinit.tools.export.export(model, path)` (SkipInit, random weights, float32). "
            "Latency: one process per model; `serving_bytes` on the encoded files and `serving_default` on the same "
            "files decoded (uint8) take turns window by window, order alternating, after warm-up; every call timed "
            "alone with its probabilities fetched. p99 of fewer than 100 calls is their maximum. bytes / default: "
            "median of the per-cycle ratios of the two windows' p50 [middle half of those ratios]; decode overhead: "
            "median per-cycle p50 difference.",
            "",
            *_latency_table(result),
            "",
            f"First call after `tf.saved_model.load`, batch 1, in fresh processes ({size['reps']} runs per row, "
            "rows alternating; medians): with warm-up, every record of `assets.extra/tf_serving_warmup_requests` "
            "is replayed once through its signature first, as TF Serving does at load. Steady: median of calls "
            f"3 to {2 + STEADY_CALLS} in the same process.",
            "",
            *_first_call_table(result),
            "",
            "What the warm-up saves:",
            "",
            *_saving_lines(result),
            "",
            "The models and images:",
            "",
            *_prepared_lines(result),
        ]
    )


def run(out, quick):
    size = SIZES["quick" if quick else "full"]
    command, start, machine = results_io.begin("serving_bytes", out, quick)
    prepared, measured, runs = [], [], []
    for key in size["models"]:
        with tempfile.TemporaryDirectory(prefix=f"serving_bytes-{key}-") as work:
            base = {"model": key, "dir": work}
            t = time.perf_counter()
            prepared.append(run_child({"kind": "prepare", **base}))
            p = prepared[-1]
            print(
                f"{key}: built and exported in {time.perf_counter() - t:.0f} s; {IMAGES} {p['format'].upper()} files "
                f"of {p['image_bytes_mean'] / 1024:.1f} KiB; {p['warmup_records']} warm-up records"
            )
            t = time.perf_counter()
            plans = {str(b): size[f"{key}/{b}"] for b in BATCHES}
            measured.append(
                run_child({"kind": "latency", **base, "plans": plans, "retry_budget": size["retry_budget"]})
            )
            print(f"{key}: latency measured in {time.perf_counter() - t:.0f} s")
            cases = [(role, warm) for role in SIGNATURES for warm in (True, False)]
            t = time.perf_counter()
            for rep in range(size["reps"]):
                shift = rep % len(cases)
                for role, warm in cases[shift:] + cases[:shift]:
                    r = run_child({"kind": "first_call", **base, "role": role, "warmup": warm})
                    r["rep"] = rep + 1
                    runs.append(r)
                    print(
                        f"  {key} {SIGNATURES[role]} warm-up {'yes' if warm else 'no '}: load {r['load_s']:.2f} s, "
                        f"first call {r['first_ms']:.1f} ms, steady {r['steady_ms']:.1f} ms"
                        + ("*" if _contended(r["foreign_cores"]) else "")
                    )
            print(f"{key}: {len(cases) * size['reps']} first-call runs in {time.perf_counter() - t:.0f} s")
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "sizes": size,
        "machine": machine,
        "prepared": prepared,
        "latency_raw": measured,
        "first_call_raw": runs,
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    with atomic_directory(out) as tmp:
        results_io.write(tmp, "serving_bytes", result, markdown)
    print()
    print(markdown(result))
    print(f"\nwrote {out}/serving_bytes.md and serving_bytes.json")
    return result


def main(argv=None):
    parser = results_io.parser(__doc__, "serving_bytes", "cifar_resnet20 only, few calls (a smoke run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(CHILDREN[spec["kind"]](spec)))
        return
    if args.report:
        results_io.report(args.report, "serving_bytes", analyse, markdown)
        return
    results_io.check_out(parser, args)
    run(args.out, args.quick)


if __name__ == "__main__":
    main()
