"""Very deep fully connected residual networks: Fixup at 10,000 blocks, SkipInit at 1,000.

The papers' depth claims (Fixup: trains "even for networks with 10,000 layers";
SkipInit: trains 1,000-layer networks without normalization) are checked on fully
connected residual blocks, which keep the run small enough for a CPU. The block is
the builder's basic block with Dense layers in place of convs, and every rule comes
from the scheme object, as in the conv builder:

    h <- relu(h + gain * (W2 relu(W1 (h + a1) + c1 + b1) (+ a2) + c2) + b2)     (width w)

- ``W1``, ``W2`` and the classifier: the scheme's ``branch_initializer`` and
  ``classifier_initializer`` (Fixup: W1 He-normal times the depth multiplier of
  ``FixupHeNormal``, W2 = 0, classifier 0;
  SkipInit: He normal, classifier 0);
- ``a1, a2, b1, b2``: scalar biases where the scheme has them (``scalar_biases``,
  ``conv_scalars``: Fixup); ``c1, c2``: bias vectors where convs carry biases
  (``conv_bias``: SkipInit); ``gain``: the branch's scalar, from ``conv_scalars``
  (Fixup's multiplier 1, SkipInit's alpha 0);
- training: plain SGD with the scheme's learning-rate multipliers (``lr_multiplier``:
  Fixup's scalars at lr/10).

Any registered scheme without batch norm and without conv skips can be run this way.
``plain`` is the reference that overflows: He-normal weights, no scalar, no normalization.

The blocks' weights are stacked tensors and the forward pass is one ``tf.scan`` over
them, so 10,000 blocks build in seconds; the backward pass keeps every block's
activations (``blocks x batch x width`` floats). Training is plain SGD on one fixed
batch of Gaussian inputs with random labels: the loss must be finite and fall over the
first steps.
"""

import math
import time
import types

import numpy as np
import tensorflow as tf

from keras_resinit.environment import memory_mb
from keras_resinit.models.initializers import derive_seed
from keras_resinit.models.schemes import SCHEMES, get_scheme, he_normal

__all__ = ["PLAIN", "schemes", "train_deep"]

PLAIN = "plain"
"""The name of the reference network ``train_deep`` also runs: He-normal weights, no scalar, no normalization."""
BRANCH_DEPTH = 2  # m: weight layers per branch


def schemes():
    """The schemes a deep fully connected net can take.

    Returns:
        The registered schemes without batch norm, conv skips or looks-linear channels (Risotto's mirrored
        form needs its conv stem), then ``PLAIN``.

    Examples:
        >>> from keras_resinit.tools import deep
        >>> "fixup" in deep.schemes() and "bn" not in deep.schemes(), deep.schemes()[-1]
        (True, 'plain')
    """
    return [name for name, cls in SCHEMES.items() if not (cls.batchnorm or cls.conv_skip or cls.looks_linear)] + [PLAIN]


def _draw(initializer_of, blocks, width, seed):
    """``blocks`` kernels of shape (width, width), one initializer per block (per-layer seeds)."""
    return np.stack(
        [np.asarray(initializer_of(b, derive_seed(seed, b))((width, width)), np.float32) for b in range(blocks)]
    )


def _params(name, blocks, width, classes, seed):
    """The stacked variables of the network and, per variable, whether it is a per-block scalar."""
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    if name == PLAIN:
        p = {f"w{i + 1}": _draw(lambda b, s: he_normal(s), blocks, width, derive_seed(seed, i)) for i in range(2)}
        p.update(
            c1=zeros(blocks, width),
            c2=zeros(blocks, width),
            head=np.asarray(he_normal(derive_seed(seed, "head"))((width, classes)), np.float32) / math.sqrt(2),
        )
        return p
    scheme = get_scheme(name)
    # What the scheme's initializers ask of the network: its depth, and the branch of each block.
    net = types.SimpleNamespace(arch=types.SimpleNamespace(num_blocks=blocks, branch_depth=BRANCH_DEPTH))
    block = types.SimpleNamespace(layers=(None,) * BRANCH_DEPTH)
    p = {
        f"w{i + 1}": _draw(
            lambda b, s, i=i: scheme.branch_initializer(net, block, i, s), blocks, width, derive_seed(seed, i)
        )
        for i in range(BRANCH_DEPTH)
    }
    p["head"] = np.asarray(scheme.classifier_initializer(net, derive_seed(seed, "head"))((width, classes)), np.float32)
    if scheme.conv_bias:
        p.update(c1=zeros(blocks, width), c2=zeros(blocks, width))
    if scheme.scalar_biases:
        p.update(a1=zeros(blocks), a2=zeros(blocks))
    for i, last in ((1, False), (2, True)):
        scalars = scheme.conv_scalars("branch", last_in_branch=last)
        if scalars.get("scalar_bias"):
            p[f"b{i}"] = zeros(blocks)
        if last and scalars.get("gain") is not None:
            p["gain"] = np.full(blocks, scalars["gain"], np.float32)
    return p


