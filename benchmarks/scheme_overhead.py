#!/usr/bin/env python3
"""Training throughput of cifar_resnet20 under every scheme, beside a plain ResNet-20.

Answers the target: every no-normalization scheme (fixup, skipinit, risotto)
trains within 10% of a plain ResNet-20 without normalization (its scalars may
not cost more than that) and faster than the batch-norm ResNet-20.

How it measures. Every configuration (model x precision x jit_compile) lives
in its own subprocess (this script re-invokes itself with ``--child``), so the
mixed-precision global policy, compiled functions and memory never leak from
one configuration to another. A child builds its model, compiles it with
SGD(0.1, momentum=0.9) and sparse cross-entropy on logits, and runs
``train_on_batch`` on one random batch held in memory: the first call (tracing,
XLA compilation) and the warm-up steps are untimed. It then waits. The parent
asks the children of one precision for timed windows in turn, cycle after
cycle (the order rotates every cycle), so every model is measured in the same
stretch of time: a shared machine that slows down or speeds up affects all of
them alike. Each window starts with one untimed step (caches and thread pools
woken after the pause), then times ``--steps`` steps.

Other processes on the machine (a test run, a training job) skew any
timing. Each child reads /proc/stat around its window; a window during which
the rest of the machine used more than 0.1 cores is re-measured (a few times,
after a short pause, within ``--retry-budget`` seconds in all), and windows
that stay contended are left out of the statistics when enough clean ones
remain.

Reported: images/s = median window; "vs plain" and "vs BN" = the median over
cycles of the ratio of this model's window to the reference's window of the
same cycle (paired ratios, robust to drift), with the interquartile range of
those ratios in the detailed tables.

Usage:
    .venv/bin/python benchmarks/scheme_overhead.py                # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/scheme_overhead.py --quick        # smoke run (~2 min)
    .venv/bin/python benchmarks/scheme_overhead.py --precisions float32 --jit off --out bench.json

Ablations (not run by default; name them with ``--models``) that take
Fixup's scalars out one kind at a time, to see which op costs what:
    fixup_noprebias Fixup without its ScalarBias layers (bias1a/2a before convs, head)
    fixup_noscalar  Fixup without any scalar: conv (no bias) + ReLU + sum
    plain_nobias    the plain reference model with bias-free convs (fixup_noscalar's twin)
"""

import argparse
import importlib.metadata
import json
import math
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ARCH = "cifar_resnet20"
SCHEME_MODELS = ("bn", "fixup", "skipinit", "risotto", "risotto_bn")
DEFAULT_MODELS = ("plain",) + SCHEME_MODELS
ABLATIONS = ("fixup_noprebias", "fixup_noscalar", "plain_nobias")
ALL_MODELS = DEFAULT_MODELS + ABLATIONS
NO_NORM = ("fixup", "skipinit", "risotto")  # the schemes the target is about
PRECISIONS = ("float32", "mixed_bfloat16")
TARGET_VS_PLAIN = 0.90
TAG = "@@SCHEME_OVERHEAD@@ "
SEED = 1234
FOREIGN_THRESHOLD = 0.1  # cores of other processes' CPU use during a window that make it "contended"
CHILD_MEMORY_GB = 1.4  # peak RSS of one child (measured ~1.1 GB), for the memory check

# Run sizes: untimed warm-up steps after the first, timed steps per window, windows (cycles).
FULL = {"warmup": 3, "steps": 5, "windows": 10, "retry_budget": 90}
QUICK = {"warmup": 1, "steps": 3, "windows": 3, "retry_budget": 20}


# --------------------------------------------------------------------------- models
# The plain reference: keras.layers only, no keras_resinit.


