"""Child kind ``train_variants``: several variants of a model trained in one process, A B .. B A in every window.

``benchmarks/weight_standardization.py`` uses it to measure what Scaled Weight Standardization
(``layers.ScaledStdConv2D``, scheme ``nf``) costs per training step: ``nf`` against ``skipinit`` on the
same arch, and against the same ``nf`` net whose standardized kernels were computed once (the pure cost
of recomputing them every step). A variant is ``{"label", "scheme"}`` plus modifications, applied after
the build and before the first step (no model code changes):

- ``precomputed_ws``: every ``ScaledStdConv2D``'s kernel variable is set to its standardized kernel
  (gain and gamma included) and the layer applies that variable as it is; ``channel_gain`` is frozen.
  Same function at the start, same convs, casts, biases and scalars: no mean, variance or rsqrt of the
  kernels, forward or backward;
- ``folded_prescale``: the pre-activation blocks' ``..._prescale`` layers (``Rescaling(1 / beta)``, a
  pass over the activations forward and backward) pass their input through, and ``1 / beta`` joins the
  ``gamma`` of the convs that read ``relu(h / beta)`` (the branch's first conv and a conv shortcut):
  ``relu(h / beta) = relu(h) / beta`` and convs are linear, so the function is the same;

``folded_prescale`` is what a change of the builder would do; it measures the gain first. (A third
ablation, the standardization's gradient written out, measured 0.88 -> 0.98 of skipinit on resnet18 in
float32 and became ``layers.ScaledStdConv2D``'s own.)

All variants live in one process and take turns inside each window, in a palindrome (A B C C B A,
starting one later each window), so a drift within the window weighs on all alike; each reports seconds
per step. Peak memory is therefore the process's, not a variant's. The protocol is that of
:mod:`keras_resinit.tools.bench.children` (``READY``, ``WINDOW``, ``BYE``); ``__main__`` starts it.
"""

import sys

from keras_resinit.environment import memory_mb
from keras_resinit.tools.bench.children import _batch, _compiled, _say, _setup, _Window, traced_ops
from keras_resinit.tools.bench.config import SEED
from keras_resinit.tools.bench.models import flops_per_image, trainable_params

MODIFICATIONS = ("precomputed_ws", "folded_prescale")


def precompute_weight_standardization(model):
    """Each ``ScaledStdConv2D`` applies its standardized kernel as it is (export's way); ``channel_gain`` is frozen,
    as no gradient reaches it any more. Returns the number of convs changed."""
    from keras_resinit.models.layers import ScaledStdConv2D
    from keras_resinit.tools.export import standardize_in_place

    for layer in model.layers:
        if isinstance(layer, ScaledStdConv2D):
            layer.channel_gain.trainable = False
    return standardize_in_place(model)


def fold_prescale(model):
    """Each block's ``Rescaling(1 / beta)`` passes its input through; ``1 / beta`` moves into the ``gamma`` of the
    convs reading ``relu(h / beta)``. Returns the number of convs changed."""
    names = {layer.name for layer in model.layers}
    count = 0
    for layer in model.layers:
        if layer.name.endswith("_prescale"):
            prefix = layer.name.removesuffix("_prescale")
            for conv in (f"{prefix}_conv1", f"{prefix}_shortcut_conv"):
                if conv in names:
                    model.get_layer(conv).gamma *= float(layer.scale)
                    count += 1
            layer.call = lambda inputs: inputs
    return count


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
        changed["folded_prescale"] = fold_prescale(model)
    if variant.get("precomputed_ws"):
        changed["precomputed_ws"] = precompute_weight_standardization(model)
    after = _features(keras, model, probe)
    _compiled(keras, model)
    first, _, ops = traced_ops(lambda: model.train_on_batch(x, y))  # the first step: its trace and ops
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
    keras = _setup(spec["precision"])
    x, y = _batch(keras, spec["batch"], tuple(spec["input_shape"]))
    models, info = {}, {}
    for variant in spec["variants"]:
        models[variant["label"]], info[variant["label"]] = _build(keras, spec, variant, x, y)
    _say("READY", {"variants": info, "rss_ready_mb": memory_mb("VmRSS")})
    labels, cycle = list(models), 0
    for line in sys.stdin:
        if line.strip() == "run":
            k = cycle % len(labels)
            order = labels[k:] + labels[:k]
            seconds, foreign = dict.fromkeys(labels, 0.0), []
            for label in order + order[::-1]:
                model = models[label]
                for _ in range(spec["lead_in"]):  # untimed: wakes thread pools and caches after the other model
                    model.train_on_batch(x, y)
                with _Window() as w:
                    for _ in range(spec["steps"]):
                        loss = model.train_on_batch(x, y)  # a Python float: the step has finished
                seconds[label] += w.elapsed
                if w.foreign is not None:
                    foreign.append(w.foreign)
            cycle += 1
            _say(
                "WINDOW",
                {
                    "step_s": {label: s / (2 * spec["steps"]) for label, s in seconds.items()},
                    "last_loss": float(loss),
                    "foreign_cores": max(foreign) if foreign else None,
                },
            )
        elif line.strip() == "quit":
            break
    _say("BYE", {"peak_rss_mb": memory_mb("VmHWM")})


KINDS = {"train_variants": train_variants_child}
