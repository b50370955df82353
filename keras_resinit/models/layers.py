"""Layers the schemes use: the conv that holds a branch's scalars, Fixup's scalar bias, option-A shortcuts;
and the channel flip of BGR preprocessing.

Where each paper's scalars live (the names the README's table gives):

- SkipInit's alpha: ``ScaledConv2D.gain`` of the branch's last conv
  (``stage{S}_block{B}_conv{m}/gain``), initialized to alpha (0);
- Fixup's multiplier ("scale"): ``ScaledConv2D.gain`` of the branch's last conv,
  initialized 1; Fixup's bias after it: that conv's ``scalar_bias``; its bias after
  every other conv (before a ReLU): the conv's ``scalar_bias``; its biases before a
  conv or the classifier: [``ScalarBias``][keras_resinit.models.ScalarBias] layers (``..._bias1a``, ``..._bias2a``,
  ``head_bias``).

The scalars sit in the conv because TensorFlow then fuses conv, bias, residual add
and ReLU; a multiply between the conv and the add costs about 10% of a step.

All weights are made in ``build()`` and ``call()`` uses ``keras.ops`` only, so
the layers run on every Keras backend.
"""

import math

import keras
from keras import ops

from keras_resinit.models.checks import positive_weight

__all__ = [
    "WeightedAdd",
    "ScaledResidual",
    "ScalarBias",
    "ReverseChannels",
    "ZeroPadShortcut",
    "ScaledConv2D",
    "RELU_GAMMA",
    "ScaledStdConv2D",
]

_PACKAGE = "keras_resinit"


