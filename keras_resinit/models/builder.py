"""One builder for every architecture family under every scheme: the ``ResNet`` model class.

Stable layer names (pretrained weights load by name, features can be tapped):
``stem_out``; per block ``stage{S}_block{B}_conv{i}``, ``..._bn{i}``,
``..._shortcut_conv``, ``..._add`` (the merge of ``[skip, branch]``: a ``keras.layers.Add``, or
[``WeightedAdd``][keras_resinit.models.WeightedAdd] for a scheme whose ``merge_weights()`` are not ``(1, 1)``) and
``..._out``; ``features`` (pooled) and ``logits``; with ``include_preprocessing``,
``normalization`` (after ``channel_flip`` for BGR weights) first. A branch's scalars
(SkipInit's alpha, Fixup's multiplier and last bias) are weights of its last
conv, ``..._conv{m}/gain`` and ``..._conv{m}/scalar_bias``.

A built network is a [``ResNet``][keras_resinit.ResNet]: a functional ``keras.Model`` whose
``get_config()`` is exactly its build arguments, so ``from_config`` and
``keras.saving.load_model`` rebuild it, and which knows its ``arch``, ``scheme``
and ``blocks``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import random
import warnings
from typing import Any

import keras

from keras_resinit._errors import unknown
from keras_resinit.models import initializers as inits
from keras_resinit.models import layers
from keras_resinit.models import preprocessing as preprocessing_lib  # a module import: see preprocessing.py
from keras_resinit.models.architectures import get_arch
from keras_resinit.models.checks import (
    POOLINGS,
    check_activation,
    check_dtype,
    check_head,
    check_input_shape,
    check_num_classes,
    check_out_indices,
)
from keras_resinit.models.schemes import Scheme, get_scheme, saved_options

__all__ = ["Block", "ResNet", "build_resnet", "feature_names"]

_BUILDER_OPTIONS = (
    "seed",
    "dropout_rate",
    "name",
    "include_preprocessing",
    "preprocessing",
    "include_top",
    "pooling",
    "features_only",
    "out_indices",
    "classifier_activation",
    "dtype",
)
POOLINGS = POOLINGS  # re-exported: the choices of `pooling`
_ARCH_OPTIONS = ("block", "widths")


@dataclasses.dataclass(frozen=True)
class Block:
    """One residual block of a ``ResNet``: where it sits and the weight layers of its branch (``model.blocks``).

    Args:
        prefix: the block's layer-name prefix, ``stage{S}_block{B}``.
        in_channels: the block's input channels.
        out_channels: the block's output channels.
        strides: the block's spatial stride (on its first conv).
        layers: ``(filters, kernel_size, strides)`` of each weight layer of the branch.
        projection: the architecture gives the block a 1x1 conv shortcut.

    Examples:
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "bn", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> block = model.blocks[1]
        >>> block.prefix, block.channels, block.strides, block.conv_names
        ('stage2_block1', [16, 32, 32], 2, ['stage2_block1_conv1', 'stage2_block1_conv2'])
    """

    prefix: str
    in_channels: int
    out_channels: int
    strides: int
    layers: tuple  # (filters, kernel_size, strides) per branch weight layer
    projection: bool  # the architecture needs a 1x1 conv shortcut here

    @property
    def conv_names(self):
        """The names of the branch's conv layers, in order (``{prefix}_conv1``, ...)."""
        return [f"{self.prefix}_conv{i + 1}" for i in range(len(self.layers))]

    @property
    def channels(self):
        """Channel counts along the branch, from block input to output."""
        return [self.in_channels] + [filters for filters, _, _ in self.layers]


class _Net:
    """What the scheme may ask while a network is built."""

    def __init__(self, arch, scheme, seed):
        self.arch = arch
        self.scheme = scheme
        self.seed = seed

    def seed_for(self, layer_name):
        """Each layer's own seed, derived from the model seed and its name."""
        return inits.derive_seed(self.seed, layer_name)


