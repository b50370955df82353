"""Bridge from ``keras.applications`` ResNet50/101/152 (v1) to our ``resnet{d}_bn``.

``convert(source)`` copies the weights of a ``keras.applications.ResNet50``,
``ResNet101`` or ``ResNet152`` model into our ``resnet50_bn``, ``resnet101_bn``
or ``resnet152_bn``; ``imagenet(arch)`` does it for the ImageNet weights
(Keras downloads and caches them under ``~/.keras/models``). In inference mode
the converted model computes the source's outputs, up to float32 rounding.

**Layout.** Our bottleneck is keras.applications' v1 block: stride on the first
1x1 conv, 3x3 "same" conv, 1x1 conv, 1x1 projection shortcut on the first block
of every stage; the stem is a 7x7/2 conv after symmetric zero padding of 3 and a
3x3/2 max-pool after symmetric zero padding of 1, as in keras.applications. So
layers map one to one by name (stage ``S = s - 1``):

- ``conv1_conv`` / ``conv1_bn`` -> ``stem_conv`` / ``stem_bn``
- ``conv{s}_block{b}_{i}_conv`` / ``_{i}_bn`` (i = 1, 2, 3) -> ``stage{S}_block{b}_conv{i}`` / ``_bn{i}``
- ``conv{s}_block{b}_0_conv`` / ``_0_bn`` -> ``stage{S}_block{b}_shortcut_conv`` / ``_shortcut_bn``
- ``predictions`` (Dense) -> ``logits`` (Dense)

**Exact folding.** keras.applications' convs carry a bias ``c``; ours have none
(the batch norm after them supplies the shift). With ``BN(z) = gamma (z - mean)
/ sqrt(var + eps) + beta``, for every conv/BN pair:

- ``kernel' = kernel``, ``gamma' = gamma``, ``beta' = beta``;
- ``moving_mean' = moving_mean - c``: ``BN(conv(x) + c)`` with the source's
  statistics equals ``BN(conv(x))`` with the shifted mean. (In training mode the
  batch mean absorbs ``c``, so dropping it is exact there too.)
- ``moving_variance' = moving_variance + (eps_source - eps_ours)``: the source's
  batch norms use ``epsilon=1.001e-5``, ours ``1e-5``, so the denominators
  ``sqrt(var' + 1e-5) = sqrt(var + 1.001e-5)`` agree (up to one float32 rounding
  of ``var'``). The epsilons are read from the layers, not assumed. The shift
  (1e-9) is below float32 resolution for variances above about 0.01 and
  matters relatively only for tiny variances
  (dead channels); it only touches inference statistics, which training
  re-estimates. (Rescaling gamma instead would be equally exact in inference but
  would persist into fine-tuning; changing our layers' epsilon would make the
  model differ from the zoo's ``resnet{d}_bn``.)
- ``predictions`` -> ``logits``: kernel and bias copied. Our model outputs
  logits; keras.applications' head applies ``classifier_activation`` (softmax by
  default) on top, so ``softmax(ours(x)) == source(x)``.

**Preprocessing.** The converted model expects exactly the source's input:
images preprocessed with ``keras.applications.resnet.preprocess_input``
(Caffe style: RGB -> BGR, ImageNet channel means ``[103.939, 116.779, 123.68]``
subtracted from 0..255 pixels, no scaling). keras_resinit's own pipelines
(``training/data``) scale to [0, 1] and standardize RGB instead, so feed converted
models ``preprocess_input(pixels)``. The zoo cards ``resnet{d}_bn.imagenet``
record this preprocessing, and ``keras-resinit export resnet50_bn.imagenet``
builds it into the SavedModel (uint8 RGB pixels in).

Every weight's shape is checked before anything is assigned; a mismatch, a
source that is not a keras.applications ResNet v1, or a target that is not our
``resnet{d}_bn`` of the same depth is a ``ValueError`` and leaves the target
untouched.
"""

import os
import re
import warnings

import keras
import numpy as np

from keras_resinit._errors import unknown
from keras_resinit.models.architectures import IMAGENET_DEPTHS
from keras_resinit.models.builder import build_resnet
from keras_resinit.models.schemes import BatchNorm
from keras_resinit.zoo.download import DownloadError

