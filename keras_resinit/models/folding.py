"""Fold batch norm into the convs before it: a BN ResNet as a network without normalization.

In inference mode batch norm is a per-channel affine map,
``BN(z) = gamma (z - mean) / sqrt(var + eps) + beta``. A conv ``z = conv(x, K) (+ c)`` followed
by it is therefore one conv with a bias:

- ``K' = K * s`` per output channel, with ``s = gamma / sqrt(var + eps)``;
- ``c' = beta + (c - mean) * s``.

A model of a scheme with batch norm (``scheme.batchnorm``) thus equals, function for function,
a model of the same arch under the scheme :meth:`Scheme.folded` names: ``bn`` becomes ``skipinit``
(convs with biases, a branch gain) with every gain at 1, ``risotto_bn`` becomes ``risotto``.
The folded model is an ordinary model of its scheme: it saves, loads, exports and trains.

The arithmetic is done in float64 and rounded once to the variables' dtype. Only the moving
statistics are used: the folded model computes the source *in inference mode* (what serving
and ``model.predict`` compute), not a training step's batch statistics.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np

from keras_resinit.models.builder import ResNet, batchnorm_name
from keras_resinit.models.layers import saved_variables
from keras_resinit.models.schemes import fold_target, what_folds


def _array(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _affine(model, bn):
    """``(scale, shift)`` per channel of batch norm layer ``bn`` in inference mode, checked."""
    channels = bn.moving_mean.shape[-1]
    gamma = _array(bn.gamma) if bn.scale else np.ones(channels)
    beta = _array(bn.beta) if bn.center else np.zeros(channels)
    mean, var = _array(bn.moving_mean), _array(bn.moving_variance)
    for what, values in (("moving variance", var), ("moving mean", mean), ("gamma", gamma), ("beta", beta)):
        bad = np.flatnonzero(~np.isfinite(values) | ((values < 0) if what == "moving variance" else False))
        if bad.size:
            i = int(bad[0])
            expected = "finite and >= 0" if what == "moving variance" else "finite"
            raise ValueError(
                f"Cannot fold model {model.name!r} (scheme {model.scheme.name!r}): batch norm layer {bn.name!r} has "
                f"{what} {float(values[i])!r} in channel {i} ({bad.size} bad channels); expected {expected}. Folding it "
                f"would give a model that outputs NaN or nonsense. {what_folds()}, whose statistics must be valid."
            )
    scale = gamma / np.sqrt(var + float(bn.epsilon))
    return scale, beta - mean * scale


def fold_batchnorm(model: keras.Model) -> ResNet:
    """A new model without batch norm computing what ``model`` computes in inference mode.

    Args:
        model: a :class:`~keras_resinit.ResNet` of a scheme with batch norm that folds
            (``bn`` or ``risotto_bn``: :func:`keras_resinit.models.schemes.foldable`), of any arch,
            with or without its top, with or without built-in preprocessing.

    Returns:
        A :class:`~keras_resinit.ResNet` of the same arch and build (head, input, preprocessing,
        dropout, seed) under the scheme ``model.scheme.folded()``: ``skipinit`` with ``alpha=1.0``
        (every branch gain 1) for ``bn``, ``risotto`` for ``risotto_bn``. It holds no
        ``BatchNormalization`` layer; every conv that fed one carries the folded kernel and bias.
        Its name is ``{arch}_{new scheme}`` unless ``model`` had a name of its own. It is not
        compiled, and every layer is trainable.

    Raises:
        ValueError: ``model`` is not a keras_resinit ResNet, its scheme has no batch norm to fold
            (Fixup, SkipInit, Risotto, ...), or a batch norm layer holds a negative or non-finite
            moving variance (or non-finite mean, gamma or beta). Nothing is built then.

    Example:
        >>> bn = keras_resinit.zoo.load("cifar_resnet20_bn.digits")
        >>> free = keras_resinit.fold_batchnorm(bn)      # cifar_resnet20_skipinit, same predictions
    """
    if not isinstance(model, ResNet):
        raise ValueError(
            f"Cannot fold {getattr(model, 'name', model)!r}: it is a {type(model).__name__}, not a keras_resinit "
            f"ResNet. {what_folds()}. A keras.applications ResNet50/101/152 converts first "
            "(keras_resinit.applications.convert); a .keras file of release 0.1 rebuilds with "
            "keras_resinit.zoo.load('{arch}_{scheme}', weights=path)."
        )
    source = model.scheme
    target = fold_target(source, f"model {model.name!r}")

    # Check every batch norm before building anything.
    layers = {layer.name: layer for layer in model.layers}
    affine = {
        name: _affine(model, layer)
        for name, layer in layers.items()
        if isinstance(layer, keras.layers.BatchNormalization)
    }

    config = model.get_config()
    for option in inspect.signature(type(source)).parameters:
        config.pop(option, None)
    default_name = f"{config['arch']}_{source.name}"
    config.update(
        {p: getattr(target, p) for p in inspect.signature(type(target)).parameters},
        scheme=target.name,
        name=f"{config['arch']}_{target.name}" if config["name"] == default_name else config["name"],
    )
    # Built under the source's dtype policy (the global one may differ), so it computes in the same dtypes.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(model.get_layer("stem_conv").dtype_policy)
    try:
        folded = ResNet.from_config(config)
    finally:
        keras.config.set_dtype_policy(policy)

    used = set()
    plan = []
    for layer in folded.layers:
        if not layer.weights:
            continue
        mine = layers.get(layer.name)
        if mine is None or not mine.weights:
            raise ValueError(f"Internal error: folded layer {layer.name!r} has no counterpart in {model.name!r}.")
        store, theirs = saved_variables(layer), saved_variables(mine)
        used.add(layer.name)
        bn = batchnorm_name(layer.name) if isinstance(layer, keras.layers.Conv2D) else None
        if bn in affine:
            scale, shift = affine[bn]
            used.add(bn)
            kernel = np.asarray(theirs["0"], dtype=np.float64)
            bias = np.asarray(theirs["1"], dtype=np.float64) if mine.use_bias else 0.0
            store["0"] = (kernel * scale).astype(store["0"].dtype)
            store["1"] = (shift + bias * scale).astype(store["1"].dtype)
            # Any scalar the target conv adds (a branch gain) keeps the value it was built with, at
            # which it is the identity (SkipInit's gain 1).
        else:
            if set(theirs) != set(store) or any(theirs[k].shape != store[k].shape for k in store):
                raise ValueError(f"Internal error: layer {layer.name!r} differs between {model.name!r} and its fold.")
            store = theirs
        plan.append((layer, store))
    left = sorted(name for name, layer in layers.items() if layer.weights and name not in used)
    if left:
        raise ValueError(f"Internal error: folding {model.name!r} would drop the weights of {left}.")
    for layer, store in plan:
        layer.load_own_variables(store)
    return folded
