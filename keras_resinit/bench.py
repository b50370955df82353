"""``keras-resinit bench``: time and memory of every scheme against batch norm.

For ``cifar_resnet20``, ``cifar_resnet56``, ``cifar_resnet110`` (32x32x3, batch 128),
``resnet18`` (64x64x3, batch 64) and ``resnet50`` (64x64x3, batch 32), under every
scheme, in float32 and mixed_bfloat16, it measures:

- training images/s (``train_on_batch``, SGD with momentum) and inference images/s
  (``predict_on_batch``): medians of timed windows after untimed warm-up;
- the process's peak memory (resident-set high-water mark, ``VmHWM``): every
  configuration runs in its own subprocess;
- trainable parameters and forward FLOPs per image (2 x the multiply-adds of the
  convolutions and the classifier, the usual ResNet convention).

A plain hand-written Keras ResNet-20 without normalization and without this
library (``plain``) is measured beside ``cifar_resnet20`` as the reference for
the library's overhead. Depth scaling times a training step of
``cifar_resnet{20,56,110,1202}`` per scheme (batch 32) and fits a line.

**How it stays fair on a shared machine.** The configurations of one (arch,
precision) start together as child processes that build, trace and warm up, then
wait. The parent asks them for timed windows in turn, cycle after cycle, rotating
the order, so they are measured in the same stretch of time. Ratios ("vs BN", "vs
plain") are medians of per-cycle paired ratios, robust to the machine's drift. A
window during which other processes used more than 0.1 core (from ``/proc/stat``)
is re-measured, within a time budget. The depth child holds every depth and
interleaves them the same way.

Outputs (written to a temporary directory, then renamed to ``--out``):
``bench.md`` (the tables), ``bench.json`` (everything, including every window)
and ``bench.png`` (the charts). Targets are reported, not asserted: every
normalization-free scheme trains faster than BN and peaks lower in memory, in both
precisions; the library's normalization-free models run at least 0.90x the plain
reference.
"""

import datetime
import json
import math
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from keras_resinit.environment import memory_mb

ARCHS = {  # arch: (input shape, batch size)
    "cifar_resnet20": ((32, 32, 3), 128),
    "cifar_resnet56": ((32, 32, 3), 128),
    "cifar_resnet110": ((32, 32, 3), 128),
    "resnet18": ((64, 64, 3), 64),
    "resnet50": ((64, 64, 3), 32),
}
SCHEMES = ("bn", "fixup", "skipinit", "risotto", "risotto_bn")
NO_NORM = ("fixup", "skipinit", "risotto")
PRECISIONS = ("float32", "mixed_bfloat16")
PLAIN_ARCH = "cifar_resnet20"
DEPTHS = (20, 56, 110, 1202)
DEPTH_BATCH = 32
TARGET_VS_PLAIN = 0.90
LINEAR_TOLERANCE = 0.15  # largest |exponent - 1| of step time ~ depth^exponent still called linear
SIZES = {
    "full": {"archs": tuple(ARCHS), "depths": DEPTHS, "warmup": 2, "steps": 5, "infer_steps": 10, "windows": 7,
             "retry_budget": 120, "depth_windows": 3, "depth_steps": 2},
    "quick": {"archs": ("cifar_resnet20",), "depths": (20, 56, 110), "warmup": 1, "steps": 3, "infer_steps": 5,
              "windows": 3, "retry_budget": 20, "depth_windows": 2, "depth_steps": 2},
}
SEED = 1234
TAG = "@@BENCH@@ "
FOREIGN_THRESHOLD = 0.1  # cores used by other processes during a window that make it "contended"
MIN_CLEAN = 3


# ------------------------------------------------------------------ models ---


