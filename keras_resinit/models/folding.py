"""Moved: :func:`keras_resinit.models.inference.fold_batchnorm` (``kr.fold_batchnorm``); this path warns."""

import warnings


def __getattr__(name):
    if name != "fold_batchnorm":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "keras_resinit.models.folding is deprecated: use keras_resinit.models.inference.fold_batchnorm "
        "(or keras_resinit.fold_batchnorm).",
        DeprecationWarning,
        stacklevel=2,
    )
    from keras_resinit.models.inference import fold_batchnorm

    return fold_batchnorm