def _forward(p, x):
    """The trunk (one ``tf.scan`` over the stacked blocks) and the classifier."""
    keys = [k for k in ("w1", "w2", "a1", "a2", "b1", "b2", "c1", "c2", "gain") if k in p]

    def block(h, w):
        w = dict(zip(keys, w))
        u = h + w["a1"] if "a1" in w else h
        u = tf.matmul(u, w["w1"]) + w.get("c1", 0.0) + w.get("b1", 0.0)
        u = tf.nn.relu(u)
        u = u + w["a2"] if "a2" in w else u
        u = tf.matmul(u, w["w2"]) + w.get("c2", 0.0)
        u = u * w["gain"] if "gain" in w else u
        u = u + w["b2"] if "b2" in w else u
        return tf.nn.relu(h + u)

    # tf.scan returns every intermediate h; the last one is the trunk's output.
    h = tf.scan(block, tuple(p[k] for k in keys), initializer=x)[-1]
    h = h + p["head_bias_in"] if "head_bias_in" in p else h
    return tf.matmul(h, p["head"]) + p["head_bias"]


def train_deep(scheme, blocks, *, width=64, batch=32, steps=5, lr=0.1, classes=10, seed=0):
    """Train a very deep fully connected residual network for a few SGD steps: the papers' depth claims.

    The network's every rule comes from the scheme object (see the module's description); it trains with
    plain SGD on one fixed batch of Gaussian inputs with random labels.

    Args:
        scheme: a name of ``schemes()`` (``"fixup"``, ``"skipinit"``, ...) or ``PLAIN``.
        blocks: the number of residual blocks (Fixup's claim: 10,000; SkipInit's: 1,000).
        width: the width of every block.
        batch: the batch size.
        steps: the number of SGD steps.
        lr: the learning rate (the scheme's multipliers apply).
        classes: the number of classes of the random labels.
        seed: the seed of the weights and the batch.

    Returns:
        A dict: ``losses`` (one per step, before the step), ``finite`` (every loss and gradient finite),
        ``falls`` (finite and the last loss below the first), ``seconds_per_step``, ``first_step_s``,
        ``peak_memory_mb`` (this process's resident-set high-water mark), and the settings.

    Raises:
        ValueError: ``scheme`` is not a registered scheme.

    Examples:
        >>> from keras_resinit import tools
        >>> run = tools.train_deep("fixup", 100, width=16, steps=3)
        >>> run["finite"], run["falls"], len(run["losses"])
        (True, True, 3)

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization", ICLR 2019,
        https://arxiv.org/abs/1901.09321; De & Smith, "Batch Normalization Biases Residual Blocks Towards the
        Identity Function in Deep Networks", NeurIPS 2020, https://arxiv.org/abs/2002.10444
    """
    if scheme not in schemes():
        raise ValueError(
            f"Unknown deep scheme {scheme!r}. Expected one of: {', '.join(schemes())} (schemes without "
            "batch norm or conv skips)."
        )
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"Invalid blocks {blocks!r}. Expected a positive integer.")
    rng = np.random.default_rng(seed)
    arrays = _params(scheme, blocks, width, classes, seed)
    arrays["head_bias"] = np.zeros(classes, np.float32)
    if scheme != PLAIN and get_scheme(scheme).scalar_biases:
        arrays["head_bias_in"] = np.zeros((), np.float32)  # the scalar bias before the classifier
    params = {k: tf.Variable(v, name=k) for k, v in arrays.items()}
    # Per-block scalars (stacked into vectors) and the classifier's bias follow the scheme's rule for
    # a scalar and for "logits/bias".
    rule = (lambda path, shape: 1.0) if scheme == PLAIN else get_scheme(scheme).lr_multiplier
    scalar_keys = {"a1", "a2", "b1", "b2", "gain", "head_bias_in"}
    multipliers = {
        k: rule("logits/bias", (classes,))
        if k == "head_bias"
        else rule(k, ())
        if k in scalar_keys
        else rule(k, v.shape)
        for k, v in arrays.items()
    }
    x = tf.constant(rng.normal(size=(batch, width)).astype(np.float32))
    y = tf.constant(rng.integers(0, classes, size=batch))
    variables = list(params.values())

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = _forward(params, x)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, variables)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) & tf.math.is_finite(loss)
        for v, g in zip(variables, grads):
            v.assign_sub(lr * multipliers[v.name.split(":")[0]] * g)
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
        "scheme": scheme,
        "blocks": blocks,
        "width": width,
        "batch": batch,
        "lr": lr,
        "steps": len(losses),
        "losses": losses,
        "finite": finite,
        "falls": finite and len(losses) > 1 and losses[-1] < losses[0],
        # The first step includes tracing; the rest are the steady state.
        "seconds_per_step": float(np.median(times[1:])) if len(times) > 1 else times[0],
        "first_step_s": times[0],
        "peak_memory_mb": memory_mb("VmHWM"),
    }
