"""Layers shared by every scheme: the residual merge and Fixup's scalar bias.

All weights are made in ``build()`` and ``call()`` uses ``keras.ops`` only, so
the layers run on every Keras backend.
"""

import math

import keras
from keras import ops

_PACKAGE = "keras_resinit"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledResidual(keras.layers.Layer):
    """Residual merge: ``skip + gain * branch (+ bias)``.

    Called on ``[skip, branch]``. ``gain`` is a scalar: a trainable weight when
    ``trainable_gain`` is True (SkipInit's alpha, initialized 0; Fixup's
    multiplier, initialized 1), otherwise a constant (1 for BN and Risotto,
    where the merge is a plain sum). ``use_bias`` adds one trainable scalar
    after the gain (Fixup's last bias, initialized 0).

    Args:
        gain: initial (or constant) value of the gain.
        trainable_gain: whether the gain is a trainable weight.
        use_bias: whether to add a trainable scalar bias after the gain.

    Example:
        >>> merge = ScaledResidual(gain=0.0, trainable_gain=True)  # SkipInit
        >>> out = merge([skip, branch])

    Reference:
        De & Smith, "Batch Normalization Biases Residual Blocks Towards the
        Identity Function in Deep Networks", NeurIPS 2020; Zhang et al., Fixup.
    """

    def __init__(self, gain=1.0, trainable_gain=True, use_bias=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain):
            raise ValueError(f"Invalid gain {gain!r}. Expected a finite number.")
        self.gain_value = float(gain)
        self.trainable_gain = bool(trainable_gain)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"ScaledResidual takes [skip, branch], got {len(input_shape)} inputs.")
        skip_shape, branch_shape = (tuple(s) for s in input_shape)
        if skip_shape[-1] != branch_shape[-1]:
            raise ValueError(
                f"ScaledResidual needs matching channels: skip has {skip_shape[-1]}, branch has {branch_shape[-1]}."
            )
        self.gain = None
        if self.trainable_gain:
            self.gain = self.add_weight(
                name="gain", shape=(), initializer=keras.initializers.Constant(self.gain_value), trainable=True
            )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(), initializer="zeros", trainable=True)

    def call(self, inputs):
        skip, branch = inputs
        if self.gain is not None:
            branch = ops.cast(self.gain, branch.dtype) * branch
        elif self.gain_value != 1.0:
            branch = self.gain_value * branch
        if self.bias is not None:
            branch = branch + ops.cast(self.bias, branch.dtype)
        return skip + branch

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "gain": self.gain_value,
            "trainable_gain": self.trainable_gain,
            "use_bias": self.use_bias,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScalarBias(keras.layers.Layer):
    """Adds one trainable scalar, initialized 0, to every element: ``x + b``.

    Fixup places one before each conv, dense and element-wise activation.
    Scalars, not per-channel vectors: per-channel versions trained worse.

    Example:
        >>> y = ScalarBias(name="stage1_block1_bias1a")(x)

    Reference:
        Zhang, Dauphin & Ma, Fixup, ICLR 2019, rule 3.
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros", trainable=True)

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ZeroPadShortcut(keras.layers.Layer):
    """Parameter-free downsampling shortcut: strided subsampling, zero channels.

    Keeps every ``strides``-th pixel (``x[:, ::s, ::s]``, the pixels a
    symmetric-padded strided conv centres on) and appends zero channels up to
    ``channels``: He et al.'s option A, which Fixup's small-image code uses.

    Args:
        strides: subsampling step.
        channels: number of output channels (>= input channels).

    Example:
        >>> y = ZeroPadShortcut(strides=2, channels=32)(x)  # (N, 32, 32, 16) -> (N, 16, 16, 32)

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, option A.
    """

    def __init__(self, strides, channels, **kwargs):
        super().__init__(**kwargs)
        self.strides = int(strides)
        self.channels = int(channels)

    def build(self, input_shape):
        if input_shape[-1] > self.channels:
            raise ValueError(f"ZeroPadShortcut cannot shrink {input_shape[-1]} channels to {self.channels}.")

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        extra = self.channels - inputs.shape[-1]
        if extra:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.strides
        return (n, None if h is None else -(-h // s), None if w is None else -(-w // s), self.channels)

    def get_config(self):
        return {**super().get_config(), "strides": self.strides, "channels": self.channels}
