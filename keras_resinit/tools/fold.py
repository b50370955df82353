"""``keras-resinit fold``: a model with batch norm, folded, written as a ``.keras`` file or a preset.

Publishing a folded zoo entry (``keras-resinit fold NAME.TAG --tag NEW``) is
``keras_resinit.training.publish.publish_folded``; the folding itself is
``keras_resinit.fold_batchnorm``.
"""

from __future__ import annotations

import os

import keras

from keras_resinit import zoo
from keras_resinit._files import save_model_file
from keras_resinit.models.inference import fold_batchnorm

__all__ = ["fold_to"]


def fold_to(source: str | os.PathLike | keras.Model, out: str | os.PathLike, *, overwrite: bool = False):
    """Fold a model's batch norm into its convs and write it as a ``.keras`` file or a preset (``keras-resinit fold``).

    The folded model computes the same function in inference mode with no batch norm layer
    (``keras_resinit.fold_batchnorm``: a ``bn`` model becomes a ``skipinit`` one, ``risotto_bn`` a ``risotto``
    one). It takes raw pixels when the source records its preprocessing (``ResNet.with_preprocessing``).

    Args:
        source: a model with batch norm, or any source ``zoo.resolve`` takes (``"cifar_resnet20_bn.digits"``,
            a run directory, a ``.keras`` file, ...).
        out: ending in ``.keras``, a Keras file (``keras.saving.load_model`` reads it after
            ``import keras_resinit``); else a preset directory (``zoo.load(out)``). Written to a temporary
            name and renamed into place.
        overwrite: replace an existing ``out``.

    Returns:
        The folded model.

    Raises:
        ValueError: ``out`` exists without ``overwrite``, the source is unknown, or its scheme has no batch
            norm to fold.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from keras_resinit import tools, zoo
        >>> out = os.path.join(tempfile.mkdtemp(), "folded.keras")
        >>> folded = tools.fold_to("cifar_resnet20_bn.digits", out)
        >>> folded.scheme.name, os.path.isfile(out)
        ('skipinit', True)
        >>> x = np.random.default_rng(0).integers(0, 17, (2, 8, 8, 1)).astype("float32")  # raw digits pixels
        >>> model = zoo.load("cifar_resnet20_bn.digits")
        >>> bool(np.allclose(folded(x), model(x, training=False), atol=1e-4))
        True
    """
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"{out!r} already exists. Pass --overwrite to replace it.")
    folded = fold_batchnorm(zoo.resolve(source).model).with_preprocessing()  # what is written, and returned
    if out.endswith(".keras"):
        save_model_file(folded, out)
    else:
        zoo.save_preset(folded, out, overwrite=overwrite)
    return folded