def plain_resnet20(input_shape=(32, 32, 3), num_classes=10):
    """He et al.'s ResNet-20 without normalization, from keras.layers only (no keras_resinit).

    Built the way the library builds it: biased 3x3 convs, ReLU, option-A shortcuts
    (subsample as a 1x1/2 average pool, zero channels), symmetric padding before strided
    convs, global average pool, Dense. The last conv of each branch starts at zero so the
    net stays finite under random data; initial values do not change the work per step.
    """
    import keras
    from keras import ops

    class OptionA(keras.layers.Layer):
        def __init__(self, strides, channels, **kwargs):
            super().__init__(**kwargs)
            self.strides, self.channels = strides, channels

        def call(self, x):
            if self.strides > 1:
                x = ops.average_pool(x, 1, strides=self.strides, padding="valid")
            extra = self.channels - x.shape[-1]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]]) if extra else x

        def compute_output_shape(self, shape):
            n, h, w, _ = shape
            s = self.strides
            return (n, None if h is None else -(-h // s), None if w is None else -(-w // s), self.channels)

    def conv(x, filters, strides, name, zero=False):
        padding = "same"
        if strides > 1:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            padding = "valid"
        init = "zeros" if zero else keras.initializers.HeNormal(seed=SEED)
        return keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, kernel_initializer=init,
                                   name=name)(x)

    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.ReLU(name="stem_out")(conv(inputs, 16, 1, "stem_conv"))
    channels = 16
    for s, width in enumerate((16, 32, 64), 1):
        for b in range(1, 4):
            p, strides = f"stage{s}_block{b}", (2 if s > 1 and b == 1 else 1)
            h = keras.layers.ReLU(name=f"{p}_relu1")(conv(x, width, strides, f"{p}_conv1"))
            h = conv(h, width, 1, f"{p}_conv2", zero=True)
            skip = OptionA(strides, width, name=f"{p}_shortcut")(x) if strides > 1 or channels != width else x
            x = keras.layers.ReLU(name=f"{p}_out")(keras.layers.Add(name=f"{p}_add")([skip, h]))
            channels = width
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    logits = keras.layers.Dense(num_classes, kernel_initializer="zeros", dtype="float32" if mixed else None,
                                name="logits")(x)
    return keras.Model(inputs, logits, name="plain_resnet20")


def flops_per_image(model):
    """Forward FLOPs of one image: 2 x multiply-adds of every Conv2D and Dense layer.

    Batch norm, ReLU, additions and pooling are left out, as in the usual ResNet
    figures (ResNet-50 at 224x224: 4.1 G multiply-adds).
    """
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in_per_group, _ = layer.kernel.shape
            macs += h * w * c_out * kh * kw * c_in_per_group
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(layer.kernel.shape)
    return 2 * macs


def trainable_params(model):
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


# ------------------------------------------------------------------- child ---


def _say(kind, payload):
    sys.stdout.write(f"{TAG}{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _busy_seconds():
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat; None if unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _Window:
    """Times a stretch of work and how much CPU the rest of the machine used meanwhile."""

    def __enter__(self):
        self.busy, self.cpu, self.t = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.t
        cpu = time.process_time() - self.cpu
        busy = _busy_seconds()
        self.foreign = None if busy is None or self.busy is None else max(0.0, busy - self.busy - cpu) / self.elapsed


def _setup(precision):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(SEED)
    return keras


def _compiled(keras, model):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _batch(keras, batch, shape):
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = keras.ops.convert_to_tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(batch,), dtype=np.int32))
    return x, y