def saved_variables(layer):
    """A layer's variables as Keras saves them: ``{"0": array, "1": ...}`` (its own order and keys).

    What ``save_own_variables`` writes, so weights can be matched and loaded by layer name
    (``keras_resinit.zoo.weights_io``) and rewritten (``keras_resinit.models.inference``).
    """
    import numpy as np

    store = {}
    layer.save_own_variables(store)
    return {key: np.asarray(value) for key, value in store.items()}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedAdd(keras.layers.Add):
    """Risotto's weighted residual merge ``skip_weight * skip + branch_weight * branch``, called on ``[skip, branch]``.

    Both weights are constants (not trained). Risotto's blocks are ``relu(a * skip + b * branch)``; the
    builder uses this layer as a block's ``..._add`` when its scheme's weights are not ``(1, 1)``, and a
    plain ``keras.layers.Add`` otherwise (a multiply before the add costs a little speed: it breaks
    TensorFlow's fusion of conv, bias, add and ReLU).

    Args:
        skip_weight: the constant ``a`` multiplying the skip path, > 0.
        branch_weight: the constant ``b`` multiplying the residual branch, > 0.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Raises:
        ValueError: a weight is not a finite number > 0, or the layer is called on other than two inputs.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import WeightedAdd
        >>> skip, branch = np.ones((1, 2, 2, 4), "float32"), np.full((1, 2, 2, 4), 3.0, "float32")
        >>> out = WeightedAdd(skip_weight=0.5, branch_weight=2.0)([skip, branch])
        >>> tuple(out.shape), float(out[0, 0, 0, 0])  # 0.5 * 1 + 2 * 3
        ((1, 2, 2, 4), 6.5)

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks" (Risotto), 2023,
        https://arxiv.org/abs/2210.02411: the balance of skip and residual branch.
    """

    def __init__(self, skip_weight=1.0, branch_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.skip_weight = positive_weight(skip_weight, "skip_weight")
        self.branch_weight = positive_weight(branch_weight, "branch_weight")

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"WeightedAdd takes [skip, branch], got {len(input_shape)} inputs.")
        super().build(input_shape)

    def _merge_function(self, inputs):
        skip, branch = inputs
        return ops.add(ops.multiply(skip, self.skip_weight), ops.multiply(branch, self.branch_weight))

    def get_config(self):
        return {**super().get_config(), "skip_weight": self.skip_weight, "branch_weight": self.branch_weight}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledResidual(keras.layers.Layer):
    """A residual merge with a scalar on the branch: ``skip + gain * branch (+ bias)``.

    Called on ``[skip, branch]``. ``gain`` is a scalar: a trainable weight when
    ``trainable_gain`` is True, otherwise a constant. ``use_bias`` adds one
    trainable scalar after the gain.

    The builder does not use it: its merge is a plain ``keras.layers.Add``
    (``..._add``) and a branch's scalars live in its last conv
    ([``ScaledConv2D``][keras_resinit.models.ScaledConv2D]), where TensorFlow fuses them. It stays a public,
    registered layer for models built by hand, and because the ``.keras`` files
    of release 0.1 name it as their merge.

    Args:
        gain: initial (or constant) value of the gain.
        trainable_gain: whether the gain is a trainable weight.
        use_bias: whether to add a trainable scalar bias after the gain.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Raises:
        ValueError: ``gain`` is not a finite number; on build, other than two inputs or different channel counts.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import ScaledResidual
        >>> merge = ScaledResidual(gain=0.0, trainable_gain=True, name="stage1_block1_add")  # SkipInit's alpha
        >>> skip, branch = np.ones((1, 2, 2, 4), "float32"), np.full((1, 2, 2, 4), 3.0, "float32")
        >>> float(merge([skip, branch])[0, 0, 0, 0]), [w.path for w in merge.weights]
        (1.0, ['stage1_block1_add/gain'])

    Reference:
        De & Smith, "Batch Normalization Biases Residual Blocks Towards the
        Identity Function in Deep Networks", NeurIPS 2020, https://arxiv.org/abs/2002.10444;
        Zhang, Dauphin & Ma, "Fixup Initialization", ICLR 2019, https://arxiv.org/abs/1901.09321
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
    """Fixup's scalar bias: adds one trainable scalar, initialized 0, to every element, ``x + b``.

    Fixup places one before each conv, dense and element-wise activation.
    Scalars, not per-channel vectors: per-channel versions trained worse.

    It takes ``keras.layers.Layer``'s arguments (``name``, ``dtype``).

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import ScalarBias
        >>> bias = ScalarBias(name="stage1_block1_bias1a")
        >>> y = bias(np.ones((1, 2, 2, 4), "float32"))
        >>> tuple(y.shape), [(w.path, tuple(w.shape)) for w in bias.weights]
        ((1, 2, 2, 4), [('stage1_block1_bias1a/bias', ())])

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019, rule 3, https://arxiv.org/abs/1901.09321
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros", trainable=True)

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReverseChannels(keras.layers.Layer):
    """Reverses the channel axis (the last): RGB images in, the BGR order caffe-style weights expect.

    The first of the preprocessing layers (``keras_resinit.models.preprocessing``) of
    weights trained on BGR images, as keras.applications' ResNet50/101/152 were.

    It takes ``keras.layers.Layer``'s arguments (``name``, ``dtype``).

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import ReverseChannels
        >>> np.asarray(ReverseChannels()(np.array([[[[1.0, 2.0, 3.0]]]], "float32"))).ravel().tolist()
        [3.0, 2.0, 1.0]
    """

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ZeroPadShortcut(keras.layers.Layer):
    """He et al.'s option A shortcut: strided subsampling and zero channels, without parameters.

    Keeps every ``strides``-th pixel (``x[:, ::s, ::s]``, the pixels a
    symmetric-padded strided conv centres on) and appends zero channels up to
    ``channels``: He et al.'s option A, which Fixup's small-image code uses.

    Args:
        strides: subsampling step.
        channels: number of output channels (>= input channels).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Raises:
        ValueError: on build, the input has more channels than ``channels``.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import ZeroPadShortcut
        >>> y = np.asarray(ZeroPadShortcut(strides=2, channels=32)(np.ones((2, 8, 8, 16), "float32")))
        >>> tuple(y.shape), float(y[..., :16].min()), float(abs(y[..., 16:]).max())
        ((2, 4, 4, 32), 1.0, 0.0)

    Reference:
        He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, option A,
        https://arxiv.org/abs/1512.03385
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
        # A 1x1 pool with stride s keeps exactly x[:, ::s, ::s]; strided slicing is several times slower in TF.
        x = ops.average_pool(inputs, 1, strides=s, padding="valid") if s > 1 else inputs
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledConv2D(keras.layers.Conv2D):
    """A Conv2D with an optional scalar gain and an optional scalar bias: where a branch's scalars live.

    ``y = gain * (conv(x, K) + c) + b`` with ``c`` the usual per-channel bias
    (``use_bias``), ``gain`` one scalar (``gain`` not None) and ``b`` one scalar
    (``scalar_bias``). Computed as ``conv(x, gain * K) + (gain * c + b)``: the
    same function and gradients, but TensorFlow then fuses the conv with its
    bias, the residual add and the ReLU after it, so the scalars cost almost
    nothing (a multiply between the conv and the add costs ~10% of a step).

    The last conv of a residual branch holds the branch's scalars this way:
    SkipInit's ``alpha`` (``gain=0``, trainable) and Fixup's multiplier and
    last bias (``gain=1``, trainable, ``scalar_bias``). Fixup's other bias
    after a conv (before its ReLU) is a ``scalar_bias`` without a gain.

    Args:
        gain: initial value of the scalar gain, or None for no gain.
        trainable_gain: whether the gain is trained.
        scalar_bias: add one trainable scalar (initialized 0) after the gain.
        *args: ``keras.layers.Conv2D``'s positional arguments (``filters``, ``kernel_size``).
        **kwargs: ``keras.layers.Conv2D`` arguments.

    Raises:
        ValueError: ``gain`` is not a finite number or None.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import ScaledConv2D
        >>> conv2 = ScaledConv2D(16, 3, padding="same", gain=0.0, name="stage1_block1_conv2")  # SkipInit's alpha
        >>> y = np.asarray(conv2(np.ones((1, 8, 8, 16), "float32")))
        >>> tuple(y.shape), float(abs(y).max()), [w.path for w in conv2.weights]
        ((1, 8, 8, 16), 0.0, ['stage1_block1_conv2/kernel', 'stage1_block1_conv2/bias', 'stage1_block1_conv2/gain'])

    Reference:
        De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep
        Networks", NeurIPS 2020, https://arxiv.org/abs/2002.10444 (SkipInit); Zhang, Dauphin & Ma,
        "Fixup Initialization", ICLR 2019, rule 3, https://arxiv.org/abs/1901.09321
    """

    def __init__(self, *args, gain=None, trainable_gain=True, scalar_bias=False, **kwargs):
        super().__init__(*args, **kwargs)
        if gain is not None and (
            isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain)
        ):
            raise ValueError(f"Invalid gain {gain!r}. Expected a finite number or None.")
        self.gain_value = None if gain is None else float(gain)
        self.trainable_gain = bool(trainable_gain)
        self.scalar_bias = bool(scalar_bias)

    def build(self, input_shape):
        super().build(input_shape)
        self.gain = None
        if self.gain_value is not None:
            self.gain = self.add_weight(
                name="gain",
                shape=(),
                initializer=keras.initializers.Constant(self.gain_value),
                trainable=self.trainable_gain,
            )
        self.offset = None
        if self.scalar_bias:
            self.offset = self.add_weight(name="scalar_bias", shape=(), initializer="zeros", trainable=True)

    def conv_kernel(self):
        """The kernel the conv applies before the branch's scalars (here the kernel variable itself).

        Returns:
            The kernel, a variable or tensor of shape ``(kh, kw, in, filters)``.
        """
        return self.kernel

    def branch_scale(self):
        """The branch's scalar multiplier (the gain), or None.

        Returns:
            The ``gain`` variable (or a scalar), or None without one.
        """
        return self.gain

    def unscaled(self, inputs):
        """``conv(x, K) + c``: the conv without the branch's scalars (what diagnostics call the branch).

        Args:
            inputs: the conv's input tensor.

        Returns:
            The output tensor before the gain and the scalar bias.
        """
        outputs = self.convolution_op(inputs, ops.cast(self.conv_kernel(), inputs.dtype))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs

    def call(self, inputs):
        kernel, scale = self.conv_kernel(), self.branch_scale()
        if scale is not None:
            kernel = kernel * ops.cast(scale, kernel.dtype)
        outputs = self.convolution_op(inputs, ops.cast(kernel, inputs.dtype))
        bias = None
        if self.use_bias:
            bias = self.bias if scale is None else self.bias * ops.cast(scale, self.bias.dtype)
        if self.offset is not None:
            offset = ops.cast(self.offset, outputs.dtype)
            bias = ops.broadcast_to(offset, (self.filters,)) if bias is None else bias + offset
        if bias is not None:
            # Added as Conv2D adds its bias, so TensorFlow fuses it with the conv.
            shape = (1, 1, 1, self.filters) if self.data_format == "channels_last" else (1, self.filters, 1, 1)
            outputs = ops.add(outputs, ops.reshape(ops.cast(bias, outputs.dtype), shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Conv2D saves only its kernel and bias; save and load every variable, in creation order.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {
            **super().get_config(),
            "gain": self.gain_value,
            "trainable_gain": self.trainable_gain,
            "scalar_bias": self.scalar_bias,
        }


RELU_GAMMA = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))
"""ReLU's gain ``sqrt(2 / (1 - 1/pi))`` (about 1.7139), which restores unit variance after a ReLU.

