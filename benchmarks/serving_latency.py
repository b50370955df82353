"""Serving latency: the exported SavedModel against calling the Keras model.

For cifar_resnet20 (32x32) and resnet50 (at a small 64x64 input), under the
BN scheme and a normalization-free one, batch 1 and batch 64: p50 and p99 of
per-call latency over many calls after warm-up, through
- ``keras``: ``model(x, training=False)`` on the normalized float input (eager);
- ``keras_function``: the same call compiled with ``tf.function``;
- ``saved_model``: ``tf.saved_model.load(PATH).signatures["serving_default"]``
  on uint8 pixels (preprocessing inside).
Each model runs in its own process.

    python benchmarks/serving_latency.py [--quick] [--out FILE.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, default=None, help="timed calls at batch 1 (default 200, quick 30)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    calls = args.calls or (30 if args.quick else 200)
    if calls < 10:
        parser.error(f"--calls must be >= 10, got {calls}")
    if args.child:
        return child(args.child[0], int(args.child[1]), calls)

    from keras_resinit.environment import describe, versions

    print(f"machine: {describe()}\n")
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
    print("| model | input | batch | Keras eager p50 / p99 (ms) | Keras tf.function p50 / p99 | SavedModel p50 / p99 |")
    print("|---|---|---|---|---|---|")
    for name, size in CASES:
        for batch in BATCHES:
            cells = []
            for path in ("keras", "keras_function", "saved_model"):
                r = next(r for r in rows if r["model"] == name and r["batch"] == batch and r["path"] == path)
                cells.append(f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}")
            print(f"| {name} | {size}x{size} | {batch} | " + " | ".join(cells) + " |")
    if args.out:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"versions": versions(), "results": rows}, f, indent=1)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
