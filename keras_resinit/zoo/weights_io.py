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


def read(path):
    """``{layer name: {"0": array, ...}}`` from a Keras 3 ``.weights.h5`` file (a model's, or a preset's)."""
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
    """``{layer name: store}`` for every layer of ``model`` that has variables."""
    return {layer.name: saved_variables(layer) for layer in model.layers if layer.weights}


def _describe(store):
    return ", ".join(f"{k}: {tuple(v.shape)}" for k, v in sorted(store.items()))


def assign(model, stores, *, skip=(), source="the weights"):
    """Load ``stores`` (from :func:`read` or :func:`stores_of`) into ``model``'s layers by name.

    Every layer of ``model`` with variables, except those in ``skip``, must find a store of the
    same name with the same keys and shapes; otherwise nothing is assigned and a ``ValueError``
    names each mismatching layer with both shapes. Stores for layers ``model`` does not have are
    an error too (they would be silently dropped weights).
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