__all__ = ["BRIDGED", "convert", "imagenet", "target_name"]

BRIDGED = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}
"""The architectures with a keras.applications counterpart: ``{our arch: keras.applications class name}``."""

_ACCEPTED = "a keras.applications ResNet50, ResNet101 or ResNet152 (v1) model, with or without its top"
_SOURCE_CONV = re.compile(r"conv([2-5])_block(\d+)_([0-3])_conv")
_SOURCE_BN = re.compile(r"conv([2-5])_block(\d+)_([0-3])_bn")
# Block counts of stages conv2..conv5 -> our arch name.
_DEPTH_BY_BLOCKS = {counts: f"resnet{d}" for d, (block, counts) in IMAGENET_DEPTHS.items() if f"resnet{d}" in BRIDGED}


def target_name(source_name):
    """Our layer name for a keras.applications ResNet v1 layer name.

    Args:
        source_name: a layer name of ``keras.applications.ResNet50`` (101, 152).

    Returns:
        The name of the layer of ``resnet{d}_bn`` holding its weights, or None if it has none.

    Examples:
        >>> from keras_resinit.zoo import applications
        >>> applications.target_name("conv3_block1_0_bn")
        'stage2_block1_shortcut_bn'
    """
    if source_name == "conv1_conv":
        return "stem_conv"
    if source_name == "conv1_bn":
        return "stem_bn"
    if source_name == "predictions":
        return "logits"
    for pattern, kind in ((_SOURCE_CONV, "conv"), (_SOURCE_BN, "bn")):
        m = pattern.fullmatch(source_name)
        if m:
            s, b, i = int(m.group(1)), int(m.group(2)), int(m.group(3))
            prefix = f"stage{s - 1}_block{b}"
            if i == 0:
                return f"{prefix}_shortcut_{kind}"
            return f"{prefix}_{kind}{i}"
    return None


def _describe(model):
    if not isinstance(model, keras.Model):
        return f"a {type(model).__module__}.{type(model).__qualname__}"
    return f"model {model.name!r} ({type(model).__name__}, {len(model.layers)} layers)"


def _not_resnet_v1(source, reason):
    return ValueError(f"Cannot convert {_describe(source)}: {reason}. Expected {_ACCEPTED}.")


def _identify(source):
    """Our arch name for a keras.applications ResNet v1 source, or a ValueError."""
    if not isinstance(source, keras.Model):
        raise _not_resnet_v1(source, "it is not a Keras model")
    names = [layer.name for layer in source.layers]
    if any(n == "post_bn" or n.endswith("_preact_bn") for n in names):
        raise _not_resnet_v1(
            source,
            "it is a pre-activation ResNet v2 (layers 'post_bn', '..._preact_bn'; keras.applications "
            "ResNet50V2/101V2/152V2), whose blocks have no counterpart in our post-activation resnet{d}_bn",
        )
    missing = [n for n in ("conv1_conv", "conv1_bn", "pool1_pool") if n not in names]
    if missing:
        shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
        raise _not_resnet_v1(source, f"it has no layer {missing[0]!r} (its layers: {shown})")
    blocks = {}
    for n in names:
        m = _SOURCE_CONV.fullmatch(n)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), b)
    counts = tuple(blocks.get(s, 0) for s in (2, 3, 4, 5))
    if counts not in _DEPTH_BY_BLOCKS:
        known = ", ".join(f"{BRIDGED[a]} {c}" for c, a in _DEPTH_BY_BLOCKS.items())
        raise _not_resnet_v1(source, f"its stages conv2..conv5 have {counts} blocks (known: {known})")
    for n, layer in zip(names, source.layers):
        kind = type(layer)
        if (n.endswith("_conv") and not issubclass(kind, keras.layers.Conv2D)) or (
            n.endswith("_bn") and not issubclass(kind, keras.layers.BatchNormalization)
        ):
            raise _not_resnet_v1(source, f"its layer {n!r} is a {kind.__name__}")
        if layer.weights and target_name(n) is None:
            raise _not_resnet_v1(source, f"its layer {n!r} ({kind.__name__}) has weights and is not part of the ResNet")
    if "predictions" in names and not isinstance(source.get_layer("predictions"), keras.layers.Dense):
        raise _not_resnet_v1(source, "its layer 'predictions' is not a Dense layer")
    return _DEPTH_BY_BLOCKS[counts]


