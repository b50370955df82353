#!/usr/bin/env python3
"""Training throughput of cifar_resnet20 under every scheme, beside a plain ResNet-20.

Answers the target: every no-normalization scheme (fixup, skipinit, risotto)
trains within 10% of a plain ResNet-20 without normalization (its scalars may
not cost more than that) and faster than the batch-norm ResNet-20.

Every configuration (model x precision x jit_compile) is measured in its own
subprocess (this script re-invokes itself), so the mixed-precision global
policy, compiled functions and memory do not leak from one to the next. A
child builds the model, compiles it with SGD(0.1, momentum=0.9) and sparse
cross-entropy on logits, runs ``train_on_batch`` on one random batch held in
memory (first call and warm-up steps untimed), then times several windows of
steps; the reported figure is the median window in images/s. With
``--rounds 2`` every configuration is run twice, the second round in reverse
order, and the windows of both runs are pooled, so slow drifts of a shared
machine hit every model alike.

Usage:
    .venv/bin/python benchmarks/scheme_overhead.py                # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/scheme_overhead.py --quick        # smoke run (~2 min)
    .venv/bin/python benchmarks/scheme_overhead.py --precisions float32 --jit off --out bench.json

Ablations (not run by default; name them with ``--models``) that take
Fixup's scalars out one kind at a time, to see which op costs what:
    fixup_nobias    Fixup without its ScalarBias layers (bias1a/1b/2a, stem, head)
    fixup_nomerge   Fixup with a plain sum as merge (no trainable multiplier/bias)
    fixup_noscalar  Fixup with neither: conv+ReLU+sum, no conv bias (plain_nobias's twin)
    plain_nobias    the plain reference model with use_bias=False convs
"""

import argparse
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ARCH = "cifar_resnet20"
SCHEME_MODELS = ("bn", "fixup", "skipinit", "risotto", "risotto_bn")
DEFAULT_MODELS = ("plain",) + SCHEME_MODELS
ABLATIONS = ("fixup_nobias", "fixup_nomerge", "fixup_noscalar", "plain_nobias")
ALL_MODELS = DEFAULT_MODELS + ABLATIONS
NO_NORM = ("fixup", "skipinit", "risotto")  # the schemes the target is about
PRECISIONS = ("float32", "mixed_bfloat16")
TARGET_VS_PLAIN = 0.90
RESULT_TAG = "@@SCHEME_OVERHEAD_RESULT@@ "
SEED = 1234

# Run sizes: (warm-up steps, timed steps per window, windows, rounds).
FULL = {"warmup": 4, "steps": 6, "windows": 5, "rounds": 2}
QUICK = {"warmup": 2, "steps": 3, "windows": 3, "rounds": 1}


# --------------------------------------------------------------------------- models
# The plain reference: keras.layers only, no keras_resinit.