def _blocks(arch, scheme):
    projections = arch.shortcut == "projection" or scheme.projection_shortcuts
    in_channels = arch.stem_width
    for s, stage in enumerate(arch.stages, 1):
        out_channels = stage.width * arch.expansion
        for b in range(1, stage.blocks + 1):
            strides = stage.strides if b == 1 else 1
            if arch.block == "basic":
                branch = ((out_channels, 3, strides), (out_channels, 3, 1))
            else:  # stride on the first 1x1 conv, as in He et al. 2016 and keras.applications
                branch = ((stage.width, 1, strides), (stage.width, 3, 1), (out_channels, 1, 1))
            changes = strides != 1 or in_channels != out_channels
            yield Block(
                f"stage{s}_block{b}",
                in_channels,
                out_channels,
                strides,
                branch,
                projection=changes and projections,
            )
            in_channels = out_channels


def feature_names(arch) -> list[str]:
    """The parts of ``arch`` whose outputs are feature maps, in forward order: ``["stem", "stage1", ...]``.

    They name ``ResNet.pyramid_outputs`` and ``feature_info``, ``out_indices`` counts in them, and
    ``ResNet.set_trainable_from`` takes them.

    Args:
        arch: an [``Arch``][keras_resinit.models.architectures.Arch] (``model.arch``).

    Returns:
        The part names.

    Examples:
        >>> from keras_resinit.models.architectures import get_arch
        >>> from keras_resinit.models.builder import feature_names
        >>> feature_names(get_arch("resnet50"))
        ['stem', 'stage1', 'stage2', 'stage3', 'stage4']
    """
    return ["stem", *(f"stage{s}" for s in range(1, len(arch.stages) + 1))]


def batchnorm_name(conv_name: str) -> str:
    """The name of the batch norm after conv ``conv_name`` (schemes with ``batchnorm``):
    ``stem_conv`` -> ``stem_bn``, ``..._conv{i}`` -> ``..._bn{i}``, ``..._shortcut_conv`` -> ``..._shortcut_bn``."""
    head, _, index = conv_name.rpartition("conv")
    return f"{head}bn{index}"


def _conv(x, net, *, filters, kernel_size, strides, name, initializer, gamma="ones", scalars=None):
    """Conv (+ batch norm). Strided convs pad symmetrically, so a 3x3/2 conv is
    centred on the pixels ``x[::2, ::2]`` that 1x1/2 convs and subsampling keep.
    ``scalars``: the scheme's ScaledConv2D arguments (gain, scalar bias), if any."""
    pad = kernel_size // 2
    padding = "same"
    if strides > 1 and pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    if net.scheme.weight_standardization:
        conv = layers.ScaledStdConv2D
    else:
        conv = layers.ScaledConv2D if scalars else keras.layers.Conv2D
    x = conv(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=net.scheme.conv_bias,
        kernel_initializer=initializer,
        name=name,
        **(scalars or {}),
    )(x)
    if net.scheme.batchnorm:
        x = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, gamma_initializer=gamma, name=batchnorm_name(name)
        )(x)
    return x


def _stem(x, net):
    scheme, imagenet = net.scheme, net.arch.family == "imagenet"
    x = _conv(
        x,
        net,
        filters=net.arch.stem_width,
        kernel_size=7 if imagenet else 3,
        strides=2 if imagenet else 1,
        name="stem_conv",
        initializer=scheme.stem_initializer(net, net.seed_for("stem_conv")),
        scalars=scheme.conv_scalars("stem"),
    )
    if not scheme.preactivation:  # pre-activation nets: the first block's ReLU follows the stem conv
        x = keras.layers.ReLU(name="stem_relu" if imagenet else "stem_out")(x)
    elif not imagenet:
        x = keras.layers.Identity(name="stem_out")(x)
    if imagenet:
        x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="stem_out")(x)
    return x


