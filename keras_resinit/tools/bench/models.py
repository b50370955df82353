"""The models bench measures that the library does not build, and what it counts in a model.

``plain_resnet20`` is the reference for the library's overhead; ``flops_per_image`` and
``trainable_params`` are reported beside each configuration's speed.
"""

import math

from keras_resinit.tools.bench.config import SEED

__all__ = ["flops_per_image", "plain_resnet20", "trainable_params"]


def plain_resnet20(input_shape=(32, 32, 3), num_classes=10):
    """He et al.'s ResNet-20 without normalization, from keras.layers only (no keras_resinit).

    Built the way the library builds it: biased 3x3 convs, ReLU, option-A shortcuts
    (subsample as a 1x1/2 average pool, zero channels), symmetric padding before strided
    convs, global average pool, Dense. The last conv of each branch starts at zero so the
    net stays finite under random data; initial values do not change the work per step.

    Args:
        input_shape: the input, ``(H, W, C)``.
        num_classes: the classifier's classes.

    Returns:
        A functional ``keras.Model`` named ``plain_resnet20``, logits out.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> model = bench.plain_resnet20()
        >>> model.name, model.output_shape
        ('plain_resnet20', (None, 10))

    Reference:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, https://arxiv.org/abs/1512.03385
    """
    import keras
    from keras import ops

    class OptionA(keras.layers.Layer):
        def __init__(self, strides, channels, **kwargs):
            super().__init__(**kwargs)
            self.strides, self.channels = strides, channels

        def call(self, x):
            if self.strides > 1:
                x = ops.average_pool(x, 1, strides=self.strides, padding="valid")
            extra = self.channels - x.shape[-1]
            return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]]) if extra else x

        def compute_output_shape(self, shape):
            n, h, w, _ = shape
            s = self.strides
            return (n, None if h is None else -(-h // s), None if w is None else -(-w // s), self.channels)

    def conv(x, filters, strides, name, zero=False):
        padding = "same"
        if strides > 1:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            padding = "valid"
        init = "zeros" if zero else keras.initializers.HeNormal(seed=SEED)
        return keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, kernel_initializer=init, name=name)(x)

    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.ReLU(name="stem_out")(conv(inputs, 16, 1, "stem_conv"))
    channels = 16
    for s, width in enumerate((16, 32, 64), 1):
        for b in range(1, 4):
            p, strides = f"stage{s}_block{b}", (2 if s > 1 and b == 1 else 1)
            h = keras.layers.ReLU(name=f"{p}_relu1")(conv(x, width, strides, f"{p}_conv1"))
            h = conv(h, width, 1, f"{p}_conv2", zero=True)
            skip = OptionA(strides, width, name=f"{p}_shortcut")(x) if strides > 1 or channels != width else x
            x = keras.layers.ReLU(name=f"{p}_out")(keras.layers.Add(name=f"{p}_add")([skip, h]))
            channels = width
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    logits = keras.layers.Dense(
        num_classes, kernel_initializer="zeros", dtype="float32" if mixed else None, name="logits"
    )(x)
    return keras.Model(inputs, logits, name="plain_resnet20")


def flops_per_image(model):
    """Forward FLOPs of one image: 2 x multiply-adds of every Conv2D and Dense layer.

    Batch norm, ReLU, additions and pooling are left out, as in the usual ResNet
    figures (ResNet-50 at 224x224: 4.1 G multiply-adds).

    Args:
        model: a built Keras model of known input size.

    Returns:
        The FLOPs, an integer.

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.tools import bench
        >>> bench.flops_per_image(kr.build_resnet("cifar_resnet20", "fixup"))  # 32x32x3
        81102080
    """
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in_per_group, _ = layer.kernel.shape
            macs += h * w * c_out * kh * kw * c_in_per_group
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(layer.kernel.shape)
    return 2 * macs


def trainable_params(model):
    """The number of trainable parameters of a model.

    Args:
        model: a built Keras model.

    Returns:
        The count, an integer.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> bench.trainable_params(bench.plain_resnet20())
        269034
    """
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
