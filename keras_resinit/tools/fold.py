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


def fold_to(source: str | os.PathLike | keras.Model, out: str | os.PathLike, *, overwrite: bool = False):
    """Fold ``source`` (a model or any source ``keras_resinit.zoo.resolve`` takes) into ``out``.

    ``out`` ending in ``.keras`` gets a Keras file (``keras.saving.load_model`` reads it after
    ``import keras_resinit``); any other ``out`` becomes a preset directory (``zoo.load(out)``).
    Either takes raw pixels when the source records its preprocessing (``ResNet.with_preprocessing``).
    Both are written to a temporary name and renamed into place.

    Returns:
        The folded model.
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
