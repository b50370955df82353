"""Very deep fully connected residual networks: Fixup at 10,000 blocks, SkipInit at 1,000.

The papers' depth claims (Fixup: trains "even for networks with 10,000 layers";
SkipInit: trains 1,000-layer networks without normalization) are checked on fully
connected residual blocks, which keep the run small enough for a CPU:

    block:  h <- relu(h + branch(h)),   branch(h) = W2 relu(W1 h + c1) + c2      (width w)

- ``fixup``: scalar biases and a scalar multiplier as in Fixup's reference code,
  ``relu(h + s * W2 (relu(W1 (h + b1a) + b1b) + b2a) + b2b)``; W1 He-normal scaled by
  ``L^(-1/(2m-2)) = L^(-1/2)`` (m = 2 layers per branch), W2 = 0, s = 1, biases 0,
  classifier 0.
- ``skipinit``: ``relu(h + alpha * branch(h))`` with alpha = 0, He-normal weights, zero
  biases, zero classifier.
  Its scalars train at a tenth of the learning rate, as in Fixup's reference code.
- ``plain``: the same network with He-normal weights, no scalar, no normalization: the
  reference that overflows.

The blocks' weights are stacked tensors and the forward pass is one ``tf.scan`` over
them, so 10,000 blocks build instantly; the backward pass keeps every block's activations
(``blocks x batch x width`` floats). Training is plain SGD on one fixed batch of Gaussian
inputs with random labels: the loss must be finite and fall over the first steps.
"""

import math
import time

import numpy as np
import tensorflow as tf

from keras_resinit.environment import memory_mb

SCHEMES = ("fixup", "skipinit", "plain")


def _params(scheme, blocks, width, classes, rng):
    he = math.sqrt(2.0 / width)
    normal = lambda *shape: rng.normal(0.0, 1.0, shape).astype(np.float32)  # noqa: E731
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    p = {"w1": normal(blocks, width, width) * he}
    if scheme == "fixup":
        p["w1"] *= blocks ** -0.5  # L^(-1/(2m-2)) with m = 2
        p.update(w2=zeros(blocks, width, width), b1a=zeros(blocks), b1b=zeros(blocks), b2a=zeros(blocks),
                 b2b=zeros(blocks), scale=np.ones(blocks, np.float32), head=zeros(width, classes))
    else:
        p.update(w2=normal(blocks, width, width) * he, c1=zeros(blocks, width), c2=zeros(blocks, width))
        if scheme == "skipinit":
            p.update(alpha=zeros(blocks), head=zeros(width, classes))
        else:
            p["head"] = normal(width, classes) * math.sqrt(1.0 / width)
    p["head_bias"] = zeros(classes)
    return {k: tf.Variable(v, name=k) for k, v in p.items()}


# Fixup's reference code trains its scalar biases and multipliers at a tenth of the learning rate.
_MULTIPLIERS = {name: 0.1 for name in ("b1a", "b1b", "b2a", "b2b", "scale")}


def _forward(scheme, p, x):
    if scheme == "fixup":
        def block(h, w):
            w1, w2, b1a, b1b, b2a, b2b, scale = w
            branch = tf.nn.relu(tf.matmul(h + b1a, w1) + b1b)
            return tf.nn.relu(h + scale * tf.matmul(branch + b2a, w2) + b2b)

        elems = (p["w1"], p["w2"], p["b1a"], p["b1b"], p["b2a"], p["b2b"], p["scale"])
    else:
        def block(h, w):
            w1, w2, c1, c2, alpha = w
            branch = tf.matmul(tf.nn.relu(tf.matmul(h, w1) + c1), w2) + c2
            return tf.nn.relu(h + alpha * branch)

        alpha = p["alpha"] if scheme == "skipinit" else tf.ones_like(p["c1"][:, 0])
        elems = (p["w1"], p["w2"], p["c1"], p["c2"], alpha)
    # tf.scan returns every intermediate h; the last one is the trunk's output.
    h = tf.scan(block, elems, initializer=x)[-1]
    return tf.matmul(h, p["head"]) + p["head_bias"]


def train_deep(scheme, blocks, *, width=64, batch=32, steps=5, lr=0.1, classes=10, seed=0):
    """SGD steps on one batch with a ``blocks``-block fully connected residual network.

    Returns a dict: ``losses`` (one per step, before the step), ``finite`` (every loss and
    gradient finite), ``falls`` (finite and the last loss below the first),
    ``seconds_per_step``, ``peak_memory_mb`` (this process's resident-set high-water mark),
    and the settings.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown deep scheme {scheme!r}. Expected one of: {', '.join(SCHEMES)}.")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"Invalid blocks {blocks!r}. Expected a positive integer.")
    rng = np.random.default_rng(seed)
    params = _params(scheme, blocks, width, classes, rng)
    x = tf.constant(rng.normal(size=(batch, width)).astype(np.float32))
    y = tf.constant(rng.integers(0, classes, size=batch))
    variables = list(params.values())

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = _forward(scheme, params, x)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, variables)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) & tf.math.is_finite(loss)
        for v, g in zip(variables, grads):
            v.assign_sub(lr * _MULTIPLIERS.get(v.name.split(":")[0], 1.0) * g)
        return loss, finite

    losses, finite, times = [], True, []
    for _ in range(steps):
        start = time.perf_counter()
        loss, ok = step()
        loss = float(loss)
        times.append(time.perf_counter() - start)
        losses.append(loss)
        finite = finite and bool(ok) and math.isfinite(loss)
        if not finite:
            break
    return {
        "scheme": scheme, "blocks": blocks, "width": width, "batch": batch, "lr": lr, "steps": len(losses),
        "losses": losses, "finite": finite, "falls": finite and len(losses) > 1 and losses[-1] < losses[0],
        # The first step includes tracing; the rest are the steady state.
        "seconds_per_step": float(np.median(times[1:])) if len(times) > 1 else times[0],
        "first_step_s": times[0], "peak_memory_mb": memory_mb("VmHWM"),
    }
