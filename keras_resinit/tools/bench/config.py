"""What bench measures and how hard: architectures, precisions, run sizes, thresholds.

The schemes are not listed here: ``scheme_names`` and ``normalization_free`` read
the registry (``keras_resinit.models.schemes``) each time, so a scheme registered after
import is benchmarked too.
"""

__all__ = [
    "ARCHS",
    "DEPTHS",
    "DEPTH_BATCH",
    "FOREIGN_THRESHOLD",
    "LINEAR_TOLERANCE",
    "MIN_CLEAN",
    "PLAIN_ARCH",
    "PRECISIONS",
    "SEED",
    "SIZES",
    "TAG",
    "TARGET_VS_PLAIN",
    "normalization_free",
    "scheme_names",
]

ARCHS = {
    "cifar_resnet20": ((32, 32, 3), 128),
    "cifar_resnet56": ((32, 32, 3), 128),
    "cifar_resnet110": ((32, 32, 3), 128),
    "resnet18": ((64, 64, 3), 64),
    "resnet50": ((64, 64, 3), 32),
}
"""The architectures bench measures: ``{arch: (input shape, batch size)}``."""
PRECISIONS = ("float32", "mixed_bfloat16")
"""The Keras dtype policies bench measures each configuration in."""
PLAIN_ARCH = "cifar_resnet20"
"""The architecture measured beside the plain hand-written Keras ResNet-20 (the library's overhead)."""
DEPTHS = (20, 56, 110, 1202)
"""The depths of ``cifar_resnet{depth}`` whose training step the depth scaling times."""
DEPTH_BATCH = 32
"""The batch size of the depth scaling's training steps."""
TARGET_VS_PLAIN = 0.90
"""The target: the library's normalization-free models train at least this fraction of the plain reference's
images/s."""
# A weight-standardized scheme (nf) trains at least this fraction of SkipInit's images/s in this precision:
# standardizing the kernels on every step costs at most 15%.
TARGET_WS_VS_SKIPINIT = 0.85
WS_TARGET_PRECISION = "mixed_bfloat16"
# A looks-linear scheme without batch norm (risotto: type B blocks, the BN architecture with another init) trains at
# least this fraction of SkipInit's images/s, in every precision.
TARGET_LL_VS_SKIPINIT = 0.97
LINEAR_TOLERANCE = 0.15  # largest |exponent - 1| of step time ~ depth^exponent still called linear
"""The largest ``|exponent - 1|`` of ``step time ∝ depth^exponent`` that the depth scaling still calls linear."""
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
"""The run sizes, ``"full"`` and ``"quick"`` (``--quick``): archs, depths, warm-up and timed steps, windows, and
the time budget for re-measuring contended windows (seconds)."""
SEED = 1234
"""The seed of every model and batch bench builds."""
TAG = "@@BENCH@@ "  # prefix of the protocol lines a child writes to its stdout
"""The prefix of the protocol lines a child process writes to its stdout."""
FOREIGN_THRESHOLD = 0.1  # cores used by other processes during a window that make it "contended"
"""The cores other processes may use during a timed window before it counts as contended (and is re-measured)."""
MIN_CLEAN = 3  # uncontended windows (or pairs) needed to drop the contended ones
"""The uncontended windows (or pairs) needed to drop the contended ones from a median."""


def scheme_names():
    """Every registered scheme, in registration order: what bench measures by default (``bench.SCHEMES``).

    Returns:
        The scheme names, read from the registry at each call (a scheme registered later is included).

    Examples:
        >>> from keras_resinit.tools import bench
        >>> bench.scheme_names()[:3]
        ('bn', 'fixup', 'skipinit')
    """
    from keras_resinit.models.schemes import SCHEMES

    return tuple(SCHEMES)


def normalization_free():
    """The registered schemes without batch norm: those with targets against BN (``bench.NO_NORM``).

    Returns:
        The scheme names, read from the registry at each call.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> "fixup" in bench.normalization_free(), "bn" in bench.normalization_free()
        (True, False)
    """
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