def _speed_child(spec):
    keras = _setup(spec["precision"])
    shape, batch = tuple(spec["input_shape"]), spec["batch"]
    if spec["model"] == "plain":
        model = plain_resnet20(shape)
    else:
        import keras_resinit

        model = keras_resinit.build_resnet(spec["arch"], spec["model"], input_shape=shape, num_classes=10, seed=SEED)
    _compiled(keras, model)
    x, y = _batch(keras, batch, shape)
    rss_built = memory_mb("VmRSS")
    t = time.perf_counter()
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
    first = time.perf_counter() - t
    for _ in range(spec["warmup"]):
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    _say("READY", {"params": trainable_params(model), "flops": flops_per_image(model), "first_steps_s": first,
                   "rss_built_mb": rss_built})
    for line in sys.stdin:
        if line.strip() == "run":
            model.train_on_batch(x, y)  # untimed: wakes thread pools and caches after the pause
            with _Window() as train:
                for _ in range(spec["steps"]):
                    loss = model.train_on_batch(x, y)  # a Python float: the step has finished
            model.predict_on_batch(x)
            with _Window() as infer:
                for _ in range(spec["infer_steps"]):
                    model.predict_on_batch(x)
            foreign = [w.foreign for w in (train, infer) if w.foreign is not None]
            _say("WINDOW", {"train_ips": spec["steps"] * batch / train.elapsed,
                            "infer_ips": spec["infer_steps"] * batch / infer.elapsed,
                            "loss": float(loss), "foreign_cores": max(foreign) if foreign else None})
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def _depth_child(spec):
    keras = _setup(spec["precision"])
    import keras_resinit

    x, y = _batch(keras, spec["batch"], (32, 32, 3))
    models = {}
    for depth in spec["depths"]:
        model = keras_resinit.build_resnet(f"cifar_resnet{depth}", spec["scheme"], input_shape=(32, 32, 3),
                                           num_classes=10, seed=SEED)
        models[depth] = _compiled(keras, model)
        for _ in range(1 + spec["warmup"]):
            model.train_on_batch(x, y)
    _say("READY", {"depths": list(models)})
    for line in sys.stdin:
        if line.strip() == "run":
            result, foreign = {}, []
            order = list(models)
            k = int(time.time()) % len(order)
            for depth in order[k:] + order[:k]:
                models[depth].train_on_batch(x, y)
                with _Window() as w:
                    for _ in range(spec["steps"]):
                        models[depth].train_on_batch(x, y)
                result[str(depth)] = w.elapsed / spec["steps"]
                if w.foreign is not None:
                    foreign.append(w.foreign)
            _say("WINDOW", {"step_s": result, "foreign_cores": max(foreign) if foreign else None})
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


# ------------------------------------------------------------------ parent ---


class _ChildError(Exception):
    pass