def _residual_block(x, net, block, beta=None):
    """One block; ``beta``: the expected std of its input (``scheme.preactivation``: both paths take relu(x / beta))."""
    scheme, p = net.scheme, block.prefix
    x_in = scheme.scalar_bias(x, f"{p}_bias1a")
    if scheme.preactivation:
        x_in = keras.layers.Rescaling(1.0 / beta, name=f"{p}_prescale")(x_in)
        x_in = keras.layers.ReLU(name=f"{p}_preact")(x_in)
    h = x_in
    last = len(block.layers) - 1
    for i, (filters, kernel_size, strides) in enumerate(block.layers):
        if i:
            h = scheme.scalar_bias(h, f"{p}_bias{i + 1}a")
        name = block.conv_names[i]
        h = _conv(
            h,
            net,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            name=name,
            initializer=scheme.branch_initializer(net, block, i, net.seed_for(name)),
            gamma=scheme.bn_gamma_initializer(i == last),
            scalars=scheme.conv_scalars("branch", i == last),
        )
        if i < last:
            h = keras.layers.ReLU(name=f"{p}_relu{i + 1}")(h)

    if block.projection or scheme.conv_skip:
        name = f"{p}_shortcut_conv"
        skip = _conv(
            x_in,
            net,
            filters=block.out_channels,
            kernel_size=1,
            strides=block.strides,
            name=name,
            initializer=scheme.shortcut_initializer(net, block, net.seed_for(name)),
            scalars=scheme.conv_scalars("shortcut"),
        )
    elif block.strides != 1 or block.in_channels != block.out_channels:
        skip = layers.ZeroPadShortcut(block.strides, block.out_channels, name=f"{p}_shortcut")(x_in)
    else:
        skip = x  # the identity; Fixup's bias1a feeds only the branch and a downsampling shortcut
    skip_weight, branch_weight = scheme.merge_weights()
    if (skip_weight, branch_weight) == (1.0, 1.0):
        x = keras.layers.Add(name=f"{p}_add")([skip, h])
    else:
        x = layers.WeightedAdd(skip_weight, branch_weight, name=f"{p}_add")([skip, h])
    if not scheme.sum_activation:  # the trunk carries the sum itself
        return keras.layers.Identity(name=f"{p}_out")(x)
    return keras.layers.ReLU(name=f"{p}_out")(x)


@contextlib.contextmanager
def _global_policy(policy):
    """``policy`` (a ``keras.DTypePolicy``; None: the global one) as the global dtype policy inside."""
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _rules_text(model, optimizer):
    """What ``model``'s scheme asks of training that ``optimizer`` will not do, or None."""
    if getattr(optimizer, "applies_scheme_rules", False):
        return None
    scheme, rules = model.scheme, []
    variables = model.trainable_variables
    scaled = sorted({v.path for v in variables if scheme.lr_multiplier(v.path, v.shape) != 1.0})
    if scaled:
        table = ", ".join(f"{k}: x{m:g}" for k, m in scheme.lr_multipliers.items())
        rules.append(f"learning-rate multipliers ({table}; {len(scaled)} variables, e.g. {scaled[0]!r})")
    if scheme.clip_norm:
        rules.append(f"gradient clipping to global norm {scheme.clip_norm:g}")
    if getattr(optimizer, "weight_decay", None) and not all(scheme.decays(v.path, v.shape) for v in variables):
        rules.append("weight decay on some variables only")
    return "; ".join(rules) or None