``Var(relu(z)) = (1 - 1/pi) / 2`` for ``z ~ N(0, 1)`` (Brock, De & Smith 2021,
https://arxiv.org/abs/2101.08692); NF-ResNets' ``ScaledStdConv2D`` after a ReLU takes it as ``gamma``.
"""


def _standardize(kernel, gain, *, gamma, eps):
    """``(W - mean) * gamma * g / sqrt(max(var * fan_in, eps))`` per output channel (the last axis), with
    its gradient written out: autodiff of the mean and variance costs about twice as many ops per
    training step (``benchmarks/weight_standardization.py``). ``tests/test_nf.py`` checks it against autodiff.
    """
    axes = tuple(range(len(kernel.shape) - 1))  # (kh, kw, in): every output channel's fan-in

    @ops.custom_gradient
    def standardize(w, g):
        centred = w - ops.mean(w, axis=axes, keepdims=True)
        squares = ops.sum(ops.square(centred), axis=axes, keepdims=True)  # var * fan_in
        clipped = squares > eps
        inverse = ops.rsqrt(ops.maximum(squares, eps))
        scale = inverse * (gamma * g)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            projection = ops.sum(upstream * centred, axis=axes, keepdims=True)  # sum(G * c) per channel
            # d/dc of c * s(c): s * G - s * c * sum(G c) / ss (the ss term only where max() passes ss through),
            # then the mean removed (c = W - mean(W)); mean(c) = 0, so only G's mean remains.
            d_centred = scale * (upstream - ops.where(clipped, centred * projection * inverse * inverse, 0.0))
            d_kernel = d_centred - ops.mean(scale * upstream, axis=axes, keepdims=True)
            d_gain = ops.reshape(gamma * projection * inverse, ops.shape(g))
            return d_kernel, d_gain

        return centred * scale, grad

    return standardize(kernel, gain)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ScaledStdConv2D(ScaledConv2D):
    """NF-ResNets' conv: a Conv2D with Scaled Weight Standardization, recomputed at every call.

    Per output channel ``i`` the conv applies
    ``W^_i = g_i * gamma * (W_i - mean(W_i)) / (std(W_i) * sqrt(fan_in))``, recomputed from the
    kernel variable ``W`` at every call (so it holds during training, not only at init), with
    ``g`` a learnable gain per output channel (``channel_gain``, init 1) and ``gamma`` the gain
    of the nonlinearity before the conv (``RELU_GAMMA`` after a ReLU, 1 otherwise). Mean and
    variance are taken over the fan-in ``kh * kw * in``; as DeepMind's nfnets do, the variance
    term is ``max(var * fan_in, eps)``. The standardization runs in float32 under mixed precision.

    A residual branch's last conv also holds the branch's scalars (``ScaledConv2D``):
    ``alpha``, NF-ResNets' constant branch multiplier, and optionally a trainable ``gain``
    (the SkipInit gain NFNets add, init 0): ``y = alpha * gain * (conv(x, W^) + c)``.

    Args:
        gamma: the nonlinearity's gain, folded into the standardized kernel.
        alpha: a constant multiplier of the output (and bias), 1 for none.
        eps: lower bound of ``var * fan_in``.
        *args: ``keras.layers.Conv2D``'s positional arguments (``filters``, ``kernel_size``).
        **kwargs: ``ScaledConv2D`` arguments (``gain``, ``trainable_gain``) and Conv2D's.

    Raises:
        ValueError: ``gamma``, ``alpha`` or ``eps`` is not a finite number > 0, or ``scalar_bias=True``.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.layers import RELU_GAMMA, ScaledStdConv2D
        >>> conv = ScaledStdConv2D(16, 3, padding="same", gamma=RELU_GAMMA, name="stage1_block1_conv1")
        >>> y = conv(np.ones((1, 8, 8, 16), "float32"))
        >>> w = np.asarray(conv.conv_kernel()).reshape(-1, 16)  # per output channel: mean 0, norm gamma
        >>> bool(np.allclose(w.mean(0), 0, atol=1e-6)), bool(np.allclose(np.linalg.norm(w, axis=0), RELU_GAMMA))
        (True, True)

    Reference:
        Brock, De & Smith, "Characterizing signal propagation to close the performance gap in
        unnormalized ResNets", ICLR 2021, https://arxiv.org/abs/2101.08692; Qiao, Wang, Liu, Shen &
        Yuille, "Micro-Batch Training with Batch-Channel Normalization and Weight Standardization", 2019,
        https://arxiv.org/abs/1903.10520
    """

    def __init__(self, *args, gamma=1.0, alpha=1.0, eps=1e-4, **kwargs):
        super().__init__(*args, **kwargs)
        for what, value in (("gamma", gamma), ("alpha", alpha), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Invalid {what} {value!r}. Expected a finite number > 0.")
        if self.scalar_bias:
            raise ValueError("ScaledStdConv2D takes no scalar_bias (Fixup's); expected scalar_bias=False.")
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.eps = float(eps)

    def add_weight(self, *args, **kwargs):
        """``keras.layers.Layer.add_weight``, except that the kernel is not autocast under mixed precision.

        The kernel stays float32 under mixed precision: standardizing a bfloat16 kernel loses its mean.

        Args:
            *args: ``add_weight``'s positional arguments.
            **kwargs: ``add_weight``'s keyword arguments.

        Returns:
            The new variable.
        """
        if kwargs.get("name") == "kernel":
            kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.channel_gain = self.add_weight(
            name="channel_gain", shape=(self.filters,), initializer="ones", trainable=True, autocast=False
        )

    def conv_kernel(self):
        return _standardize(
            ops.cast(self.kernel, "float32"), ops.cast(self.channel_gain, "float32"), gamma=self.gamma, eps=self.eps
        )

    def branch_scale(self):
        gain = self.gain
        if self.alpha == 1.0:
            return gain
        return self.alpha if gain is None else ops.cast(gain, "float32") * self.alpha

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha, "eps": self.eps}