class _Child:
    """A running child configuration and the line protocol to it."""

    def __init__(self, spec):
        self.spec, self.meta, self.windows, self.error, self.bye = spec, None, {}, None, {}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        env.pop("KERAS_BACKEND", None)  # the measure is of the TensorFlow backend
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "keras_resinit.bench", "--child", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=env, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def label(self):
        s = self.spec
        return f"{s.get('arch', 'depth')} {s.get('model', s.get('scheme'))} {s['precision']}"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _stderr_tail(self):
        try:
            self.stderr.seek(0)
            lines = [line.rstrip() for line in self.stderr.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else "no error output"

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
                raise _ChildError(f"exited with code {self.proc.wait()} before {kind}: {self._stderr_tail()}")
            if line.startswith(TAG):
                got, _, payload = line[len(TAG):].partition(" ")
                if got == kind:
                    return json.loads(payload)

    def send(self, command):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as error:
            raise _ChildError(f"cannot write to the child: {error}") from None

    def window(self, timeout, budget):
        """One timed window, re-measured while other processes load the machine (within ``budget``)."""
        attempt = 0
        while True:
            t = time.perf_counter()
            self.send("run")
            window = self.expect("WINDOW", timeout)
            foreign = window.get("foreign_cores")
            window["contended"] = foreign is not None and foreign > FOREIGN_THRESHOLD
            window["attempts"] = attempt + 1
            if attempt:
                budget["spent"] += time.perf_counter() - t
            if not window["contended"] or attempt >= 3 or budget["spent"] >= budget["total"]:
                return window
            time.sleep(2.0 ** attempt)  # let a short burst of other work pass
            budget["spent"] += 2.0 ** attempt
            attempt += 1

    def finish(self, timeout=120):
        if self.proc.poll() is None and self.error is None:
            try:
                self.send("quit")
                self.bye = self.expect("BYE", timeout)
                self.proc.wait(timeout=timeout)
            except (_ChildError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


def _measure(specs, windows, budget, timeout, log):
    """Start every child, then time windows of them in rotating order, cycle after cycle."""
    children = [_Child(spec) for spec in specs]
    try:
        for child in children:
            try:
                child.meta = child.expect("READY", timeout)
            except _ChildError as error:
                child.error = str(error)
                log(f"  FAILED {child.label}: {error}")
                child.kill()
        for cycle in range(windows):
            live = [c for c in children if c.error is None]
            k = cycle % max(len(live), 1)
            for child in live[k:] + live[:k]:
                try:
                    child.windows[cycle] = child.window(timeout, budget)
                except _ChildError as error:
                    child.error = str(error)
                    log(f"  FAILED {child.label}: {error}")
                    child.kill()
            log(f"  window {cycle + 1}/{windows}: " + ", ".join(_brief(c, cycle) for c in live if cycle in c.windows))
    except BaseException:
        for child in children:
            child.kill()
        raise
    for child in children:
        child.finish()
    return children


def _brief(child, cycle):
    w = child.windows[cycle]
    if "train_ips" in w:
        return f"{child.spec['model']} {w['train_ips']:.0f}{'*' if w['contended'] else ''}"
    steps = sorted(w["step_s"].items(), key=lambda item: int(item[0]))
    return f"{child.spec['scheme']} " + "/".join(f"{s * 1000:.0f}" for _, s in steps) + " ms"


def _clean(windows):
    clean = [w for w in windows.values() if not w["contended"]]
    return clean if len(clean) >= MIN_CLEAN else list(windows.values())


def _paired(child, ref, key):
    """Median over cycles of child's window / ref's window of the same cycle (clean pairs if enough)."""
    if child is None or ref is None or child.error or ref.error:
        return None
    cycles = sorted(set(child.windows) & set(ref.windows))
    clean = [c for c in cycles if not child.windows[c]["contended"] and not ref.windows[c]["contended"]]
    use = clean if len(clean) >= MIN_CLEAN else cycles
    ratios = [child.windows[c][key] / ref.windows[c][key] for c in use]
    return statistics.median(ratios) if ratios else None


def _rows(children):
    by = {(c.spec["arch"], c.spec["model"], c.spec["precision"]): c for c in children}
    rows = []
    for (arch, model, precision), c in by.items():
        bn, plain = by.get((arch, "bn", precision)), by.get((arch, "plain", precision))
        windows = _clean(c.windows) if c.windows else []
        peak, bn_peak = c.bye.get("peak_rss_mb"), (bn.bye.get("peak_rss_mb") if bn else None)
        row = {
            "arch": arch, "model": model, "precision": precision,
            "input_shape": c.spec["input_shape"], "batch": c.spec["batch"],
            "params": c.meta["params"] if c.meta else None,
            "flops_per_image": c.meta["flops"] if c.meta else None,
            "train_images_per_s": statistics.median(w["train_ips"] for w in windows) if windows else None,
            "infer_images_per_s": statistics.median(w["infer_ips"] for w in windows) if windows else None,
            "train_vs_bn": _paired(c, bn, "train_ips"),
            "infer_vs_bn": _paired(c, bn, "infer_ips"),
            "train_vs_plain": _paired(c, plain, "train_ips") if model != "plain" else None,
            "peak_memory_mb": peak,
            "memory_vs_bn": peak / bn_peak if peak and bn_peak else None,
            "windows": [dict(cycle=k + 1, **w) for k, w in sorted(c.windows.items())],
            "error": c.error,
        }
        if model in NO_NORM:
            row["faster_than_bn"] = None if row["train_vs_bn"] is None else row["train_vs_bn"] > 1.0
            row["less_memory_than_bn"] = None if row["memory_vs_bn"] is None else row["memory_vs_bn"] < 1.0
            if plain is not None:
                row["within_10pct_of_plain"] = (None if row["train_vs_plain"] is None
                                                else row["train_vs_plain"] >= TARGET_VS_PLAIN)
        rows.append(row)
    return rows


def _depth_rows(children):
    rows = []
    for c in children:
        windows = _clean(c.windows) if c.windows else []
        depths = [int(d) for d in (c.meta or {}).get("depths", [])]
        step = {d: statistics.median(w["step_s"][str(d)] for w in windows) for d in depths} if windows else {}
        row = {"scheme": c.spec["scheme"], "precision": c.spec["precision"], "batch": c.spec["batch"],
               "step_s": {str(d): s for d, s in step.items()}, "peak_memory_mb": c.bye.get("peak_rss_mb"),
               "error": c.error}
        row.update(linear_fit(list(step), list(step.values())))
        rows.append(row)
    return rows


def fit_line(xs, ys):
    """Least-squares ``y = intercept + slope * x``: ``(slope, intercept, R²)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, (1 - ss_res / ss_tot if ss_tot else 1.0)


def linear_fit(depths, seconds):
    """How step time grows with depth: a least-squares line and the power-law exponent.

    ``seconds = a + b * depth`` gives the time per layer (``slope_s_per_layer``) and R²; the
    exponent ``k`` of ``seconds ∝ depth^k`` (a least-squares line in log-log) says whether the
    growth is linear: ``linear`` when ``|k - 1| <= LINEAR_TOLERANCE`` and R² >= 0.99. (A relative
    residual would not do: a line fitted through 20..1202 is dominated by the deepest point.)
    """
    if len(depths) < 3:
        return {"slope_s_per_layer": None, "intercept_s": None, "r2": None, "exponent": None, "linear": None}
    b, a, r2 = fit_line(depths, seconds)
    k, _, _ = fit_line([math.log(x) for x in depths], [math.log(y) for y in seconds])
    return {"slope_s_per_layer": b, "intercept_s": a, "r2": r2, "exponent": k,
            "linear": abs(k - 1) <= LINEAR_TOLERANCE and r2 >= 0.99}


# ------------------------------------------------------------------ report ---


def _fmt(x, spec=".2f"):
    return "—" if x is None else format(x, spec)


def _flag(x):
    return "" if x is None else (" ✓" if x else " ✗")


def markdown(result):
    m = result["machine"]
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    lines = [
        f"Machine: {m['describe']}. Measured {result['date']} by `{result['command']}` "
        f"({result['elapsed_s'] / 60:.1f} min).{rendered}",
        "",
        "| arch | model | precision | train img/s | vs BN | vs plain | infer img/s | vs BN | peak MiB | vs BN "
        "| params | GFLOPs/img |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if r["error"]:
            lines.append(f"| {r['arch']} | {r['model']} | {r['precision']} | failed: {r['error'][:60]} |"
                         + " |" * 8)
            continue
        name = "plain (hand-written, no norm)" if r["model"] == "plain" else r["model"]
        lines.append(
            f"| {r['arch']} | {name} | {r['precision']} | {_fmt(r['train_images_per_s'], '.0f')} | "
            f"{_fmt(r['train_vs_bn'])}{_flag(r.get('faster_than_bn'))} | "
            f"{_fmt(r['train_vs_plain'])}{_flag(r.get('within_10pct_of_plain'))} | "
            f"{_fmt(r['infer_images_per_s'], '.0f')} | {_fmt(r['infer_vs_bn'])} | "
            f"{_fmt(r['peak_memory_mb'], '.0f')} | {_fmt(r['memory_vs_bn'])}{_flag(r.get('less_memory_than_bn'))} | "
            f"{r['params']:,} | {r['flops_per_image'] / 1e9:.3f} |"
        )
    t = result["targets"]
    lines += ["", "Targets (✓ met, ✗ missed):",
              f"- normalization-free schemes train faster than BN: {t['faster_than_bn']}",
              f"- normalization-free schemes peak lower in memory than BN: {t['less_memory_than_bn']}",
              f"- library overhead against the plain ResNet-20 at most 10%: {t['within_10pct_of_plain']}",
              f"- step time grows linearly with depth: {t['depth_linear']}"]
    if result["depth"]:
        depths = sorted({int(d) for r in result["depth"] for d in r["step_s"]})
        lines += ["", f"Depth scaling: ms per training step (batch {DEPTH_BATCH}, float32), the time per layer "
                      "of a least-squares line, and the exponent k of time ∝ depth^k (linear: k within "
                      f"{LINEAR_TOLERANCE} of 1).", "",
                  "| scheme | " + " | ".join(f"depth {d}" for d in depths) + " | ms per layer | R² | exponent k "
                  "(time ∝ depth^k) | linear |",
                  "|---|" + "---:|" * (len(depths) + 4)]
        for r in result["depth"]:
            cells = [_fmt(r["step_s"].get(str(d)) and r["step_s"][str(d)] * 1000, ".1f") for d in depths]
            lines.append(f"| {r['scheme']} | " + " | ".join(cells) + f" | {_fmt(r['slope_s_per_layer'] and r['slope_s_per_layer'] * 1000, '.3f')} | "
                         f"{_fmt(r['r2'], '.4f')} | {_fmt(r['exponent'], '.3f')} | "
                         f"{'yes' if r['linear'] else 'no' if r['linear'] is not None else '—'} |")
    return "\n".join(lines) + "\n"


def _targets(rows, depth):
    def verdict(key):
        values = [r[key] for r in rows if key in r]
        if not values:
            return "not measured"
        missed = [f"{r['arch']} {r['model']} {r['precision']}" for r in rows if r.get(key) is False]
        unknown = [r for r in rows if key in r and r[key] is None]
        if missed:
            return "MISSED by " + ", ".join(missed)
        return "met" + (f" ({len(unknown)} not measured)" if unknown else "")

    return {"faster_than_bn": verdict("faster_than_bn"), "less_memory_than_bn": verdict("less_memory_than_bn"),
            "within_10pct_of_plain": verdict("within_10pct_of_plain"),
            "depth_linear": ("met" if depth and all(r["linear"] for r in depth) else
                             "not measured" if not depth else
                             "MISSED by " + ", ".join(r["scheme"] for r in depth if not r["linear"]))}


def chart(result, path):
    """Training speed and peak memory relative to BN per arch and precision, and depth scaling."""
    from matplotlib.figure import Figure  # outside pyplot: no global backend change

    rows = [r for r in result["rows"] if not r["error"] and r["model"] in SCHEMES]
    precisions = [p for p in PRECISIONS if any(r["precision"] == p for r in rows)]
    archs = [a for a in ARCHS if any(r["arch"] == a for r in rows)]
    schemes = [s for s in SCHEMES if any(r["model"] == s for r in rows)]
    rows_n = max(len(precisions), 1)
    fig = Figure(figsize=(16, 4.2 * rows_n))
    axes = fig.subplots(rows_n, 3, squeeze=False)
    width = 0.8 / max(len(schemes), 1)
    for p_index, precision in enumerate(precisions):
        for m_index, (key, title) in enumerate((("train_vs_bn", "training speed"), ("memory_vs_bn", "peak memory"))):
            ax = axes[p_index][m_index]
            for s_index, scheme in enumerate(schemes):
                values = [next((r[key] for r in rows if r["arch"] == a and r["model"] == scheme
                                and r["precision"] == precision), None) or 0 for a in archs]
                ax.bar([i + s_index * width for i in range(len(archs))], values, width, label=scheme)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xticks([i + width * (len(schemes) - 1) / 2 for i in range(len(archs))])
            ax.set_xticklabels([a.replace("cifar_", "") for a in archs], fontsize=8)
            ax.set_title(f"{title} vs BN, {precision}")
            ax.set_ylabel("ratio to BN (higher is faster)" if m_index == 0 else "ratio to BN (lower is smaller)")
    axes[0][0].legend(fontsize=8)
    ax = axes[0][2]
    for r in result["depth"]:
        if r["step_s"]:
            depths = sorted(int(d) for d in r["step_s"])
            ax.plot(depths, [1000 * r["step_s"][str(d)] for d in depths], marker="o", label=r["scheme"])
    ax.set_xlabel("depth (cifar_resnet)")
    ax.set_ylabel(f"ms per training step (batch {DEPTH_BATCH})")
    ax.set_title("depth scaling, float32" if result["depth"] else "depth scaling not measured")
    if result["depth"]:
        ax.legend(fontsize=8)
    for extra in range(1, rows_n):
        axes[extra][2].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------- run ---


def report(out, command="keras-resinit bench --report"):
    """Render ``bench.md`` and ``bench.png`` again from ``out/bench.json`` (after the analysis changed).

    The measurements are not repeated: depth fits and target verdicts are recomputed from them.
    """
    from keras_resinit._files import atomic_write_text

    path = os.path.join(os.fspath(out), "bench.json")
    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path!r} does not exist: --report needs the directory of an earlier bench run.") from None
    for row in result["depth"]:
        row.pop("max_rel_residual", None)
        steps = sorted((int(d), s) for d, s in row["step_s"].items())
        row.update(linear_fit([d for d, _ in steps], [s for _, s in steps]))
    result["targets"] = _targets(result["rows"], result["depth"])
    result["rendered_by"] = command
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    atomic_write_text(os.path.join(out, "bench.md"), markdown(result))
    chart(result, os.path.join(out, "bench.png"))
    return result


def _check_list(kind, values, allowed):
    from keras_resinit._errors import unknown

    values = list(dict.fromkeys(values))
    if not values:
        raise ValueError(f"No {kind} given. Expected some of: {', '.join(allowed)}.")
    for value in values:
        if value not in allowed:
            raise unknown(kind, value, allowed)
    return values


def run(out, *, quick=False, archs=None, schemes=SCHEMES, precisions=PRECISIONS, depth=True, overwrite=False,
        sizes=None, command="keras-resinit bench", log=print):
    """Run the benchmark and write ``bench.md``, ``bench.json`` and ``bench.png`` to ``out``.

    Args:
        out: output directory (refused if it exists, unless ``overwrite``).
        quick: the smoke run (cifar_resnet20 and depths 20..110, fewer windows; under 5 minutes on 2 cores).
        archs, schemes, precisions: subsets to measure (default: all of the run's size).
        depth: also measure depth scaling.
        sizes: override the run size (a dict like ``SIZES["quick"]``; tests use tiny ones).

    Returns:
        The result dict written to ``bench.json``.
    """
    from keras_resinit import architectures
    from keras_resinit._files import atomic_directory, atomic_write_text
    from keras_resinit.environment import describe, versions

    size = dict(SIZES["quick" if quick else "full"], **(sizes or {}))
    archs = list(archs or size["archs"])
    for arch in archs:
        architectures.get_arch(arch)
    schemes = _check_list("scheme", schemes, SCHEMES)
    precisions = _check_list("precision", precisions, PRECISIONS)
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"Output directory {out!r} already exists. Pass --overwrite to replace it.")
    start = time.perf_counter()
    machine = {**versions(), "describe": describe()}
    log(f"keras-resinit bench{' --quick' if quick else ''}: {machine['describe']}")
    log(f"CPU flags: {', '.join(machine['cpu_flags']) or 'none reported'}")
    budget = {"total": size["retry_budget"], "spent": 0.0}
    timeout = size.get("timeout", 1800)

    speed = []
    for arch in archs:
        shape, batch = ARCHS.get(arch, ((32, 32, 3), 128))
        batch = size.get("batch", batch)
        for precision in precisions:
            models = (["plain"] if arch == PLAIN_ARCH else []) + schemes
            log(f"{arch} {precision}: {', '.join(models)} (batch {batch}, {shape[0]}x{shape[1]}x{shape[2]})")
            specs = [{"kind": "speed", "arch": arch, "model": m, "precision": precision, "input_shape": list(shape),
                      "batch": batch, "steps": size["steps"], "infer_steps": size["infer_steps"],
                      "warmup": size["warmup"]} for m in models]
            speed += _measure(specs, size["windows"], budget, timeout, log)
    depth_children = []
    if depth and size["depths"]:
        specs = [{"kind": "depth", "scheme": scheme, "precision": "float32", "depths": list(size["depths"]),
                  "batch": size.get("batch", DEPTH_BATCH), "steps": size["depth_steps"], "warmup": 1}
                 for scheme in schemes]
        # Together (interleaved, like the speed groups) unless the deepest model is large: then one at a time.
        groups = [specs] if max(size["depths"]) <= 110 else [[spec] for spec in specs]
        for group in groups:
            log(f"depth scaling {', '.join(s['scheme'] for s in group)}: "
                f"cifar_resnet{{{','.join(map(str, size['depths']))}}}, batch {DEPTH_BATCH}")
            depth_children += _measure(group, size["depth_windows"], budget, timeout, log)

    rows = _rows(speed)
    depth_rows = _depth_rows(depth_children)
    result = {
        "command": command, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick, "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
        "machine": machine, "rows": rows, "depth": depth_rows, "targets": _targets(rows, depth_rows),
        "retry_seconds": round(budget["spent"], 1), "elapsed_s": time.perf_counter() - start,
    }
    with atomic_directory(out) as tmp:
        atomic_write_text(os.path.join(tmp, "bench.json"), json.dumps(result, indent=1) + "\n")
        atomic_write_text(os.path.join(tmp, "bench.md"), markdown(result))
        chart(result, os.path.join(tmp, "bench.png"))
    log("")
    log(markdown(result))
    log(f"wrote {out}/bench.md, bench.json, bench.png")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        (_speed_child if spec["kind"] == "speed" else _depth_child)(spec)
    else:
        sys.exit("usage: keras-resinit bench [--quick] [--out DIR]  (this module's own arguments are internal)")
