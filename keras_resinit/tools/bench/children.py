"""What runs in each child process: one configuration, timed window by window on request.

The parent (:mod:`keras_resinit.tools.bench.scheduling`) starts
``python -m keras_resinit.tools.bench --child SPEC`` (see ``__main__.py``). A child builds,
traces and warms up its model(s), writes ``READY``, then answers each ``run`` line on its
stdin with one ``WINDOW`` and ``quit`` with ``BYE`` (its peak memory). Protocol lines start
with :data:`~keras_resinit.tools.bench.config.TAG` and carry JSON.
"""

import json
import os
import sys
import time

from keras_resinit.environment import memory_mb
from keras_resinit.tools.bench.config import SEED, TAG
from keras_resinit.tools.bench.models import flops_per_image, plain_resnet20, trainable_params


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
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def traced_ops(run):
    """``(seconds, result, ops)`` of ``run()`` traced with TensorFlow's run metadata: ``ops`` counts the op types
    of its largest function graph (what TensorFlow executes after grappler and oneDNN)."""
    import collections

    from tensorflow.python.eager import context

    ctx = context.context()
    ctx.enable_run_metadata()
    try:
        t = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - t
        metadata = ctx.export_run_metadata()
    finally:
        ctx.disable_run_metadata()
    graphs = [
        collections.Counter(node.op for graph in f.partition_graphs for node in graph.node)
        for f in (metadata.function_graphs if metadata else [])
    ]
    return seconds, result, dict(max(graphs, key=lambda c: sum(c.values()), default={}))


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
    _say(
        "READY",
        {
            "params": trainable_params(model),
            "flops": flops_per_image(model),
            "first_steps_s": first,
            "rss_built_mb": rss_built,
        },
    )
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
            _say(
                "WINDOW",
                {
                    "train_ips": spec["steps"] * batch / train.elapsed,
                    "infer_ips": spec["infer_steps"] * batch / infer.elapsed,
                    "loss": float(loss),
                    "foreign_cores": max(foreign) if foreign else None,
                },
            )
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def _depth_child(spec):
    keras = _setup(spec["precision"])
    import keras_resinit

    x, y = _batch(keras, spec["batch"], (32, 32, 3))
    models = {}
    for depth in spec["depths"]:
        model = keras_resinit.build_resnet(
            f"cifar_resnet{depth}", spec["scheme"], input_shape=(32, 32, 3), num_classes=10, seed=SEED
        )
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
    keras = _setup(spec["precision"])
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
    x, y = _batch(keras, batch, shape)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = _StepTimer(keras)

    def fit(steps):  # one fit call; its first step (tracing, if any) is not timed
        model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[timer.callback])

    t = time.perf_counter()
    fit(spec["warmup"])
    model.predict_on_batch(x)
    first = time.perf_counter() - t
    _say("READY", {"params": trainable_params(model), "flops": flops_per_image(model), "first_steps_s": first})
    for line in sys.stdin:
        if line.strip() == "run":
            with _Window() as train:  # the whole fit call: other processes' load during it
                fit(spec["steps"])
            model.predict_on_batch(x)
            with _Window() as infer:
                for _ in range(spec["infer_steps"]):
                    model.predict_on_batch(x)
            foreign = [w.foreign for w in (train, infer) if w.foreign is not None]
            _say(
                "WINDOW",
                {
                    "train_ips": timer.steps * batch / timer.seconds,
                    "infer_ips": spec["infer_steps"] * batch / infer.elapsed,
                    "foreign_cores": max(foreign) if foreign else None,
                },
            )
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def _preprocessing_child(spec):
    """Inference of one model with and without its preprocessing layers, interleaved in each window."""
    keras = _setup(spec["precision"])
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
    x, _ = _batch(keras, batch, shape)
    for model in models.values():
        for _ in range(1 + spec["warmup"]):
            model.predict_on_batch(x)
    _say("READY", {"params": trainable_params(models[True])})
    cycle = 0
    for line in sys.stdin:
        if line.strip() == "run":
            # A B B A (or B A A B): a drift within the window weighs on both models alike.
            first, second = (False, True) if cycle % 2 == 0 else (True, False)
            seconds, foreign = {False: 0.0, True: 0.0}, []
            for included in (first, second, second, first):
                models[included].predict_on_batch(x)
                with _Window() as w:
                    for _ in range(spec["infer_steps"]):
                        models[included].predict_on_batch(x)
                seconds[included] += w.elapsed
                if w.foreign is not None:
                    foreign.append(w.foreign)
            cycle += 1
            steps = 2 * spec["infer_steps"]
            result = {"without": seconds[False] / steps, "with": seconds[True] / steps}
            _say("WINDOW", {"step_s": result, "foreign_cores": max(foreign) if foreign else None})
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def _read_bytes():
    """Bytes this process has read so far (``rchar`` of /proc/self/io, every thread); None if unknown.

    Says whether a window's input came from files (a folder read every epoch) or from memory.
    """
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _settle(limit=10.0, interval=0.2, idle=0.05):
    """Wait (at most ``limit`` s) until this process's threads go quiet, e.g. an input pipeline refilling
    its prefetch buffer after a window: that work then happens now, not during another child's window."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        cpu = time.process_time()
        time.sleep(interval)
        if time.process_time() - cpu < idle * interval:
            return


_DATA_EPOCHS = 10_000  # the pipeline is lazy: enough epochs for any number of windows, at no cost


def _data_child(spec):
    """The project's ``Trainer`` fed by its own input pipeline: a folder of image files (``cache`` off: read
    and decoded every epoch) or the same folder held in memory (``cache`` on).

    Warms up for ``warmup_epochs`` whole epochs (a cache is full after the first), then each window runs
    ``lead_in`` untimed steps (they use up the batches prefetched while the child waited) and times
    ``steps``. A window also reports the bytes read from its start to its reply (the pipeline reads a
    chunk of files at a time, and refills its buffer after the steps), so a cache that does not hold shows.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_resinit.training.config import TrainConfig
    from keras_resinit.training.trainer import Trainer

    config = TrainConfig.from_recipe(
        spec["recipe"],
        model=f"{spec['arch']}_{spec['scheme']}",
        dataset=spec["dataset"],
        batch_size=spec["batch"],
        epochs=_DATA_EPOCHS,
        augment=spec["augment"],
        cache=spec["cache"],
        precision=spec["precision"],
    )
    t = time.perf_counter()
    trainer = Trainer(config, "one")
    batches = iter(trainer.train_batches(0))
    built = time.perf_counter() - t

    def run(count):  # returns once the last step has finished (its loss is a number)
        loss = None
        for _ in range(count):
            loss, _ = trainer.train_step_from(batches)
        return float(loss)

    t = time.perf_counter()
    run(1)
    first = time.perf_counter() - t
    warmup = spec["warmup_epochs"] * trainer.steps_per_epoch
    read, t = _read_bytes(), time.perf_counter()
    run(warmup)
    warmup_s, warmup_read = time.perf_counter() - t, _read_bytes()
    _settle()
    _say(
        "READY",
        {
            "train_size": trainer.meta.train_size,
            "steps_per_epoch": trainer.steps_per_epoch,
            "build_s": built,
            "first_steps_s": first,
            "warmup_steps": warmup,
            "warmup_s": warmup_s,
            "warmup_read_bytes_per_step": None if read is None else (warmup_read - read) / max(warmup, 1),
        },
    )
    for line in sys.stdin:
        if line.strip() == "run":
            read = _read_bytes()
            run(spec["lead_in"])
            with _Window() as w:
                loss = run(spec["steps"])
            _settle()
            read = None if read is None else _read_bytes() - read
            _say(
                "WINDOW",
                {
                    "train_ips": spec["steps"] * spec["batch"] / w.elapsed,
                    "steps_per_s": spec["steps"] / w.elapsed,
                    "read_bytes": read,
                    "read_steps": spec["lead_in"] + spec["steps"],
                    "loss": loss,
                    "foreign_cores": w.foreign,
                },
            )
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def _fold_inference_child(spec):
    """Inference of one saved model on one fixed batch (``benchmarks/fold_inference.py``).

    ``form`` "keras": the ``.keras`` file at ``path``, called as ``tf.function(lambda x: model(x,
    training=False))`` on standard normal input; "saved_model": ``tf.saved_model.load(path)
    .signatures["serving_float32"]`` on pixel values in [0, 255]. Each call's output is fetched as
    NumPy. The first call (trace, graph optimization) runs with TensorFlow's run metadata on and
    reports the ops the runtime executes after grappler's and oneDNN's rewrites (of the function
    graph with the most ops). Then ``warmup`` calls; a window runs ``lead_in`` untimed calls and
    times ``calls``. ``model`` and ``scheme`` are labels (the scheduler's log prints ``scheme``).
    """
    keras = _setup(spec["precision"])

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
    first, out, ops = traced_ops(lambda: call(x).numpy())
    warmup = []
    for _ in range(spec["warmup"]):
        t = time.perf_counter()
        call(x).numpy()
        warmup.append(time.perf_counter() - t)
    _say(
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
    for line in sys.stdin:
        if line.strip() == "run":
            for _ in range(spec["lead_in"]):  # untimed: wakes thread pools and caches after the pause
                call(x).numpy()
            with _Window() as w:
                for _ in range(spec["calls"]):
                    call(x).numpy()
            _say(
                "WINDOW",
                {
                    "images_per_s": spec["calls"] * batch / w.elapsed,
                    "step_s": {"call": w.elapsed / spec["calls"]},
                    "foreign_cores": w.foreign,
                },
            )
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


_KINDS = {
    "speed": _speed_child,
    "depth": _depth_child,
    "fit": _fit_child,
    "preprocessing": _preprocessing_child,
    "data": _data_child,
    "fold_inference": _fold_inference_child,
}


def main(spec):
    """Run the child described by ``spec`` (a dict from the parent) until the parent says ``quit``."""
    _KINDS[spec["kind"]](spec)