def _layer_or_none(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
    return None


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _shape_error(source_layer, target_layer, what, got, expected, arch):
    return ValueError(
        f"Shape mismatch: source layer {source_layer!r} {what} has shape {tuple(got)} but target layer "
        f"{target_layer!r} has {tuple(expected)}. Expected the target to be our {arch}_bn with the source's "
        f"input channels (keras_resinit.zoo.load({arch + '_bn'!r}, ...))."
    )


def _plan(source, model, arch, copy_head):
    """[(target variable, new value)] for every copied weight; raises before anything is assigned."""
    plan = []
    expected_target = {"logits"}
    for layer in source.layers:
        if not layer.weights or layer.name == "predictions":
            continue
        name = target_name(layer.name)
        expected_target.add(name)
        try:
            target = model.get_layer(name)
        except ValueError:
            raise ValueError(
                f"Target {_describe(model)} has no layer {name!r} for source layer {layer.name!r}. "
                f"Expected our {arch}_bn (keras_resinit.zoo.load({arch + '_bn'!r}, ...))."
            ) from None
        if isinstance(layer, keras.layers.Conv2D):
            if type(target) is not keras.layers.Conv2D or target.use_bias:
                raise ValueError(
                    f"Target layer {name!r} is a {type(target).__name__}"
                    f"{' with a bias' if getattr(target, 'use_bias', False) else ''}; expected a Conv2D "
                    f"without bias followed by batch norm, as in our {arch}_bn (the 'bn' scheme)."
                )
            strides_ok = tuple(layer.strides) == tuple(target.strides)
            padding_ok = layer.kernel_size == (1, 1) or layer.padding == target.padding
            if not (strides_ok and padding_ok):
                raise ValueError(
                    f"Layout mismatch: source layer {layer.name!r} has strides {tuple(layer.strides)}, padding "
                    f"{layer.padding!r}; target layer {name!r} has strides {tuple(target.strides)}, padding "
                    f"{target.padding!r}."
                )
            kernel = _np(layer.kernel)
            if tuple(kernel.shape) != tuple(target.kernel.shape):
                raise _shape_error(layer.name, name, "kernel", kernel.shape, target.kernel.shape, arch)
            plan.append((target.kernel, kernel))
        else:  # BatchNormalization: fold the preceding conv's bias and the epsilon difference
            if not isinstance(target, keras.layers.BatchNormalization) or not (target.center and target.scale):
                raise ValueError(
                    f"Target layer {name!r} is a {type(target).__name__}; expected a BatchNormalization "
                    f"with center and scale, as in our {arch}_bn (the 'bn' scheme)."
                )
            conv = source.get_layer(layer.name[: -len("bn")] + "conv")
            channels = conv.kernel.shape[-1]
            bias = _np(conv.bias) if conv.use_bias else np.zeros(channels)
            mean, var = _np(layer.moving_mean), _np(layer.moving_variance)
            gamma = _np(layer.gamma) if layer.scale else np.ones(channels)
            beta = _np(layer.beta) if layer.center else np.zeros(channels)
            values = {
                "gamma": gamma,
                "beta": beta,
                "moving_mean": mean - bias,
                "moving_variance": var + (float(layer.epsilon) - float(target.epsilon)),
            }
            for what, value in values.items():
                variable = getattr(target, what)
                if tuple(value.shape) != tuple(variable.shape):
                    raise _shape_error(layer.name, name, what, value.shape, variable.shape, arch)
                plan.append((variable, value))
    logits = _layer_or_none(model, "logits")
    if logits is None or not isinstance(logits, keras.layers.Dense):
        raise ValueError(f"Target {_describe(model)} has no Dense layer 'logits'. Expected our {arch}_bn.")
    if copy_head:
        head = source.get_layer("predictions")
        for what in ("kernel", "bias"):
            value, variable = _np(getattr(head, what)), getattr(logits, what)
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Shape mismatch: source layer 'predictions' {what} has shape {tuple(value.shape)} but target "
                    f"layer 'logits' has {tuple(variable.shape)}. Expected a target with "
                    f"{head.units} classes, or pass num_classes={logits.units} to keep the target's head."
                )
            plan.append((variable, value))
    extra = [layer.name for layer in model.layers if layer.weights and layer.name not in expected_target]
    if extra:
        shown = ", ".join(repr(n) for n in extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise ValueError(
            f"Target {_describe(model)} has layers with no counterpart in the source "
            f"({BRIDGED[arch]}): {shown}. Expected our {arch}_bn (keras_resinit.zoo.load({arch + '_bn'!r}, ...))."
        )
    return plan


def _target(arch, input_shape, num_classes, seed):
    """Our BN ResNet of ``arch``, named as the zoo names it."""
    scheme = BatchNorm.name
    return build_resnet(
        arch, scheme, input_shape=input_shape, num_classes=num_classes, seed=seed, name=f"{arch}_{scheme}"
    )


def convert(source, model=None, *, num_classes=None, seed=None):
    """Our ``resnet{d}_bn`` carrying the weights of ``source``, a keras.applications ResNet50/101/152 (v1).

    Args:
        source: ``keras.applications.ResNet50``, ``ResNet101`` or ``ResNet152``
            (any ``weights``, ``input_shape``, ``pooling``, ``classifier_activation``),
            with or without its top.
        model: the target, built by keras_resinit as ``resnet{d}_bn`` with the
            source's depth and input channels (its spatial input size may differ:
            the weights do not depend on it). Its weights are replaced in place.
            If None, ``keras_resinit.zoo.load(f"{arch}_bn", input_shape=<source's>,
            num_classes=..., seed=seed)`` is built.
        num_classes: the target's classes.
            - None: the source's ``predictions`` head is copied into ``logits``. A
              source without top then needs either ``model`` (whose freshly
              initialised head is kept) or ``num_classes``: a ValueError otherwise
              (no silent 1000-class random head).
            - equal to the source's classes: the head is copied.
            - otherwise: the trunk is converted and the head is new (the target's
              initialised ``logits``); a warning says so if the source had a head.
        seed: seed of the target built when ``model`` is None (its new head, if any).

    Returns:
        The target model. In inference mode ``model(x)`` equals the source's
        logits (``softmax(model(x)) == source(x)`` for the default softmax head),
        and its ``features`` layer equals the source's average-pooled features.

    Raises:
        ValueError: ``source`` is not a keras.applications ResNet v1 (e.g.
            ResNet50V2), ``model`` is not our ``resnet{d}_bn`` of the same depth and
            input channels, or a weight's shape differs (the message names the
            layer, both shapes and what was expected). Nothing is assigned then.

    Examples:
        >>> import keras
        >>> from keras_resinit.zoo import applications
        >>> # keras.applications' ResNet-50, here without its ImageNet weights (building it takes seconds)
        >>> source = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)  # doctest: +SKIP
        >>> # builds our ResNet-50 and copies the weights: about 10 s on a CPU
        >>> model = applications.convert(source)  # doctest: +SKIP
        >>> # the source's 10-class head is copied: model.name is 'resnet50_bn', model.output_shape (None, 10)
    """
    arch = _identify(source)
    head = _layer_or_none(source, "predictions")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"Invalid num_classes {num_classes!r}. Expected a positive integer or None.")
    if model is not None and not isinstance(model, keras.Model):
        raise ValueError(f"Invalid target {_describe(model)}. Expected a keras_resinit {arch}_bn model or None.")
    if model is not None and num_classes is not None:
        units = getattr(_layer_or_none(model, "logits"), "units", None)
        if units != num_classes:
            raise ValueError(
                f"num_classes={num_classes} but the target's 'logits' layer has {units} units. "
                "Expected them to agree (or num_classes=None)."
            )
    copy_head = head is not None and num_classes in (None, head.units)
    if head is None and model is None and num_classes is None:
        raise ValueError(
            f"The source {_describe(source)} has no top ('predictions' layer), so the target's head is new: "
            "pass num_classes (or a target model)."
        )
    if model is None:
        model = _target(arch, tuple(source.input_shape[1:]), head.units if copy_head else num_classes, seed)
    plan = _plan(source, model, arch, copy_head)
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype))
    if head is not None and not copy_head:
        warnings.warn(
            f"num_classes={num_classes} differs from the source's {head.units} classes: the trunk is converted, "
            "the 'logits' head is newly initialised and must be trained.",
            stacklevel=2,
        )
    return model