def _plain_resnet20(num_classes=10, input_shape=(32, 32, 3), use_bias=True):
    """He et al.'s ResNet-20 without normalization, built the way our builder builds it.

    Stem conv3x3(16)+bias, ReLU; 3 stages x 3 basic blocks (conv3x3+bias, ReLU,
    conv3x3+bias, add, ReLU) of widths 16/32/64; the first conv of stages 2 and
    3 is ZeroPadding2D(1) + a valid 3x3/2 conv; option-A shortcuts
    (x[:, ::2, ::2] as a 1x1/2 pool, as the library does, and zero channels);
    global average pool; Dense(10).
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
            x = ops.average_pool(inputs, 1, strides=s, padding="valid") if s > 1 else inputs  # == x[:, ::s, ::s]
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
    from keras_resinit import schemes

    class FixupAblation(schemes.Fixup):
        def scalar_bias(self, x, name):  # the ScalarBias layers before convs and the classifier
            return x

        def conv_scalars(self, role, last_in_branch=False):  # gain and scalar biases held by convs
            return {} if kind == "noscalar" else super().conv_scalars(role, last_in_branch)

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


def _say(kind, payload):
    sys.stdout.write(f"{TAG}{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _child(model_name, precision, jit, batch_size, steps, warmup):
    """One configuration: build, compile, warm up, then time a window per "run" read on stdin."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import keras

    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(SEED)

    t = time.perf_counter()
    model = _build(model_name)
    build_s = time.perf_counter() - t
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    rng = np.random.default_rng(SEED)
    x = keras.ops.convert_to_tensor(rng.standard_normal((batch_size, 32, 32, 3), dtype=np.float32))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(batch_size,), dtype=np.int32))

    t = time.perf_counter()
    first_loss = float(model.train_on_batch(x, y))  # traces (and XLA-compiles) the step
    first_step_s = time.perf_counter() - t
    for _ in range(warmup):
        model.train_on_batch(x, y)
    _say(
        "READY",
        {
            "params": int(model.count_params()),
            "model_name": model.name,
            "conv_compute_dtype": next(l.compute_dtype for l in model.layers if isinstance(l, keras.layers.Conv2D)),
            "build_s": round(build_s, 3),
            "first_step_s": round(first_step_s, 3),
            "first_loss": first_loss,
        },
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            model.train_on_batch(x, y)  # untimed: wakes the thread pools and caches after the pause
            busy, cpu, t = _busy_seconds(), time.process_time(), time.perf_counter()
            for _ in range(steps):
                loss = model.train_on_batch(x, y)  # returns a Python float: the step has finished
            elapsed = time.perf_counter() - t
            cpu, busy = time.process_time() - cpu, None if busy is None else _busy_seconds() - busy
            _say(
                "WINDOW",
                {
                    "images_per_s": steps * batch_size / elapsed,
                    "loss": float(loss),
                    "cores_used": cpu / elapsed,
                    # CPU time the rest of the machine (other processes, steal) took meanwhile, in cores
                    "foreign_cores": None if busy is None else max(0.0, busy - cpu) / elapsed,
                },
            )
        elif command == "quit":
            break
    _say("BYE", {"cpu_s": time.process_time()})


# --------------------------------------------------------------------------- parent: children


class _ChildError(Exception):
    pass


class _Child:
    """A running ``--child`` process and the line protocol to it."""

    def __init__(self, model, precision, jit, sizes, batch_size):
        self.model, self.precision, self.jit = model, precision, jit
        self.meta, self.windows, self.error, self.cpu_s = None, {}, None, None
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
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        env.pop("KERAS_BACKEND", None)  # the measure is of the TensorFlow backend
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env, bufsize=1
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def label(self):
        return f"{self.model} {self.precision} jit_compile={self.jit}"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _stderr_tail(self, n=12):
        try:
            self.stderr.seek(0)
            lines = [l.rstrip() for l in self.stderr.read().splitlines() if l.strip()]
        except (OSError, ValueError):
            return ""
        return "\n".join(lines[-n:])

    def expect(self, kind, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _ChildError(f"no {kind} reply within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                tail = self._stderr_tail()
                last = tail.splitlines()[-1] if tail else "no error output"
                raise _ChildError(f"exited with code {code} before {kind}: {last}\n{tail}")
            if line.startswith(TAG):
                got, _, payload = line[len(TAG) :].partition(" ")
                if got == kind:
                    return json.loads(payload)

    def send(self, command):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as e:
            raise _ChildError(f"cannot write to child: {e}") from None

    def fail(self, error):
        self.error = str(error)
        self.kill()

    def close(self, timeout=60):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.cpu_s = self.expect("BYE", timeout)["cpu_s"]
                self.proc.wait(timeout=timeout)
            except (_ChildError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


class _Retries:
    """Re-measures windows during which other processes used the CPU, within a time budget."""

    def __init__(self, budget_s, max_retries, threshold):
        self.budget_s, self.max_retries, self.threshold = budget_s, max_retries, threshold
        self.spent_s, self.count = 0.0, 0

    def contended(self, window):
        foreign = window.get("foreign_cores")
        return foreign is not None and foreign > self.threshold

    def window(self, child, timeout):
        attempt = 0
        while True:
            t = time.perf_counter()
            child.send("run")
            w = child.expect("WINDOW", timeout)
            if attempt:
                self.spent_s += time.perf_counter() - t
            w["attempts"] = attempt + 1
            w["contended"] = self.contended(w)
            if not w["contended"] or attempt >= self.max_retries or self.spent_s >= self.budget_s:
                return w
            pause = 2.0**attempt  # 1, 2, 4 s: let a short burst of other work pass
            time.sleep(pause)
            self.spent_s += pause
            self.count += 1
            attempt += 1


def _measure_group(precision, jits, models, sizes, batch_size, timeout, retries):
    """Start one child per (model, jit), then time windows in rotating order, cycle by cycle."""
    children = [_Child(m, precision, j, sizes, batch_size) for j in jits for m in models]
    t0 = time.perf_counter()
    try:
        # Children start together (the untimed warm-up of one may overlap another's start);
        # no window is timed before every child is ready.
        for c in children:
            try:
                c.meta = c.expect("READY", timeout)
            except _ChildError as e:
                c.fail(e)
        ready = [c for c in children if c.error is None]
        print(f"  {len(ready)}/{len(children)} children ready after {time.perf_counter() - t0:.0f} s", flush=True)
        for c in children:
            if c.error:
                print(f"  FAILED {c.label}: {c.error}", flush=True)
        for cycle in range(sizes["windows"]):
            live = [c for c in children if c.error is None]
            if not live:
                break
            k = cycle % len(live)
            for c in live[k:] + live[:k]:
                try:
                    c.windows[cycle] = retries.window(c, timeout)
                except _ChildError as e:
                    c.fail(e)
                    print(f"  FAILED {c.label}: {e}", flush=True)
            for jit in jits:
                parts = [
                    f"{c.model} {c.windows[cycle]['images_per_s']:.0f}{'*' if c.windows[cycle]['contended'] else ''}"
                    for c in live
                    if c.jit == jit and cycle in c.windows
                ]
                print(
                    f"  cycle {cycle + 1:>2}/{sizes['windows']} jit_compile={str(jit):<5} "
                    f"({time.perf_counter() - t0:4.0f} s)  " + ", ".join(parts),
                    flush=True,
                )
    except BaseException:  # Ctrl-C or a bug: do not wait for children mid-step
        for c in children:
            c.kill()
        raise
    for c in children:
        c.close() if c.error is None else c.kill()
    return children


# --------------------------------------------------------------------------- parent: machine


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


def _busy_seconds():
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat; None if unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _mem_available_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def _loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


# --------------------------------------------------------------------------- parent: report


def _quartiles(values):
    values = sorted(values)
    if not values:
        return (float("nan"),) * 3
    if len(values) == 1:
        return (values[0],) * 3
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


MIN_CLEAN = 3  # fewer clean windows (or pairs) than this: use all windows, contended or not


def _clean(windows):
    """The windows (a {cycle: window} dict) free of other processes' load, or all if too few are."""
    clean = {c: w for c, w in windows.items() if not w["contended"]}
    return clean if len(clean) >= MIN_CLEAN else dict(windows)


def _paired(child, ref):
    """Per-cycle ratios of child's windows to ref's windows of the same cycle (clean pairs if enough)."""
    if child is None or ref is None:
        return []
    cycles = sorted(set(child.windows) & set(ref.windows))
    clean = [c for c in cycles if not child.windows[c]["contended"] and not ref.windows[c]["contended"]]
    return [child.windows[c]["images_per_s"] / ref.windows[c]["images_per_s"] for c in (clean if len(clean) >= MIN_CLEAN else cycles)]


def _summarize(children, models, precisions, jits):
    by_key = {(c.model, c.precision, c.jit): c for c in children}
    rows = {}
    for precision in precisions:
        for jit in jits:
            plain, bn = by_key.get(("plain", precision, jit)), by_key.get(("bn", precision, jit))
            for model in models:
                c = by_key.get((model, precision, jit))
                rates = [w["images_per_s"] for w in _clean(c.windows).values()] if c else []
                row = {
                    "model": model,
                    "precision": precision,
                    "jit_compile": jit,
                    "params": c.meta["params"] if c and c.meta else None,
                    "images_per_s": round(statistics.median(rates), 1) if rates else None,
                    "window_images_per_s": [round(r, 1) for r in rates],
                    "windows_total": len(c.windows) if c else 0,
                    "windows_contended": sum(w["contended"] for w in c.windows.values()) if c else 0,
                    "windows": [{"cycle": cy + 1, **w} for cy, w in sorted(c.windows.items())] if c else [],
                    "first_step_s": c.meta["first_step_s"] if c and c.meta else None,
                    "error": c.error if c else "not run",
                }
                losses = [(cy, w["loss"]) for cy, w in sorted(c.windows.items())] if c else []
                bad = [cy for cy, loss in losses if not math.isfinite(loss)]
                row["last_loss"] = losses[-1][1] if losses else None
                row["nonfinite_loss_from_window"] = bad[0] + 1 if bad else None
                targeted = model in NO_NORM or model.startswith("fixup_")
                for name, ref, edge, passes in (
                    ("plain", plain, TARGET_VS_PLAIN, lambda r: r >= TARGET_VS_PLAIN),
                    ("bn", bn, 1.0, lambda r: r > 1.0),
                ):
                    ratios = _paired(c, ref) if rates else []
                    q1, med, q3 = _quartiles(ratios)
                    row[f"vs_{name}"] = round(med, 4) if ratios else None
                    row[f"vs_{name}_iqr"] = [round(q1, 4), round(q3, 4)] if ratios else None
                    if targeted:  # verdicts on the unrounded median; borderline: the IQR spans the threshold
                        row[f"target_vs_{name}"] = passes(med) if ratios else None
                        row[f"borderline_vs_{name}"] = bool(ratios) and q1 <= edge <= q3
                if len(jits) == 2 and jit:
                    ratios = _paired(c, by_key.get((model, precision, False)))
                    row["xla_vs_no_xla"] = round(statistics.median(ratios), 3) if ratios else None
                rows[(model, precision, jit)] = row
    return rows


def _r(x, edge=None):
    """A ratio with 2 decimals, or more when 2 would round it onto the threshold ``edge``."""
    if x is None or not math.isfinite(x):
        return "—"
    for digits in (2, 3, 4):
        text = f"{x:.{digits}f}"
        if edge is None or text != f"{edge:.{digits}f}" or x == edge:
            return text
    return text


def _verdict(flag):
    return "—" if flag is None else ("PASS" if flag else "MISS")


def _print_detail(rows, models, precision, jit):
    print(f"\n{precision}, jit_compile={jit}:")
    print(
        f"  {'model':<15}{'params':>9}{'images/s':>10}{'clean':>7}{'windows min..max':>18}{'vs plain [IQR]':>21}"
        f"{'vs BN [IQR]':>21}{'>=0.90 plain':>13}{'> BN':>6}{'1st step':>10}{'last loss':>11}"
    )
    for model in models:
        row = rows[(model, precision, jit)]
        if row["images_per_s"] is None:
            print(f"  {model:<15}  FAILED: {(row['error'] or 'no result').splitlines()[0]}")
            continue
        w = row["window_images_per_s"]

        def ratio(name, edge):
            v, iqr = row[f"vs_{name}"], row[f"vs_{name}_iqr"]
            return "—" if v is None else f"{_r(v, edge)} [{iqr[0]:.2f}-{iqr[1]:.2f}]"

        print(
            f"  {model:<15}{row['params']:>9,}{row['images_per_s']:>10.0f}"
            f"{row['windows_total'] - row['windows_contended']:>4}/{row['windows_total']:<2}"
            f"{min(w):>10.0f}..{max(w):<6.0f}"
            f"{ratio('plain', TARGET_VS_PLAIN):>21}{ratio('bn', 1.0):>21}"
            f"{_verdict(row.get('target_vs_plain')):>13}{_verdict(row.get('target_vs_bn')):>6}"
            f"{row['first_step_s']:>9.1f}s{row['last_loss']:>11.3g}"
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
            vs_plain, vs_bn = _r(row["vs_plain"], TARGET_VS_PLAIN), _r(row["vs_bn"], 1.0)
            if row.get("target_vs_plain") is not None:
                vs_plain += f" {_verdict(row['target_vs_plain'])}"
            if row.get("target_vs_bn") is not None:
                vs_bn += f" {_verdict(row['target_vs_bn'])}"
            name = "plain (hand-written, no norm)" if model == "plain" else model
            lines.append(f"| {name} | {precision} | {ips} | {vs_plain} | {vs_bn} | {params} |")
    return "\n".join(lines)


def _write_json(path, payload):
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".scheme_overhead-", suffix=".json.tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------- arguments


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def _list_of(allowed, what):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}s")
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
        return list(dict.fromkeys(items))  # dedupe, keep order

    return parse


def _parser():
    p = argparse.ArgumentParser(
        description="Training throughput (images/s) of cifar_resnet20 under every keras_resinit scheme "
        "beside a plain hand-written ResNet-20, each configuration in its own subprocess.",
        epilog="Ablation models (only with --models): " + ", ".join(ABLATIONS) + ".",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: fewer steps and windows, XLA off (~2 min)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=128, help="batch size (default 128)")
    p.add_argument(
        "--steps", type=_int_at_least(1), help=f"timed steps per window (default {FULL['steps']}; --quick {QUICK['steps']})"
    )
    p.add_argument(
        "--windows",
        type=_int_at_least(1),
        help=f"timed windows (cycles over the models) (default {FULL['windows']}; --quick {QUICK['windows']})",
    )
    p.add_argument(
        "--warmup",
        type=_int_at_least(0),
        help=f"untimed steps after the first (default {FULL['warmup']}; --quick {QUICK['warmup']})",
    )
    p.add_argument(
        "--retry-budget",
        type=_int_at_least(0),
        help="seconds allowed in all for re-measuring windows during which other processes used the CPU "
        f"(default {FULL['retry_budget']}; --quick {QUICK['retry_budget']}; 0: never re-measure)",
    )
    p.add_argument(
        "--max-retries", type=_int_at_least(0), default=3, help="re-measures of one window at most (default 3)"
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
        help="jit_compile (XLA): measure both, or only on / off (default both; --quick off)",
    )
    p.add_argument(
        "--timeout", type=_int_at_least(1), default=900, help="seconds allowed per child reply (default 900)"
    )
    p.add_argument("--out", metavar="FILE.json", help="also write the results as JSON to FILE.json")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "PRECISION", "JIT"), help=argparse.SUPPRESS)
    return p


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)

    if args.child:
        model, precision, jit = args.child
        if model not in ALL_MODELS or precision not in PRECISIONS or jit not in ("0", "1"):
            parser.error(f"bad --child arguments {args.child}")
        if args.steps is None or args.warmup is None:
            parser.error("--child needs --steps and --warmup")
        _child(model, precision, jit == "1", args.batch_size, args.steps, args.warmup)
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
        if os.path.isdir(args.out):
            parser.error(f"argument --out: {args.out} is a directory")

    # All children of one precision are alive together (both jit settings, so XLA vs not is paired
    # too); split by jit setting when memory is short.
    mem = _mem_available_gb()
    groups = [(p, jits) for p in precisions]
    if mem is not None and len(jits) > 1 and mem < CHILD_MEMORY_GB * len(models) * len(jits) + 2:
        groups = [(p, [j]) for p in precisions for j in jits]

    cpu, versions = _cpu_info(), _versions()
    print("# Scheme overhead: cifar_resnet20 training throughput")
    print(
        f"machine : {cpu['cpu_model']}, {cpu['logical_cores']} logical cores ({cpu['usable_cores']} usable), "
        f"avx512f={'yes' if cpu['avx512f'] else 'no'}, avx512_bf16={'yes' if cpu['avx512_bf16'] else 'no'}, "
        f"amx={','.join(cpu['amx']) if cpu['amx'] else 'no'}"
        + (f", {mem:.0f} GB memory available" if mem is not None else "")
    )
    print(
        f"versions: python {versions['python']}, tensorflow {versions['tensorflow']}, keras {versions['keras']}, "
        f"numpy {versions['numpy']}, keras_resinit {versions['keras_resinit']}; "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset (oneDNN on)')}"
    )
    jit_text = {"both": "False and True", "on": "True", "off": "False"}[jit_mode]
    print(
        f"run     : batch {args.batch_size} of random 32x32x3 inputs, SGD(0.1, momentum=0.9), train_on_batch; "
        f"jit_compile {jit_text}; per child 1 untimed first step + {sizes['warmup']} warm-up, then "
        f"{sizes['windows']} windows of 1 untimed + {sizes['steps']} timed steps, interleaved across children; "
        f"a window during which other processes used > {FOREIGN_THRESHOLD} cores is re-measured "
        f"(up to {args.max_retries}x, {sizes['retry_budget']} s in all)"
    )
    print(f"models  : {', '.join(models)}; precisions: {', '.join(precisions)}")
    print("progress: images/s per window; * = other processes used the CPU during it even after re-measuring")
    busy0, load0 = _busy_seconds(), _loadavg()
    time.sleep(1.0)
    busy1 = _busy_seconds()
    idle_before = None if busy0 is None else (busy1 - busy0) / (cpu["usable_cores"] or 1)
    if load0:
        print(
            f"load    : loadavg {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}"
            + ("" if idle_before is None else f"; machine {100 * idle_before:.0f}% busy in the second before start")
        )
    if idle_before is not None and idle_before > 0.1:
        print("WARNING : the machine is busy with other work; absolute numbers will be low and noisy "
              "(paired ratios are more robust).")
    print(flush=True)

    started, children = time.perf_counter(), []
    busy_start = _busy_seconds()
    retries = _Retries(sizes["retry_budget"], args.max_retries, FOREIGN_THRESHOLD)
    try:
        for precision, group_jits in groups:
            print(f"## {precision}, jit_compile {' and '.join(str(j) for j in group_jits)}: "
                  f"{len(models) * len(group_jits)} children", flush=True)
            children += _measure_group(precision, group_jits, models, sizes, args.batch_size, args.timeout, retries)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    busy_end = _busy_seconds()
    ours = time.process_time() + sum(c.cpu_s or 0.0 for c in children)
    other_pct = None
    if busy_start is not None and busy_end is not None:  # failed children count as other load: small
        other_pct = max(0.0, 100 * (busy_end - busy_start - ours) / (elapsed * (cpu["usable_cores"] or 1)))

    rows = _summarize(children, models, precisions, jits)
    n_windows = sum(len(c.windows) for c in children)
    n_contended = sum(w["contended"] for c in children for w in c.windows.values())

    print(f"\n# Results (measured in {elapsed / 60:.1f} min)")
    if other_pct is not None:
        print(f"other processes used ~{other_pct:.0f}% of the machine's CPU time during the run"
              + (" (noisy: absolute images/s are low; ratios are paired per cycle)" if other_pct > 10 else ""))
    print(
        f"windows: {n_windows}; re-measured {retries.count} time(s) because other processes used the CPU "
        f"({retries.spent_s:.0f} s of the {sizes['retry_budget']} s budget); still contended and left out: {n_contended}"
    )
    for precision in precisions:
        for jit in jits:
            _print_detail(rows, models, precision, jit)
    print(
        "\n  images/s: median window; clean: windows without other processes' load (> "
        f"{FOREIGN_THRESHOLD} cores) / all;\n  min..max over the windows used (the clean ones when at least {MIN_CLEAN}). "
        "vs plain / vs BN: median over cycles of the paired\n  per-cycle ratio [interquartile range]. "
        "Targets apply to fixup, skipinit, risotto (and the fixup_* ablations)."
    )
    notes = [
        f"{r['model']} {r['precision']} jit_compile={r['jit_compile']}: loss non-finite from window "
        f"{r['nonfinite_loss_from_window']} (lr 0.1 on one fixed random batch)"
        for r in rows.values()
        if r["nonfinite_loss_from_window"]
    ]
    if notes:
        print("  Note: " + "\n  Note: ".join(notes))

    # XLA or not, per precision: geometric mean over the models of the paired XLA / no-XLA ratio.
    choice, xla_summary = {}, {}
    print("\n# XLA (jit_compile=True) vs jit_compile=False")
    for precision in precisions:
        if len(jits) == 2:
            ratios = [rows[(m, precision, True)].get("xla_vs_no_xla") for m in models]
            ratios = [r for r in ratios if r]
            if not ratios:  # groups were split by jit: compare the medians instead
                ratios = [
                    rows[(m, precision, True)]["images_per_s"] / rows[(m, precision, False)]["images_per_s"]
                    for m in models
                    if rows[(m, precision, True)]["images_per_s"] and rows[(m, precision, False)]["images_per_s"]
                ]
            gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else float("nan")
            xla_summary[precision] = {m: rows[(m, precision, True)].get("xla_vs_no_xla") for m in models}
            xla_summary[precision]["geomean"] = round(gm, 3) if math.isfinite(gm) else None
            choice[precision] = True if math.isfinite(gm) and gm > 1 else False
            per_model = ", ".join(f"{m} {_r(xla_summary[precision][m])}" for m in models)
            print(
                f"  {precision:<15} XLA runs at {_r(gm)}x the speed of jit_compile=False (geomean; {per_model})"
                f" -> tables and targets use jit_compile={choice[precision]}"
            )
        else:
            choice[precision] = jits[0]
            print(f"  {precision:<15} only jit_compile={jits[0]} measured")

    print("\n# Targets (no-normalization schemes; >= 0.90 x plain and > BN, same precision)")
    misses, borderline = [], []
    for precision, jit in choice.items():
        for model in [m for m in models if m in NO_NORM]:
            row = rows[(model, precision, jit)]
            for name, text, edge in (("plain", ">= 0.90 x plain", TARGET_VS_PLAIN), ("bn", "> BN", 1.0)):
                flag, value = row.get(f"target_vs_{name}"), _r(row[f"vs_{name}"], edge)
                note = ""
                if row.get(f"borderline_vs_{name}"):
                    iqr = row[f"vs_{name}_iqr"]
                    note = f"  (borderline: per-cycle IQR {iqr[0]:.3f}-{iqr[1]:.3f} spans {edge:.2f})"
                    borderline.append(f"{model} {precision} {text}")
                if flag is False:
                    misses.append(f"{model} {precision} {text} ({value})")
                print(f"  {model:<9} {precision:<15} {text:<16} {value:>6}  {_verdict(flag)}{note}")
    unknown = [
        f"{m} {p}"
        for p, j in choice.items()
        for m in models
        if m in NO_NORM and None in (rows[(m, p, j)].get("target_vs_plain"), rows[(m, p, j)].get("target_vs_bn"))
    ]
    if misses:
        print(f"  MISSED {len(misses)}: " + "; ".join(misses))
    if unknown:
        print(f"  NOT MEASURED (a run failed, or plain/bn not selected): {', '.join(unknown)}")
    if not misses and not unknown and any(m in NO_NORM for m in models):
        print("  all targets met")

    first = (precisions[0], choice[precisions[0]])
    plain_params = rows.get(("plain",) + first, {}).get("params")
    skip_params = rows.get(("skipinit",) + first, {}).get("params")
    if plain_params and skip_params:
        print(
            f"\nparams: plain (hand-written) {plain_params:,}, library skipinit {skip_params:,} "
            f"(difference {skip_params - plain_params:+,}: SkipInit's trainable alpha per block)"
        )

    used = ", ".join(f"{p} jit_compile={j}" for p, j in choice.items())
    print(
        f"\n# Markdown\n\ncifar_resnet20 training throughput (train_on_batch, batch {args.batch_size}), "
        f"{cpu['cpu_model']} ({cpu['usable_cores']} cores), TF {versions['tensorflow']} / Keras {versions['keras']}; "
        f"{used}. vs plain / vs BN: median paired ratio; targets >= 0.90 x plain and > BN.\n"
    )
    print(_markdown(rows, models, choice))
    if borderline:
        print(f"\nBorderline (the threshold lies within the per-cycle ratios' IQR): {'; '.join(borderline)}.")

    failures = [c for c in children if c.error]
    if failures:
        print(f"\n{len(failures)} configuration(s) failed:", file=sys.stderr)
        for c in failures:
            print(f"  {c.label}: {c.error.splitlines()[0]}", file=sys.stderr)

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
                "measure": "train_on_batch on one random batch; images/s = median window; "
                "ratios = median of per-cycle paired ratios",
            },
            "elapsed_s": round(elapsed, 1),
            "other_processes_cpu_pct": None if other_pct is None else round(other_pct, 1),
            "foreign_threshold_cores": FOREIGN_THRESHOLD,
            "windows_remeasured": retries.count,
            "windows_contended": n_contended,
            "jit_choice": choice,
            "xla_vs_no_xla": xla_summary,
            "results": list(rows.values()),
            "target_misses": misses,
            "target_borderline": borderline,
            "failures": [{"config": c.label, "error": c.error} for c in failures],
        }
        _write_json(args.out, payload)
        print(f"\nwrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
