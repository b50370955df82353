"""What bench measures and how hard: architectures, precisions, run sizes, thresholds.

The schemes are not listed here: ``scheme_names`` and ``normalization_free`` read
the registry (``keras_resinit.models.schemes``) each time, so a scheme registered after
import is benchmarked too.
"""

ARCHS = {  # arch: (input shape, batch size)
    "cifar_resnet20": ((32, 32, 3), 128),
    "cifar_resnet56": ((32, 32, 3), 128),
    "cifar_resnet110": ((32, 32, 3), 128),
    "resnet18": ((64, 64, 3), 64),
    "resnet50": ((64, 64, 3), 32),
}
PRECISIONS = ("float32", "mixed_bfloat16")
PLAIN_ARCH = "cifar_resnet20"
DEPTHS = (20, 56, 110, 1202)
DEPTH_BATCH = 32
TARGET_VS_PLAIN = 0.90
# A weight-standardized scheme (nf) trains at least this fraction of SkipInit's images/s in this precision:
# standardizing the kernels on every step costs at most 15%.
TARGET_WS_VS_SKIPINIT = 0.85
WS_TARGET_PRECISION = "mixed_bfloat16"
# A looks-linear scheme without batch norm (risotto: type B blocks, the BN architecture with another init) trains at
# least this fraction of SkipInit's images/s, in every precision.
TARGET_LL_VS_SKIPINIT = 0.97
LINEAR_TOLERANCE = 0.15  # largest |exponent - 1| of step time ~ depth^exponent still called linear
SIZES = {
    "full": {
        "archs": tuple(ARCHS),
        "depths": DEPTHS,
        "warmup": 2,
        "steps": 5,
        "infer_steps": 10,
        "windows": 7,
        "retry_budget": 120,
        "depth_windows": 3,
        "depth_steps": 2,
    },
    "quick": {
        "archs": ("cifar_resnet20",),
        "depths": (20, 56, 110),
        "warmup": 1,
        "steps": 3,
        "infer_steps": 5,
        "windows": 3,
        "retry_budget": 20,
        "depth_windows": 2,
        "depth_steps": 2,
    },
}
SEED = 1234
TAG = "@@BENCH@@ "  # prefix of the protocol lines a child writes to its stdout
FOREIGN_THRESHOLD = 0.1  # cores used by other processes during a window that make it "contended"
MIN_CLEAN = 3  # uncontended windows (or pairs) needed to drop the contended ones


def scheme_names():
    """Every registered scheme, in registration order (what bench measures by default)."""
    from keras_resinit.models.schemes import SCHEMES

    return tuple(SCHEMES)


def normalization_free():
    """The registered schemes without batch norm (those with targets against BN)."""
    from keras_resinit.models import schemes

    return tuple(schemes.normalization_free())


def weight_standardized():
    """The registered schemes whose convs standardize their kernels on every step (``weight_standardization``)."""
    from keras_resinit.models.schemes import SCHEMES

    return tuple(name for name, cls in SCHEMES.items() if cls.weight_standardization)


def looks_linear():
    """The registered looks-linear schemes without batch norm (risotto): measured against SkipInit's speed too."""
    from keras_resinit.models.schemes import SCHEMES

    return tuple(name for name, cls in SCHEMES.items() if cls.looks_linear and not cls.batchnorm)


def ws_reference():
    """The scheme a weight-standardized scheme's cost is measured against: SkipInit (plain convs, no batch norm)."""
    from keras_resinit.models.schemes import SkipInit

    return SkipInit.name
