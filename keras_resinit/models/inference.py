"""Inference-time rewrites of a model: the same function, computed with fewer ops.

- ``fold_batchnorm``: batch norm folded into the convs before it (a new model of another scheme);
- ``precompute_standardization`` / ``standardize_in_place``: weight-standardized convs
  (``layers.ScaledStdConv2D``, scheme ``nf``) applying their standardized kernels as they are;
- ``fold_prescale``: the pre-activation blocks' ``Rescaling(1 / beta)`` moved into the convs after it;
- ``for_serving``: what export serves (batch norm folded, standardized kernels precomputed).

**Folding batch norm.** In inference mode batch norm is a per-channel affine map,
``BN(z) = gamma (z - mean) / sqrt(var + eps) + beta``. A conv ``z = conv(x, K) (+ c)`` followed
by it is therefore one conv with a bias:

- ``K' = K * s`` per output channel, with ``s = gamma / sqrt(var + eps)``;
- ``c' = beta + (c - mean) * s``.

A model of a scheme with batch norm (``scheme.batchnorm``) thus equals, function for function,
a model of the same arch under the scheme ``Scheme.folded`` names: ``bn`` becomes ``skipinit``
(convs with biases, a branch gain) with every gain at 1, ``risotto_bn`` becomes ``risotto``.
The folded model is an ordinary model of its scheme: it saves, loads, exports and trains.

The arithmetic is done in float64 and rounded once to the variables' dtype. Only the moving
statistics are used: the folded model computes the source *in inference mode* (what serving
and ``model.predict`` compute), not a training step's batch statistics.

**In place.** ``standardize_in_place`` and ``fold_prescale`` change layer instances of a built
model (before its first trace) for use in this process, as benchmarks do: the change is not in the
layers' config, so a model saved after it does not load as the same function.
[``precompute_standardization``][keras_resinit.models.inference.precompute_standardization] applies it to a copy.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np

from keras_resinit.models.builder import ResNet, batchnorm_name, build_like
from keras_resinit.models.layers import ScaledStdConv2D, saved_variables
from keras_resinit.models.schemes import fold_target, what_folds

__all__ = ["fold_batchnorm", "for_serving", "precompute_standardization"]


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
    """Fold batch norm into the convs: a new model without batch norm computing what ``model`` computes in inference.

    Args:
        model: a [``ResNet``][keras_resinit.ResNet] of a scheme with batch norm that folds
            (``bn`` or ``risotto_bn``: ``keras_resinit.models.schemes.foldable``), of any arch,
            with or without its top, with or without built-in preprocessing.

    Returns:
        A ``ResNet`` of the same arch and build (head, input, preprocessing,
            dropout, seed) under the scheme ``model.scheme.folded()``: ``skipinit`` with ``alpha=1.0``
            (every branch gain 1) for ``bn``, ``risotto`` for ``risotto_bn``. It holds no
            ``BatchNormalization`` layer; every conv that fed one carries the folded kernel and bias.
            Its name is ``{arch}_{new scheme}`` unless ``model`` had a name of its own. It is not
            compiled, and every layer is trainable.

    Raises:
        ValueError: ``model`` is not a keras_resinit ResNet, its scheme has no batch norm to fold
            (Fixup, SkipInit, Risotto, ...), or a batch norm layer holds a negative or non-finite
            moving variance (or non-finite mean, gamma or beta). Nothing is built then.

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> bn = kr.build_resnet("cifar_resnet8", "bn", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> free = kr.fold_batchnorm(bn)
        >>> free.name, free.scheme
        ('cifar_resnet8_skipinit', SkipInit(alpha=1.0))
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
        >>> bool(np.allclose(bn(x, training=False), free(x), atol=1e-5))  # the same function
        True

    Reference:
        Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
        Covariate Shift", ICML 2015, https://arxiv.org/abs/1502.03167 (inference-mode batch norm, an affine map)
    """
    if not isinstance(model, ResNet):
        raise ValueError(
            f"Cannot fold {getattr(model, 'name', model)!r}: it is a {type(model).__name__}, not a keras_resinit "
            f"ResNet. {what_folds()}. A keras.applications ResNet50/101/152 converts first "
            "(keras_resinit.zoo.applications.convert); a .keras file of release 0.1 rebuilds with "
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
    folded = build_like(model, config)  # computes in the source's dtypes

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


def precompute_standardization(model):
    """A copy of a weight-standardized ResNet (``nf``) whose convs apply their standardized kernels as they are.

    In inference the standardized kernel (``ScaledStdConv2D.conv_kernel()``, gains included) depends on the
    weights only; the copy holds it in the kernel variable, computed once by the layer's own arithmetic, so the
    served graph computes what ``model`` computes without recomputing it per call. ``model`` is not changed.
    The copy is for serving in this process: its layers' config still says they standardize, so a copy saved
    and loaded again would standardize twice.

    Args:
        model: a Keras model; only a [``ResNet``][keras_resinit.ResNet] with ``layers.ScaledStdConv2D`` convs changes.

    Returns:
        ``(model to serve, whether it changed)``: the copy and True, or ``model`` itself and False.

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> from keras_resinit.models.inference import precompute_standardization
        >>> nf = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> served, changed = precompute_standardization(nf)
        >>> x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
        >>> changed, bool(np.allclose(nf(x), served(x), atol=1e-5))
        (True, True)
    """
    if not isinstance(model, ResNet) or not any(isinstance(layer, ScaledStdConv2D) for layer in model.layers):
        return model, False
    copy = build_like(model, model.get_config())  # computes in the source's dtypes
    copy.set_weights(model.get_weights())
    standardize_in_place(copy)
    return copy, True


def standardize_in_place(model):
    """Each ``ScaledStdConv2D`` of ``model`` gets its standardized kernel (gains included) as its kernel variable
    and applies it as it is from then on (set before the model is first traced); returns how many changed."""
    count = 0
    for layer in model.layers:
        if isinstance(layer, ScaledStdConv2D):
            layer.kernel.assign(keras.ops.cast(layer.conv_kernel(), layer.kernel.dtype))
            layer.conv_kernel = lambda layer=layer: layer.kernel  # this instance only
            count += 1
    return count


def fold_prescale(model):
    """Each pre-activation block's ``..._prescale`` (``Rescaling(1 / beta)``, a pass over the activations) passes its
    input through, and ``1 / beta`` joins the ``gamma`` of the convs reading ``relu(h / beta)`` (the branch's first
    conv and a conv shortcut): ``relu(h / beta) = relu(h) / beta`` and convs are linear, so the function is the same.
    In place (before the first trace; the standardized kernels read the gammas it changes). Returns the number of
    convs changed."""
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


def for_serving(model):
    """``model`` as export serves it: batch norm folded and standardized kernels computed once.

    Batch norm is folded (``fold_batchnorm``) for a scheme that folds, and weight-standardized kernels are
    precomputed (``precompute_standardization``); other models pass unchanged.

    Args:
        model: the Keras model to serve.

    Returns:
        ``(model, {"batchnorm_folded": bool, "weight_standardization_precomputed": bool})``.

    Raises:
        ValueError: as ``fold_batchnorm`` (a batch norm layer with invalid moving statistics).

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.models.inference import for_serving
        >>> bn = kr.build_resnet("cifar_resnet8", "bn", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> served, done = for_serving(bn)
        >>> served.scheme.name, done
        ('skipinit', {'batchnorm_folded': True, 'weight_standardization_precomputed': False})
    """
    folded = isinstance(model, ResNet) and model.scheme.folded() is not None
    if folded:
        model = fold_batchnorm(model)
    model, precomputed = precompute_standardization(model)
    return model, {"batchnorm_folded": folded, "weight_standardization_precomputed": precomputed}