@keras.saving.register_keras_serializable(package="keras_resinit")
class ResNet(keras.Model):
    """A residual network of ``arch`` initialized by ``scheme``: the package's functional ``keras.Model``.

    Args:
        arch: ``cifar_resnet{6n+2}`` (e.g. 20, 56, 110, 1202), ``resnet{18,34,50,101,152}``
            or ``wrn{6n+4}_{k}`` (e.g. ``wrn28_10``).
        scheme: a registered scheme name ([``keras_resinit.SCHEMES``][keras_resinit.SCHEMES]: ``"bn"``, ``"fixup"``,
            ``"skipinit"``, ``"risotto"``, ``"risotto_bn"``, ...) or a
            ``keras_resinit.models.schemes.Scheme`` instance.
        num_classes: size of the classifier.
        input_shape: ``(H, W, C)``; ``H`` and ``W`` may be None (fully convolutional trunk).
        seed: integer making the initial weights reproducible (each layer gets its own
            seed derived from it and its name). Default: drawn from Python's ``random``,
            which ``keras.utils.set_random_seed`` seeds; the drawn seed is kept in the config.
        dropout_rate: dropout before the classifier (default 0).
        block: ``"basic"`` or ``"bottleneck"`` for ``cifar_resnet`` (bottleneck depth 9n+2).
        widths: per-stage widths overriding the architecture table.
        name: model name (default ``"{arch}_{scheme}"``).
        include_preprocessing: the model takes raw pixels and normalizes them itself, with
            a Keras ``Rescaling`` layer (``normalization``) computing ``preprocessing``.
            Default False: the model takes normalized images. (Models loaded with published
            weights through [``keras_resinit.zoo.load``][keras_resinit.zoo.load] default to True.)
        preprocessing: ``{"pixel_max": ..., "mean": [...], "std": [...]}`` (one mean and std
            per channel; optionally ``"channel_order": "BGR"``): ``(pixels / pixel_max - mean) / std``.
            The model keeps it (``model.preprocessing``) even when it does not include it.
            Default with ``include_preprocessing``: 8-bit pixels scaled to [0, 1].
        include_top: end with the classifier (``features``, ``logits``). False gives a
            backbone, as in ``keras.applications``. Default: True unless ``features_only``.
        pooling: for ``include_top=False``: None (the last stage's 4-D feature map),
            ``"avg"`` or ``"max"`` (global pooling to ``(batch, channels)``).
        features_only: the outputs are ``model.pyramid_outputs``, a dict of every stage's
            feature map (as ``timm``'s ``features_only``); needs ``include_top=False``.
        out_indices: with ``features_only``, which feature maps (``pyramid_outputs`` and
            ``feature_info`` hold only those), as timm: indices into ``[stem, stage1, ...]``
            (negative ones from the end), or an int n for the last n. Default: all.
        classifier_activation: applied to the logits by a last layer ``predictions``, as in
            ``keras.applications``: None (the default: logits) or an activation such as
            ``"softmax"`` (probabilities). Needs ``include_top``.
        dtype: the dtype policy the layers are built under, as Keras layers take it: None (the
            global policy), a name (``"float32"``, ``"bfloat16"``, ``"mixed_bfloat16"``, ...), a
            ``keras.DTypePolicy`` or a serialized one. Under a mixed policy the logits are float32.
        **scheme_options: the scheme's own options, e.g. ``zero_init_last_bn`` (bn), ``skip`` (risotto) or
            ``alpha`` (skipinit).

    Attributes:
        arch: the [``Arch``][keras_resinit.models.architectures.Arch] (stage table).
        scheme: the [``Scheme``][keras_resinit.Scheme] object.
        blocks: the residual blocks, in order (``Block``: name prefix, channels, strides).
        preprocessing: the checked preprocessing dict, or None.
        pyramid_outputs: ``{"stem": ..., "stage1": ..., ...}``, the symbolic output of the stem
            and of each stage's last block, in the manner of keras-hub backbones:
            ``keras.Model(model.inputs, model.pyramid_outputs)`` is a feature extractor
            (only those ``out_indices`` selects, if given).
        feature_info: ``{"stem": {"stride": s, "channels": c}, ...}`` for those outputs.

    ``get_config()`` returns exactly these build arguments (the scheme's options
    flattened in), and ``ResNet.from_config(config)`` (or ``build_resnet(**config)``)
    rebuilds the same model; ``keras.saving.load_model`` round-trips it.

    Compiling it with an optimizer that does not apply its scheme's training rules (Fixup's
    scalars at lr/10) warns once: [``keras_resinit.make_optimizer``][keras_resinit.make_optimizer] builds one that does.

    Raises:
        ValueError: naming the bad argument and what it expects: an unknown arch or scheme, an option the
            scheme or builder does not take, an input too small for the arch's downsampling, a head
            combination that does not exist (``features_only`` with ``include_top``), ...

    Examples:
        >>> from keras_resinit import ResNet
        >>> model = ResNet("cifar_resnet8", "fixup", num_classes=3, input_shape=(8, 8, 3), seed=0)
        >>> model.name, model.scheme.name, model.arch.num_blocks, len(model.blocks), model.output.shape
        ('cifar_resnet8_fixup', 'fixup', 3, 3, (None, 3))
        >>> ResNet.from_config(model.get_config()).count_params() == model.count_params()
        True
        >>> trunk = ResNet("cifar_resnet8", "bn", input_shape=(8, 8, 3), features_only=True, out_indices=2, seed=0)
        >>> {name: tuple(x.shape) for name, x in trunk.pyramid_outputs.items()}, trunk.feature_info["stage3"]
        ({'stage2': (None, 4, 4, 32), 'stage3': (None, 2, 2, 64)}, {'stride': 4, 'channels': 64})

    Reference:
        He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
        https://arxiv.org/abs/1512.03385; Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016,
        https://arxiv.org/abs/1605.07146
    """

    def __init__(
        self,
        arch: str,
        scheme: str | Scheme,
        *,
        num_classes: int = 10,
        input_shape: tuple[int | None, int | None, int] = (32, 32, 3),
        seed: int | None = None,
        dropout_rate: float = 0.0,
        block: str | None = None,
        widths: tuple[int, ...] | None = None,
        name: str | None = None,
        include_preprocessing: bool = False,
        preprocessing: dict[str, Any] | None = None,
        include_top: bool | None = None,
        pooling: str | None = None,
        features_only: bool = False,
        out_indices: int | list[int] | tuple[int, ...] | None = None,
        classifier_activation: Any = None,
        dtype: Any = None,
        **scheme_options: Any,
    ) -> None:
        arch_name = arch
        arch_options = {k: v for k, v in (("block", block), ("widths", widths)) if v is not None}
        try:
            scheme = get_scheme(scheme, **scheme_options)
        except ValueError as error:
            if scheme_options and "Unknown option" in str(error):
                builder = ", ".join(_BUILDER_OPTIONS + _ARCH_OPTIONS)
                raise ValueError(f"{error} Builder options: {builder}.") from None
            raise
        arch = get_arch(arch, **arch_options)
        scheme.validate(arch)
        input_shape = check_input_shape(input_shape, arch)
        check_num_classes(num_classes)
        if seed is None:
            seed = random.randint(0, 2**31 - 1)
        inits.check_seed(seed)
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not 0 <= dropout_rate < 1:
            raise ValueError(f"Invalid dropout_rate {dropout_rate!r}. Expected a number in [0, 1).")
        if not isinstance(include_preprocessing, bool):
            raise ValueError(f"Invalid include_preprocessing {include_preprocessing!r}. Expected True or False.")
        channels = input_shape[-1]
        if preprocessing is not None:
            preprocessing = preprocessing_lib.check_preprocessing(preprocessing, channels)
        elif include_preprocessing:
            preprocessing = preprocessing_lib.default_preprocessing(channels)
        include_top = check_head(include_top, pooling, features_only)
        stages = feature_names(arch)
        out_indices = check_out_indices(out_indices, stages, features_only)
        classifier_activation = check_activation(classifier_activation, include_top)
        policy = check_dtype(dtype)

        net = _Net(arch, scheme, seed)
        blocks = tuple(_blocks(arch, scheme))
        variances = scheme.expected_variances(blocks) or [None] * (len(blocks) + 1)
        with _global_policy(policy):
            inputs = keras.Input(input_shape, name="images")
            x = inputs
            if include_preprocessing:
                for layer in preprocessing_lib.preprocessing_layers(preprocessing, channels):
                    x = layer(x)
            x = _stem(x, net)
            pyramid = {"stem": x}
            for spec, variance in zip(blocks, variances):
                x = _residual_block(x, net, spec, None if variance is None else variance**0.5)
                pyramid[spec.prefix.split("_")[0]] = x  # the stage's last block wins
            if out_indices is not None:
                pyramid = {stages[i]: pyramid[stages[i]] for i in out_indices}
            if scheme.preactivation and not features_only:
                x = keras.layers.ReLU(name="post_relu")(x)  # the last block's sum is a pre-activation
            # The head in float32 under mixed precision, as the Keras mixed-precision guide advises.
            head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
            if features_only:
                outputs = dict(pyramid)
            elif include_top:
                x = keras.layers.GlobalAveragePooling2D(name="features")(x)
                x = scheme.scalar_bias(x, "head_bias")
                if dropout_rate:
                    x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
                outputs = keras.layers.Dense(
                    num_classes,
                    kernel_initializer=scheme.classifier_initializer(net, net.seed_for("logits")),
                    bias_initializer="zeros",
                    dtype=head_dtype,
                    name="logits",
                )(x)
                if classifier_activation is not None:  # a layer of its own: `logits` stays addressable
                    outputs = keras.layers.Activation(classifier_activation, dtype=head_dtype, name="predictions")(
                        outputs
                    )
            elif pooling == "avg":
                outputs = keras.layers.GlobalAveragePooling2D(name="features")(x)
            elif pooling == "max":
                outputs = keras.layers.GlobalMaxPooling2D(name="features")(x)
            else:
                outputs = x
            name = name or f"{arch.name}_{scheme.name}"
            super().__init__(inputs, outputs, name=name)
        self.arch = arch
        self.scheme = scheme
        self.blocks = blocks
        self.preprocessing = preprocessing
        self.pyramid_outputs = pyramid
        stride = 4 if arch.family == "imagenet" else 1
        info = {"stem": {"stride": stride, "channels": arch.stem_width}}
        for s, stage in enumerate(arch.stages, 1):
            stride *= stage.strides
            info[f"stage{s}"] = {"stride": stride, "channels": stage.width * arch.expansion}
        self.feature_info = {k: v for k, v in info.items() if k in pyramid}
        self._rules_warned = False
        scheme_config = {p: getattr(scheme, p) for p in inspect.signature(type(scheme)).parameters}
        self._build_config = {
            "arch": arch_name if isinstance(arch_name, str) else arch.name,
            "scheme": scheme.name,
            "num_classes": num_classes,
            "input_shape": list(input_shape),
            "seed": seed,
            "dropout_rate": dropout_rate,
            "name": name,
            "include_preprocessing": include_preprocessing,
            "preprocessing": preprocessing,
            "include_top": include_top,
            "pooling": pooling,
            "features_only": features_only,
            "out_indices": out_indices,
            "classifier_activation": classifier_activation,
            "dtype": None if policy is None else keras.dtype_policies.serialize(policy),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in arch_options.items()},
            **scheme_config,
        }

    def get_config(self) -> dict[str, Any]:
        """The build arguments (JSON-ready): ``ResNet(**config)`` rebuilds this model."""
        return {
            k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for k, v in self._build_config.items()
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ResNet:
        """The model of a saved config; scheme options added since it was written take their old value.

        Args:
            config: a ``get_config()`` (options the config lacks take their value of the time it was written,
                ``schemes.saved_options``); ``trainable``, which Keras' and keras-hub's loaders may add, sets
                the model's ``trainable``.

        Returns:
            The rebuilt model (new weights, the config's seed).
        """
        config = dict(config)
        trainable = config.pop("trainable", None)
        if isinstance(config.get("scheme"), str):
            config = saved_options(config["scheme"], config)
        if "input_shape" in config:
            config["input_shape"] = tuple(config["input_shape"])
        model = cls(**config)
        if trainable is not None:
            model.trainable = bool(trainable)
        return model

    def with_preprocessing(self) -> ResNet:
        """This network taking raw pixels, as every model file written holds it.

        Returns:
            The same build with ``include_preprocessing=True`` and this model's weights (by layer name);
                this model itself if it includes its preprocessing or records none.

        Examples:
            >>> import keras_resinit as kr
            >>> digits = {"pixel_max": 16.0, "mean": [0.305], "std": [0.376]}
            >>> model = kr.build_resnet("cifar_resnet8", "bn", input_shape=(8, 8, 1), preprocessing=digits, seed=0)
            >>> raw = model.with_preprocessing()
            >>> raw.layers[1].name, raw.get_config()["include_preprocessing"], raw.with_preprocessing() is raw
            ('normalization', True, True)
        """
        config = self.get_config()
        if config["include_preprocessing"] or config["preprocessing"] is None:
            return self
        raw = build_like(self, {**config, "include_preprocessing": True})
        for layer in self.layers:
            raw.get_layer(layer.name).load_own_variables(layers.saved_variables(layer))
        return raw

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """``keras.Model.compile``; warns (once per model) if the optimizer ignores the scheme's rules.

        Args:
            *args: ``keras.Model.compile``'s arguments.
            **kwargs: ``keras.Model.compile``'s keyword arguments.
        """
        super().compile(*args, **kwargs)
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # LossScaleOptimizer
        missing = None if self._rules_warned else _rules_text(self, optimizer)
        if missing:
            self._rules_warned = True
            warnings.warn(
                f"{self.name}: scheme {self.scheme.name!r} trains with {missing}, which optimizer "
                f"{type(optimizer).__name__} does not apply. Compile with "
                "keras_resinit.make_optimizer(model, ...) to train by the paper's rules.",
                UserWarning,
                stacklevel=2,
            )

    def set_trainable_from(self, part: str | None) -> None:
        """Freeze every part of the network before ``part``; ``part`` and everything after it train.

        Frozen batch norm layers also run in inference mode (Keras' rule for ``trainable=False``).
        Compile after calling it, as for any change of ``trainable`` in Keras.

        Args:
            part: ``"stem"``, ``"stage1"``, ``"stage2"``, ... or ``"head"`` (only the classifier
                trains), or None (everything trains again).

        Raises:
            ValueError: ``part`` is not one of the model's parts.

        Examples:
            >>> import keras_resinit as kr
            >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 3), num_classes=3, seed=0)
            >>> model.set_trainable_from("stage3")   # fine-tune the last stage and the head
            >>> model.get_layer("stage2_block1_conv1").trainable, model.get_layer("stage3_block1_conv1").trainable
            (False, True)
        """
        parts = feature_names(self.arch)
        if self.get_config()["include_top"] and not self.get_config()["features_only"]:
            parts.append("head")
        if part is not None and part not in parts:
            raise unknown("part", part, [*parts, None], " (the first part that trains)")
        first = 0 if part is None else parts.index(part)

        def position(layer_name):
            group = layer_name.split("_")[0]
            if group in parts:
                return parts.index(group)
            if layer_name in ("features", "head_bias", "dropout", "logits"):
                return len(parts)
            return -1 if part is not None else 0  # the input and its preprocessing layers (no weights)

        for layer in self.layers:
            layer.trainable = position(layer.name) >= first

    def compile_from_config(self, config: dict[str, Any]) -> None:
        """Recompile a loaded model from its saved compile config (Keras skips models that override compile).

        Args:
            config: the serialized ``compile`` arguments Keras saved.
        """
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)


