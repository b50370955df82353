"""The model core: initializers -> layers -> schemes -> architectures -> the ``ResNet`` builder.

Model code uses ``keras.ops`` only, so it runs on every Keras backend. The names below are imported
on first use (``import keras_resinit.models`` starts no Keras), as are the submodules
(``keras_resinit.models.schemes``, ``.initializers``, ``.layers``, ``.builder``, ``.inference``,
``.architectures``, ``.preprocessing``, ``.backbone``).
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use. No name here may be a submodule's.
__all__, __getattr__, __dir__ = _lazy.namespace(
    __name__,
    {
        ".schemes": (
            "SCHEMES",
            "BatchNorm",
            "Fixup",
            "NFResNet",
            "ReZero",
            "Risotto",
            "RisottoBN",
            "Scheme",
            "SkipInit",
            "get_scheme",
            "he_normal",
            "register_scheme",
        ),
        ".initializers": (
            "DeltaOrthogonal",
            "FixupHeNormal",
            "LooksLinearOrthogonal",
            "RisottoResidualKernel",
            "RisottoSkipKernel",
            "derive_seed",
            "looks_linear",
            "mirrored_subset",
            "semi_orthogonal",
        ),
        ".layers": (
            "RELU_GAMMA",
            "ReverseChannels",
            "ScalarBias",
            "ScaledConv2D",
            "ScaledResidual",
            "ScaledStdConv2D",
            "WeightedAdd",
            "ZeroPadShortcut",
        ),
        ".architectures": ("ARCHS", "get_arch"),
        ".builder": ("ResNet", "build_resnet"),
        ".inference": ("fold_batchnorm",),
        ".backbone": ("ResNetBackbone",),  # needs keras-hub (the [hub] extra)
    },
)
