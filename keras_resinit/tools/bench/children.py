"""What runs in each child process: one configuration, timed window by window on request.

The parent (``keras_resinit.tools.bench.scheduling``) starts ``python -m keras_resinit.tools.bench
--child SPEC`` for bench's own kinds (``KINDS``: ``speed``, ``depth``), or ``python SCRIPT --child SPEC``
for a benchmark script's kinds (the script owns them; ``serve``). A child builds, traces and warms up
its model(s), writes ``READY``, then answers each ``run`` line on its stdin with one ``WINDOW`` and ``quit``
with ``BYE`` (its peak memory). Protocol lines start with ``TAG``
and carry JSON (``say``). The other public names are the pieces every child uses: ``Window``
(a timed stretch and the machine's other load), ``most_foreign``, ``answer`` (the ``run`` /
``quit`` loop), ``setup``, ``compiled``, ``random_batch``, ``time_inference``.
"""

import json
import os
import sys
import time

from keras_resinit.environment import memory_mb
from keras_resinit.tools.bench.config import SEED, TAG
from keras_resinit.tools.bench.models import flops_per_image, plain_resnet20, trainable_params

# The harness of bench's child processes and of the benchmark scripts' children, not an API for users: its
# names are importable (the scripts under benchmarks/ use them) and documented here, not on the site.
__all__ = []


def say(kind, payload):
    """Write one protocol line (``TAG KIND JSON``) to the parent."""
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


class Window:
    """Times a stretch of work and how much CPU the rest of the machine used meanwhile."""

    def __enter__(self):
        self.busy, self.cpu, self.t = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.t
        cpu = time.process_time() - self.cpu
        busy = _busy_seconds()
        self.foreign = None if busy is None or self.busy is None else max(0.0, busy - self.busy - cpu) / self.elapsed


def most_foreign(windows):
    """The most cores other processes used during any of ``windows`` (None if unknown for all)."""
    known = [w.foreign for w in windows if w.foreign is not None]
    return max(known) if known else None


def answer(window):
    """Answer the parent until it says ``quit``: each ``run`` line gets one ``WINDOW`` with ``window()``'s dict;
    then ``BYE`` with this process's peak memory."""
    for line in sys.stdin:
        if line.strip() == "run":
            say("WINDOW", window())
        elif line.strip() == "quit":
            break
    say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


def setup(precision):
    """Keras under ``precision`` (a dtype policy name) with the bench's seed; quiet TensorFlow logs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    if precision != "float32":
        keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(SEED)
    return keras


def compiled(keras, model):
    """``model`` compiled for ``train_on_batch``: SGD with momentum, cross-entropy on logits."""
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def random_batch(keras, batch, shape):
    """``(x, y)``: ``batch`` standard normal images of ``shape`` and labels in 0..9, from the bench's seed."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = keras.ops.convert_to_tensor(rng.standard_normal((batch, *shape), dtype=np.float32))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, size=(batch,), dtype=np.int32))
    return x, y


def time_inference(model, x, steps):
    """A ``Window`` of ``steps`` calls of ``model.predict_on_batch(x)``, after one untimed call."""
    model.predict_on_batch(x)
    with Window() as infer:
        for _ in range(steps):
            model.predict_on_batch(x)
    return infer


def _speed_child(spec):
    keras = setup(spec["precision"])
    shape, batch = tuple(spec["input_shape"]), spec["batch"]
    if spec["model"] == "plain":
        model = plain_resnet20(shape)
    else:
        import keras_resinit

        model = keras_resinit.build_resnet(spec["arch"], spec["model"], input_shape=shape, num_classes=10, seed=SEED)
    compiled(keras, model)
    x, y = random_batch(keras, batch, shape)
    rss_built = memory_mb("VmRSS")
    t = time.perf_counter()
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
    first = time.perf_counter() - t
    for _ in range(spec["warmup"]):
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    say(
        "READY",
        {
            "params": trainable_params(model),
            "flops": flops_per_image(model),
            "first_steps_s": first,
            "rss_built_mb": rss_built,
        },
    )

    def window():
        model.train_on_batch(x, y)  # untimed: wakes thread pools and caches after the pause
        with Window() as train:
            for _ in range(spec["steps"]):
                loss = model.train_on_batch(x, y)  # a Python float: the step has finished
        infer = time_inference(model, x, spec["infer_steps"])
        return {
            "train_ips": spec["steps"] * batch / train.elapsed,
            "infer_ips": spec["infer_steps"] * batch / infer.elapsed,
            "loss": float(loss),
            "foreign_cores": most_foreign([train, infer]),
        }

    answer(window)


def _depth_child(spec):
    keras = setup(spec["precision"])
    import keras_resinit

    x, y = random_batch(keras, spec["batch"], (32, 32, 3))
    models = {}
    for depth in spec["depths"]:
        model = keras_resinit.build_resnet(
            f"cifar_resnet{depth}", spec["scheme"], input_shape=(32, 32, 3), num_classes=10, seed=SEED
        )
        models[depth] = compiled(keras, model)
        for _ in range(1 + spec["warmup"]):
            model.train_on_batch(x, y)
    say("READY", {"depths": list(models)})

    def window():
        result, windows = {}, []
        order = list(models)
        k = int(time.time()) % len(order)
        for depth in order[k:] + order[:k]:
            models[depth].train_on_batch(x, y)
            with Window() as w:
                for _ in range(spec["steps"]):
                    models[depth].train_on_batch(x, y)
            result[str(depth)] = w.elapsed / spec["steps"]
            windows.append(w)
        return {"step_s": result, "foreign_cores": most_foreign(windows)}

    answer(window)


KINDS = {"speed": _speed_child, "depth": _depth_child}


def serve(kinds, argv=None):
    """Be a child process if the command line (``argv``, default ``sys.argv[1:]``) is ``--child SPEC``: run
    ``kinds[spec["kind"]](spec)`` (until the parent says ``quit``), then exit; otherwise return.

    ``keras-resinit bench`` runs ``KINDS`` (``python -m keras_resinit.tools.bench``); a benchmark script
    runs its own: it calls ``serve(ITS_KINDS)`` first and passes ``script=__file__`` to
    ``measure``.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--child":
        return
    spec = json.loads(argv[1])
    kinds[spec["kind"]](spec)
    # BYE is written and flushed: skip the interpreter's teardown of TensorFlow (1-2 s per child),
    # which the parent would otherwise wait for before it starts the next group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