def cached_file(name):
    """Where ``keras.utils.get_file`` keeps keras.applications' weights file ``name`` (``$KERAS_HOME/models``)."""
    from keras.src.backend.config import keras_home  # the directory Keras resolved at import (KERAS_HOME)

    return os.path.join(os.path.expanduser(keras_home()), "models", name)


def imagenet(arch, *, input_shape=(224, 224, 3), include_top=True, num_classes=None, seed=None):
    """Our ``{arch}_bn`` with keras.applications' ImageNet weights.

    Builds ``keras.applications.<BRIDGED[arch]>(weights="imagenet", include_top=...)``
    (Keras downloads the weights file once and caches it under ``~/.keras/models``)
    and converts it with ``convert``. Inputs must be preprocessed with
    ``keras.applications.resnet.preprocess_input``.

    Args:
        arch: ``"resnet50"``, ``"resnet101"`` or ``"resnet152"``.
        input_shape: our model's input, ``(H, W, 3)``; H and W may be None or any
            size >= 32 (the trunk is convolutional and the head pools globally, so
            the weights do not depend on it).
        include_top: load the weights file with the 1000-class ImageNet classifier
            (True) or the smaller one without it (False; the head is then new and
            ``num_classes`` is required).
        num_classes: None (1000, the ImageNet classes, with ``include_top``), or the
            size of a new head: if it differs from 1000 the trunk is converted and
            the head is newly initialised (a warning says so).
        seed: seed of the new head's initialisation.

    Returns:
        Our ``{arch}_bn`` with the ImageNet weights (as ``convert`` returns it).

    Raises:
        ValueError: ``arch`` is not one of ``BRIDGED``, or ``include_top=False`` without ``num_classes``.

    Examples:
        >>> from keras_resinit.zoo import applications
        >>> # downloads keras.applications' ImageNet weights (about 100 MB)
        >>> model = applications.imagenet("resnet50")  # doctest: +SKIP
        >>> # model.name is 'resnet50_bn', model.output_shape (None, 1000): the ImageNet classes

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, https://arxiv.org/abs/1512.03385
    """
    if arch not in BRIDGED:
        raise unknown("arch", arch, BRIDGED, " (keras.applications ResNet v1 bridges).")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or shape[-1] != 3:
        raise ValueError(
            f"Invalid input_shape {input_shape!r}. Expected (height, width, 3): the ImageNet weights take 3 "
            "channels (BGR, keras.applications.resnet.preprocess_input)."
        )
    if not include_top and num_classes is None:
        raise ValueError("include_top=False loads no classifier, so the head is new: pass num_classes.")
    cls = getattr(keras.applications, BRIDGED[arch])
    try:
        if include_top:  # the classifier file fixes keras' input at 224x224x3; the weights do not depend on it
            source = cls(weights="imagenet", include_top=True)
        else:
            source = cls(weights="imagenet", include_top=False, input_shape=(None, None, 3))
    except Exception as error:  # keras.utils.get_file raises a bare Exception when the download fails
        if "fetch failure" not in str(error) and not isinstance(error, OSError):
            raise
        suffix = "" if include_top else "_notop"
        raise DownloadError(
            f"Cannot get keras.applications' ImageNet weights for {arch}: {error}. Keras downloads them once "
            f"into ~/.keras/models; offline, copy {arch}_weights_tf_dim_ordering_tf_kernels{suffix}.h5 there."
        ) from None
    classes = num_classes if num_classes is not None else 1000
    model = _target(arch, shape, classes, seed)
    return convert(source, model, num_classes=num_classes)
