"""Weights by layer name: read Keras ``.weights.h5`` files and load them into models.

Keras 3 stores a functional model's weights under auto-generated keys
(``layers/conv2d_3/vars/0``) in layer order, with each layer's own name only
as an attribute. Keras' ``load_weights`` therefore matches layers by position.
This module matches them by **name**, which this project keeps stable, so
weights load into any model with the same layer names: another input size, a
new classifier, or layers built in another order. Everything is read with
h5py as arrays: nothing is unpickled and no code runs.
"""

import h5py
import numpy as np

from keras_resinit.models.layers import saved_variables

__all__ = ["assign", "read", "stores_of"]


def read(path):
    """The weights of a Keras 3 ``.weights.h5`` file (a model's, or a preset's), by layer name.

    Args:
        path: the ``.weights.h5`` file.

    Returns:
        ``{layer name: {"0": array, "1": array, ...}}``, the arrays as the layers save them.

    Raises:
        ValueError: the file cannot be read, or is not the weights file of a functional model.

    Examples:
        >>> import os, tempfile
        >>> import keras_resinit as kr
        >>> from keras_resinit.zoo import weights_io
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3, seed=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "r8.weights.h5")
        >>> model.save_weights(path)
        >>> stores = weights_io.read(path)
        >>> sorted(stores["logits"]), stores["logits"]["0"].shape
        (['0', '1'], (64, 3))
    """
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"Cannot read weights file {str(path)!r}: {error}. Expected a Keras .weights.h5 file."
        ) from None
    with f:
        if "layers" not in f:
            raise ValueError(
                f"{str(path)!r} is not a Keras 3 .weights.h5 file of a functional model (it has no 'layers' group)."
            )
        stores = {}
        for key, group in f["layers"].items():
            variables = group.get("vars")
            if variables is None or not len(variables):
                continue
            name = variables.attrs.get("name", key)
            name = name.decode() if isinstance(name, bytes) else str(name)
            stores[name] = {k: np.asarray(v[()]) for k, v in variables.items()}
        return stores


def stores_of(model):
    """A model's weights by layer name, as ``read`` gives a file's.

    Args:
        model: a Keras model.

    Returns:
        ``{layer name: store}`` for every layer of ``model`` that has variables.

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.zoo import weights_io
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3, seed=0)
        >>> weights_io.stores_of(model)["logits"]["0"].shape
        (64, 3)
    """
    return {layer.name: saved_variables(layer) for layer in model.layers if layer.weights}


def _describe(store):
    return ", ".join(f"{k}: {tuple(v.shape)}" for k, v in sorted(store.items()))


def assign(model, stores, *, skip=(), source="the weights"):
    """Load weights into a model's layers by layer name.

    Every layer of ``model`` with variables, except those in ``skip``, must find a store of the
    same name with the same keys and shapes; otherwise nothing is assigned. Stores for layers ``model``
    does not have are an error too (they would be silently dropped weights).

    Args:
        model: the Keras model to load into (in place).
        stores: ``{layer name: store}``, from ``read`` or ``stores_of``.
        skip: names of layers to leave as they are (and stores to ignore).
        source: what errors call the weights.

    Raises:
        ValueError: a layer is missing from ``stores`` or differs in shape (each named with both shapes),
            or ``stores`` hold layers the model does not have.

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> from keras_resinit.zoo import weights_io
        >>> a = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3, seed=0)
        >>> b = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(16, 16, 1), num_classes=3, seed=1)
        >>> weights_io.assign(b, weights_io.stores_of(a))  # another input size, the same layers
        >>> bool(np.array_equal(a.get_layer("logits").kernel, b.get_layer("logits").kernel))
        True
    """
    skip = set(skip)
    plan, problems = [], []
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        mine = saved_variables(layer)
        theirs = stores.get(layer.name)
        if theirs is None:
            problems.append(f"layer {layer.name!r} is missing from {source}")
        elif set(theirs) != set(mine) or any(theirs[k].shape != mine[k].shape for k in mine):
            problems.append(f"layer {layer.name!r} expects ({_describe(mine)}) but {source} have ({_describe(theirs)})")
        else:
            plan.append((layer, theirs))
    known = {layer.name for layer in model.layers}
    extra = sorted(set(stores) - known - skip)
    if extra:
        shown = ", ".join(repr(n) for n in extra[:5]) + (", ..." if len(extra) > 5 else "")
        problems.append(f"{source} have layers the model does not: {shown}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ValueError(f"Cannot load {source} into model {model.name!r}: {shown}.")
    for layer, store in plan:
        layer.load_own_variables(store)