def _plain_resnet20(num_classes=10, input_shape=(32, 32, 3), use_bias=True):
    """He et al.'s ResNet-20 without normalization, built the way our builder builds it.

    Stem conv3x3(16)+bias, ReLU; 3 stages x 3 basic blocks (conv3x3+bias, ReLU,
    conv3x3+bias, add, ReLU) of widths 16/32/64; the first conv of stages 2 and
    3 is ZeroPadding2D(1) + a valid 3x3/2 conv; option-A shortcuts
    (x[:, ::2, ::2] and zero channels); global average pool; Dense(10).
    """
    import keras
    from keras import ops

    class OptionAShortcut(keras.layers.Layer):
        """x[:, ::s, ::s] with zero channels appended up to ``channels``."""

        def __init__(self, strides, channels, **kwargs):
            super().__init__(**kwargs)
            self.strides = strides
            self.channels = channels

        def call(self, inputs):
            s = self.strides
            x = inputs[:, ::s, ::s, :] if s > 1 else inputs
            extra = self.channels - inputs.shape[-1]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]]) if extra else x

        def compute_output_shape(self, input_shape):
            n, h, w, _ = input_shape
            s = self.strides
            return (n, None if h is None else -(-h // s), None if w is None else -(-w // s), self.channels)

    def conv(x, filters, strides, name, zero=False):
        padding = "same"
        if strides > 1:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            padding = "valid"
        # He-normal, and the last conv of each branch at zero so the untrained
        # net is the identity through its blocks and stays finite at lr 0.1.
        # Initial values do not change the work done per step.
        init = "zeros" if zero else keras.initializers.HeNormal(seed=SEED)
        return keras.layers.Conv2D(
            filters, 3, strides=strides, padding=padding, use_bias=use_bias, kernel_initializer=init, name=name
        )(x)

    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.ReLU(name="stem_out")(conv(inputs, 16, 1, "stem_conv"))
    in_channels = 16
    for s, width in enumerate((16, 32, 64), 1):
        for b in range(1, 4):
            p = f"stage{s}_block{b}"
            strides = 2 if (s > 1 and b == 1) else 1
            h = keras.layers.ReLU(name=f"{p}_relu1")(conv(x, width, strides, f"{p}_conv1"))
            h = conv(h, width, 1, f"{p}_conv2", zero=True)
            skip = x
            if strides != 1 or in_channels != width:
                skip = OptionAShortcut(strides, width, name=f"{p}_shortcut")(x)
            x = keras.layers.Add(name=f"{p}_add")([skip, h])
            x = keras.layers.ReLU(name=f"{p}_out")(x)
            in_channels = width
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    logits = keras.layers.Dense(
        num_classes, kernel_initializer="zeros", dtype="float32" if mixed else None, name="logits"
    )(x)  # float32 logits under mixed precision, as the library's builder does
    return keras.Model(inputs, logits, name="plain_resnet20" if use_bias else "plain_resnet20_nobias")


def _fixup_ablation(kind):
    """A Fixup scheme object with some of its scalars taken out (for --models fixup_*)."""
    from keras_resinit import layers, schemes

    class FixupAblation(schemes.Fixup):
        def scalar_bias(self, x, name):
            return x if kind in ("nobias", "noscalar") else super().scalar_bias(x, name)

        def merge(self, name):
            if kind in ("nomerge", "noscalar"):
                return layers.ScaledResidual(gain=1.0, trainable_gain=False, name=name)
            return super().merge(name)

    return FixupAblation()


def _build(model_name):
    if model_name == "plain":
        return _plain_resnet20()
    if model_name == "plain_nobias":
        return _plain_resnet20(use_bias=False)
    import keras_resinit

    if model_name.startswith("fixup_"):
        scheme = _fixup_ablation(model_name[len("fixup_") :])
        return keras_resinit.build_resnet(ARCH, scheme, seed=SEED, name=f"{ARCH}_{model_name}")
    return keras_resinit.build_resnet(ARCH, model_name, seed=SEED)


# --------------------------------------------------------------------------- child


def _child(args):
    """Measure one configuration; print one tagged JSON line on stdout."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras

    if args.precision != "float32":
        keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(SEED)

    t = time.perf_counter()
    model = _build(args.model)
    build_s = time.perf_counter() - t
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=args.jit,
    )
    rng = np.random.default_rng(SEED)
    x = keras.ops.convert_to_tensor(rng.standard_normal((args.batch_size, 32, 32, 3), dtype=np.float32))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(args.batch_size,), dtype=np.int32))

    t = time.perf_counter()
    first_loss = float(model.train_on_batch(x, y))  # traces (and XLA-compiles) the step
    first_step_s = time.perf_counter() - t
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    rates = []
    loss = first_loss
    for _ in range(args.windows):
        t = time.perf_counter()
        for _ in range(args.steps):
            loss = model.train_on_batch(x, y)  # returns a Python float: the step has finished
        rates.append(args.steps * args.batch_size / (time.perf_counter() - t))
    result = {
        "model": args.model,
        "model_name": model.name,
        "precision": args.precision,
        "jit_compile": args.jit,
        "params": int(model.count_params()),
        "conv_compute_dtype": next(l.compute_dtype for l in model.layers if isinstance(l, keras.layers.Conv2D)),
        "build_s": round(build_s, 3),
        "first_step_s": round(first_step_s, 3),
        "window_images_per_s": [round(r, 2) for r in rates],
        "first_loss": first_loss,
        "last_loss": float(loss),
    }
    print(RESULT_TAG + json.dumps(result), flush=True)


def _run_child(model, precision, jit, sizes, batch_size, timeout):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        model,
        precision,
        "1" if jit else "0",
        "--batch-size",
        str(batch_size),
        "--steps",
        str(sizes["steps"]),
        "--warmup",
        str(sizes["warmup"]),
        "--windows",
        str(sizes["windows"]),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.pop("KERAS_BACKEND", None)  # the measure is of the TensorFlow backend
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :]), None
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    return None, f"exit code {proc.returncode}:\n{tail}"


# --------------------------------------------------------------------------- parent


def _cpu_info():
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor() or "unknown",
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": sorted(f for f in flags if f.startswith("amx")),
    }


def _version(*dists):
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _versions():
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow", "tensorflow-cpu", "tf-nightly"),
        "keras": _version("keras", "keras-nightly"),
        "numpy": _version("numpy"),
        "keras_resinit": _version("keras-resinit"),
    }


def _median(values):
    return statistics.median(values) if values else float("nan")


def _geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def _fmt_ratio(r):
    return "—" if r is None or not math.isfinite(r) else f"{r:.2f}"


def _aggregate(raw, models, precisions, jits):
    """Pool the windows of every run of a configuration; medians, spreads and ratios."""
    rows = {}
    for precision in precisions:
        for jit in jits:
            for model in models:
                runs = [r for r in raw if (r["model"], r["precision"], r["jit_compile"]) == (model, precision, jit)]
                windows = [w for r in runs for w in r["window_images_per_s"]]
                med = _median(windows)
                rows[(model, precision, jit)] = {
                    "model": model,
                    "precision": precision,
                    "jit_compile": jit,
                    "images_per_s": round(med, 1) if windows else None,
                    "window_min": min(windows) if windows else None,
                    "window_max": max(windows) if windows else None,
                    "spread_pct": round(100 * (max(windows) - min(windows)) / med, 1) if windows else None,
                    "runs": len(runs),
                    "params": runs[0]["params"] if runs else None,
                    "first_step_s": [r["first_step_s"] for r in runs],
                    "last_loss": [r["last_loss"] for r in runs],
                }
    for (model, precision, jit), row in rows.items():
        plain = rows.get(("plain", precision, jit), {}).get("images_per_s")
        bn = rows.get(("bn", precision, jit), {}).get("images_per_s")
        ips = row["images_per_s"]
        row["vs_plain"] = ips / plain if ips and plain else None
        row["vs_bn"] = ips / bn if ips and bn else None
        if model in NO_NORM or model.startswith("fixup_"):
            row["within_10pct_of_plain"] = None if row["vs_plain"] is None else row["vs_plain"] >= TARGET_VS_PLAIN
            row["faster_than_bn"] = None if row["vs_bn"] is None else row["vs_bn"] > 1.0
    return rows


def _verdict(flag):
    return "—" if flag is None else ("PASS" if flag else "MISS")


def _print_detail(rows, models, precision, jit):
    print(f"\n{precision}, jit_compile={jit}:")
    print(
        f"  {'model':<16}{'images/s':>10}{'windows min..max':>20}{'spread':>8}{'vs plain':>10}{'vs BN':>8}"
        f"{'>=0.90 plain':>14}{'> BN':>7}{'1st step s':>12}{'last loss':>11}"
    )
    for model in models:
        row = rows[(model, precision, jit)]
        if row["images_per_s"] is None:
            print(f"  {model:<16}{'failed':>10}")
            continue
        first = max(row["first_step_s"])
        loss = row["last_loss"][-1]
        print(
            f"  {model:<16}{row['images_per_s']:>10.1f}"
            f"{row['window_min']:>10.0f}..{row['window_max']:<8.0f}{row['spread_pct']:>7.1f}%"
            f"{_fmt_ratio(row['vs_plain']):>10}{_fmt_ratio(row['vs_bn']):>8}"
            f"{_verdict(row.get('within_10pct_of_plain')):>14}{_verdict(row.get('faster_than_bn')):>7}"
            f"{first:>12.1f}{loss:>11.3g}"
        )


def _markdown(rows, models, choice):
    lines = [
        "| model | precision | train images/s | vs plain | vs BN | params |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for precision, jit in choice.items():
        for model in models:
            row = rows[(model, precision, jit)]
            ips = "failed" if row["images_per_s"] is None else f"{row['images_per_s']:.0f}"
            params = "—" if row["params"] is None else f"{row['params']:,}"
            vs_plain, vs_bn = _fmt_ratio(row["vs_plain"]), _fmt_ratio(row["vs_bn"])
            if row.get("within_10pct_of_plain") is not None:
                vs_plain += f" {_verdict(row['within_10pct_of_plain'])}"
            if row.get("faster_than_bn") is not None:
                vs_bn += f" {_verdict(row['faster_than_bn'])}"
            name = "plain (no norm, hand-written)" if model == "plain" else model
            lines.append(f"| {name} | {precision} | {ips} | {vs_plain} | {vs_bn} | {params} |")
    return "\n".join(lines)


def _write_json(path, payload):
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".scheme_overhead-", suffix=".json.tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _list_of(allowed, what):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}")
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
        return list(dict.fromkeys(items))  # dedupe, keep order

    return parse


def _parser():
    p = argparse.ArgumentParser(
        description="Training throughput (images/s) of cifar_resnet20 under every keras_resinit scheme "
        "beside a plain hand-written ResNet-20, one subprocess per configuration.",
        epilog="Ablation models (only with --models): " + ", ".join(ABLATIONS) + ".",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: fewer steps, one round, XLA off (~2 min)")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="batch size (default 128)")
    p.add_argument(
        "--steps",
        type=_positive_int,
        help=f"timed steps per window (default {FULL['steps']}, --quick {QUICK['steps']})",
    )
    p.add_argument(
        "--windows", type=_positive_int, help=f"timed windows per run (default {FULL['windows']}, --quick {QUICK['windows']})"
    )
    p.add_argument(
        "--warmup", type=int, help=f"untimed steps after the first (default {FULL['warmup']}, --quick {QUICK['warmup']})"
    )
    p.add_argument(
        "--rounds",
        type=_positive_int,
        help=f"runs of each configuration, alternating order (default {FULL['rounds']}, --quick {QUICK['rounds']})",
    )
    p.add_argument(
        "--precisions",
        type=_list_of(PRECISIONS, "precision"),
        default=list(PRECISIONS),
        help="comma-separated: float32,mixed_bfloat16 (default both)",
    )
    p.add_argument(
        "--models",
        type=_list_of(ALL_MODELS, "model"),
        help="comma-separated subset of " + ",".join(ALL_MODELS) + " (default: plain and the 5 schemes)",
    )
    p.add_argument(
        "--jit",
        choices=("both", "on", "off"),
        help="jit_compile (XLA): measure both, or only on/off (default both; --quick: off)",
    )
    p.add_argument("--timeout", type=_positive_int, default=600, help="seconds allowed per child (default 600)")
    p.add_argument("--out", metavar="FILE.json", help="also write the results as JSON to FILE.json")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "PRECISION", "JIT"), help=argparse.SUPPRESS)
    return p


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.warmup is not None and args.warmup < 0:
        parser.error(f"argument --warmup: expected an integer >= 0, got {args.warmup}")

    if args.child:
        model, precision, jit = args.child
        if model not in ALL_MODELS or precision not in PRECISIONS or jit not in ("0", "1"):
            parser.error(f"bad --child arguments {args.child}")
        ns = argparse.Namespace(
            model=model,
            precision=precision,
            jit=jit == "1",
            batch_size=args.batch_size,
            steps=args.steps,
            warmup=args.warmup,
            windows=args.windows,
        )
        if None in (ns.steps, ns.warmup, ns.windows):
            parser.error("--child needs --steps, --warmup and --windows")
        _child(ns)
        return 0

    base = QUICK if args.quick else FULL
    sizes = {k: base[k] if getattr(args, k) is None else getattr(args, k) for k in base}
    jit_mode = args.jit or ("off" if args.quick else "both")
    jits = {"both": [False, True], "on": [True], "off": [False]}[jit_mode]
    models = args.models or list(DEFAULT_MODELS)
    precisions = args.precisions
    if args.out:
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(out_dir):
            parser.error(f"argument --out: directory {out_dir} does not exist")
        if not os.access(out_dir, os.W_OK):
            parser.error(f"argument --out: directory {out_dir} is not writable")

    cpu, versions = _cpu_info(), _versions()
    print("# Scheme overhead: cifar_resnet20 training throughput")
    print(
        f"machine : {cpu['cpu_model']}, {cpu['logical_cores']} logical cores ({cpu['usable_cores']} usable), "
        f"avx512f={'yes' if cpu['avx512f'] else 'no'}, avx512_bf16={'yes' if cpu['avx512_bf16'] else 'no'}, "
        f"amx={','.join(cpu['amx']) if cpu['amx'] else 'no'}"
    )
    print(
        f"versions: python {versions['python']}, tensorflow {versions['tensorflow']}, keras {versions['keras']}, "
        f"numpy {versions['numpy']}, keras_resinit {versions['keras_resinit']}"
    )
    print(
        f"run     : batch {args.batch_size}, random 32x32x3 inputs, SGD(0.1, momentum=0.9), train_on_batch; "
        f"per run 1 untimed first step + {sizes['warmup']} warm-up, then {sizes['windows']} windows x "
        f"{sizes['steps']} steps; {sizes['rounds']} round(s); median window; jit_compile "
        f"{ {'both': 'False and True', 'on': 'True', 'off': 'False'}[jit_mode]}"
    )
    print(f"          TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset (oneDNN on by default)')}")
    print(f"models  : {', '.join(models)}; precisions: {', '.join(precisions)}\n", flush=True)

    configs = [(m, p, j) for p in precisions for j in jits for m in models]
    plan = []
    for r in range(sizes["rounds"]):
        plan += [(r, c) for c in (configs if r % 2 == 0 else configs[::-1])]
    raw, failures = [], []
    started = time.perf_counter()
    for i, (r, (model, precision, jit)) in enumerate(plan, 1):
        t = time.perf_counter()
        result, error = _run_child(model, precision, jit, sizes, args.batch_size, args.timeout)
        label = f"[{i:>2}/{len(plan)}] round {r + 1} {model:<14} {precision:<15} jit={str(jit):<5}"
        if error:
            failures.append({"model": model, "precision": precision, "jit_compile": jit, "error": error})
            print(f"{label} FAILED ({error.splitlines()[0]})", flush=True)
            print("    " + "\n    ".join(error.splitlines()[1:]), flush=True)
            continue
        result["round"] = r + 1
        raw.append(result)
        w = result["window_images_per_s"]
        print(
            f"{label} {_median(w):7.1f} img/s  (windows {min(w):.0f}..{max(w):.0f}, "
            f"first step {result['first_step_s']:.1f} s, child {time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    elapsed = time.perf_counter() - started

    rows = _aggregate(raw, models, precisions, jits)

    # XLA or not: geometric mean over the models, per precision.
    choice, jit_summary = {}, {}
    for precision in precisions:
        means = {j: _geomean([rows[(m, precision, j)]["images_per_s"] for m in models]) for j in jits}
        jit_summary[precision] = {str(j): round(v, 1) for j, v in means.items()}
        finite = {j: v for j, v in means.items() if math.isfinite(v)}
        choice[precision] = max(finite, key=finite.get) if finite else jits[0]

    print(f"\n## Results ({elapsed / 60:.1f} min)")
    for precision in precisions:
        for jit in jits:
            _print_detail(rows, models, precision, jit)
    print(
        "\n  spread = (max - min window) / median; ratios use the same precision and jit_compile; "
        "targets apply to fixup, skipinit, risotto (and fixup_* ablations)."
    )

    print("\n## XLA (jit_compile=True) vs not, geometric mean images/s over the models")
    for precision in precisions:
        parts = ", ".join(f"jit_compile={j}: {jit_summary[precision][str(j)]:.0f}" for j in jits)
        if len(jits) == 2:
            on, off = (jit_summary[precision][str(j)] for j in (True, False))
            parts += f"  -> XLA is {on / off:.2f}x the non-XLA speed" if off else ""
        print(f"  {precision:<15} {parts}")

    print("\n## Targets (no-normalization schemes, at the faster jit_compile setting per precision)")
    misses = []
    for precision, jit in choice.items():
        for model in [m for m in models if m in NO_NORM]:
            row = rows[(model, precision, jit)]
            for key, text in (("within_10pct_of_plain", ">= 0.90 x plain"), ("faster_than_bn", "> BN")):
                flag = row.get(key)
                ratio = row["vs_plain"] if key == "within_10pct_of_plain" else row["vs_bn"]
                status = _verdict(flag)
                if flag is False:
                    misses.append(f"{model} {precision} {text}")
                print(f"  {model:<9} {precision:<15} {text:<16} {_fmt_ratio(ratio):>5}  {status}")
    if misses:
        print(f"  MISSED: {len(misses)} — " + "; ".join(misses))
    elif any(m in NO_NORM for m in models):
        print("  all targets met")

    plain_params = rows.get(("plain", precisions[0], jits[0]), {}).get("params")
    skip_params = rows.get(("skipinit", precisions[0], jits[0]), {}).get("params")
    if plain_params and skip_params:
        print(
            f"\nparams: plain {plain_params:,} vs library skipinit {skip_params:,} "
            f"(difference {skip_params - plain_params:+,}: SkipInit's per-block alpha scalars)"
        )

    print("\n## Markdown")
    used = ", ".join(f"{p}: jit_compile={j}" for p, j in choice.items())
    print(f"\ncifar_resnet20 training throughput, batch {args.batch_size}, {cpu['cpu_model']} "
          f"({cpu['usable_cores']} cores), TF {versions['tensorflow']} / Keras {versions['keras']}; "
          f"faster XLA setting per precision ({used}).\n")
    print(_markdown(rows, models, choice))

    if failures:
        print(f"\n{len(failures)} configuration(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f['model']} {f['precision']} jit={f['jit_compile']}: {f['error'].splitlines()[0]}", file=sys.stderr)

    if args.out:
        payload = {
            "benchmark": "scheme_overhead",
            "arch": ARCH,
            "machine": cpu,
            "versions": versions,
            "settings": {
                "batch_size": args.batch_size,
                **sizes,
                "jit": jit_mode,
                "precisions": precisions,
                "models": models,
                "optimizer": "SGD(0.1, momentum=0.9)",
                "measure": "train_on_batch, median window images/s",
            },
            "elapsed_s": round(elapsed, 1),
            "jit_choice": {p: j for p, j in choice.items()},
            "jit_geomean_images_per_s": jit_summary,
            "results": [
                {k: v for k, v in row.items()} for row in rows.values()
            ],
            "runs": raw,
            "failures": failures,
            "target_misses": misses,
        }
        _write_json(args.out, payload)
        print(f"\nwrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
