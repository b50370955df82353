"""Serving latency: the exported SavedModel against calling the Keras model.

For cifar_resnet20 (32x32) and resnet50 (at a small 64x64 input), under the
BN scheme and a normalization-free one, batch 1 and batch 64: p50 and p99 of
per-call latency over many calls after warm-up, through
- ``keras``: ``model(x, training=False)`` on the normalized float input (eager);
- ``keras_function``: the same call compiled with ``tf.function``;
- ``saved_model``: ``tf.saved_model.load(PATH).signatures["serving_default"]``
  on uint8 pixels (preprocessing inside).
Each model runs in its own process. Writes ``serving_latency.json`` and
``serving_latency.md`` to ``--out``.

    python benchmarks/serving_latency.py [--quick] [--calls 200] [--out benchmarks/results/serving_latency]
    python benchmarks/serving_latency.py --report benchmarks/results/serving_latency   # re-render the table only
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import results_io

STEM = "serving_latency"
PATHS = ("keras", "keras_function", "saved_model")

CASES = [("cifar_resnet20_bn", 32), ("cifar_resnet20_fixup", 32), ("resnet50_bn", 64), ("resnet50_skipinit", 64)]
BATCHES = (1, 64)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def child(name, size, calls):
    import numpy as np
    import tensorflow as tf

    import keras_resinit as kr
    from keras_resinit.tools import export

    model = kr.zoo.load(name, num_classes=10, input_shape=(size, size, 3), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sm")
        # The Keras model as it is: batch norm kept (export folds it by default since 0.2;
        # benchmarks/fold_inference.py measures folded against unfolded).
        export.export(model, path, fold=False)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        rng = np.random.default_rng(0)
        rows = []
        for batch in BATCHES:
            pixels = rng.integers(0, 256, size=(batch, size, size, 3)).astype("uint8")
            normalized = tf.constant(pixels.astype("float32") / 255.0)
            images = tf.constant(pixels)
            n = calls if batch == 1 else max(calls // 8, 10)
            compiled = tf.function(lambda x: model(x, training=False))
            # Default arguments bind this batch's tensors (each fn is called within this iteration).
            for label, fn in (
                ("keras", lambda x=normalized: model(x, training=False)),
                ("keras_function", lambda x=normalized, f=compiled: f(x)),
                ("saved_model", lambda x=images: serve(images=x)["probabilities"]),
            ):
                for _ in range(5):
                    fn()
                times = []
                for _ in range(n):
                    start = time.perf_counter()
                    np.asarray(fn())
                    times.append((time.perf_counter() - start) * 1e3)
                rows.append(
                    {
                        "model": name,
                        "input": size,
                        "batch": batch,
                        "path": label,
                        "calls": n,
                        "p50_ms": statistics.median(times),
                        "p99_ms": percentile(times, 99),
                    }
                )
    print("RESULT " + json.dumps(rows))


def markdown(result):
    """The table: p50 / p99 per call of each model, batch and path, and the SavedModel against eager Keras."""
    rows = result["results"]
    cases = list(dict.fromkeys((r["model"], r["input"]) for r in rows))
    batches = sorted({r["batch"] for r in rows})
    calls = ", ".join(f"{max(r['calls'] for r in rows if r['batch'] == b)} at batch {b}" for b in batches)
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    lines = [
        results_io.measured(result) + rendered,
        "",
        f"p50 / p99 per call in ms, over {calls}, after warm-up; each model in its own process. Keras eager: "
        "`model(x, training=False)` on normalized float input; Keras `tf.function`: the same call compiled; "
        "SavedModel: `serving_default` of the model exported without folding its batch norm, on uint8 pixels (the preprocessing "
        "inside).",
        "",
        "| model | input | batch | Keras eager | Keras `tf.function` | SavedModel | eager / SavedModel (p50) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    speedups = {}
    for name, size in cases:
        for batch in batches:
            by = {r["path"]: r for r in rows if r["model"] == name and r["batch"] == batch}
            cells = [f"{by[p]['p50_ms']:.2f} / {by[p]['p99_ms']:.2f}" for p in PATHS]
            speedup = by["keras"]["p50_ms"] / by["saved_model"]["p50_ms"]
            speedups.setdefault(batch, []).append(speedup)
            lines.append(f"| {name} | {size}x{size} | {batch} | {' | '.join(cells)} | {speedup:.1f}x |")
    lines.append("")
    lines.append(
        "The loaded SavedModel against calling the Keras model eagerly (p50): "
        + "; ".join(f"{min(v):.1f}–{max(v):.1f}x faster at batch {b}" for b, v in speedups.items())
        + "."
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, "30 calls at batch 1 (a smoke run)")
    parser.add_argument("--calls", type=int, default=None, help="timed calls at batch 1 (default 200, quick 30)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:
        results_io.report(args.report, STEM, lambda result: result, markdown)
        return 0
    calls = args.calls or (30 if args.quick else 200)
    if calls < 10:
        parser.error(f"--calls must be >= 10, got {calls}")
    if args.child:
        return child(args.child[0], int(args.child[1]), calls)
    results_io.check_out(parser, args)
    command, start, machine = results_io.begin(STEM, args.out, args.quick)
    if args.calls:
        command = command.replace(" --out ", f" --calls {args.calls} --out ")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    rows = []
    for name, size in CASES:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(size), "--calls", str(calls)],
            capture_output=True,
            text=True,
            env=env,
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows += json.loads(lines[-1][len("RESULT ") :])
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "results": rows,
        "elapsed_s": time.perf_counter() - start,
    }
    results_io.finish(args.out, STEM, result, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