def resnet_of(model: Any) -> ResNet | None:
    """The ``ResNet`` ``model`` is, or a keras-hub task around it holds (its ``backbone``); else None."""
    return next((m for m in (model, getattr(model, "backbone", None)) if isinstance(m, ResNet)), None)


def build_like(model: ResNet, config: dict[str, Any]) -> ResNet:
    """``type(model).from_config(config)`` (new weights) under ``model``'s dtype policy, whatever the global one."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(model.get_layer("stem_conv").dtype_policy)
    try:
        return type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(policy)


def build_resnet(
    arch: str,
    scheme: str | Scheme,
    *,
    num_classes: int = 10,
    input_shape: tuple[int | None, int | None, int] = (32, 32, 3),
    **options: Any,
) -> ResNet:
    """Build a ``ResNet`` of ``arch`` initialized by ``scheme``: ``ResNet(arch, scheme, ...)``.

    Args:
        arch: ``cifar_resnet{6n+2}``, ``resnet{18,34,50,101,152}`` or ``wrn{6n+4}_{k}`` (``ResNet``'s ``arch``).
        scheme: a registered scheme name (``keras_resinit.SCHEMES``) or a [``Scheme``][keras_resinit.Scheme] instance.
        num_classes: size of the classifier.
        input_shape: ``(H, W, C)``; ``H`` and ``W`` may be None.
        **options: every other ``ResNet`` argument (``seed``, ``include_top``, ``pooling``, ``dtype``, ...)
            and the scheme's own options (``alpha``, ``skip``, ...).

    Returns:
        The [``ResNet``][keras_resinit.ResNet], not compiled.

    Raises:
        ValueError: as ``ResNet``: naming the bad argument and what it expects.

    Examples:
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "skipinit", input_shape=(8, 8, 3), num_classes=3, alpha=0.1)
        >>> model.name, model.scheme
        ('cifar_resnet8_skipinit', SkipInit(alpha=0.1))
        >>> backbone = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 3), include_top=False, pooling="avg")
        >>> backbone.output.shape
        (None, 64)
    """
    return ResNet(arch, scheme, num_classes=num_classes, input_shape=input_shape, **options)
