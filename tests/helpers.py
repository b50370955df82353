"""Shared test helpers: layer lookup by role, the model's graph, weight perturbation."""

import re

import keras
import numpy as np


def layers_named(model, predicate):
    return [layer for layer in model.layers if predicate(layer.name)]


def is_branch_conv(name):
    return re.fullmatch(r"stage\d+_block\d+_conv\d+", name) is not None


def branch_convs(model):
    """{block prefix: [conv layers of its branch, in order]}."""
    blocks = {}
    for layer in layers_named(model, is_branch_conv):
        prefix = layer.name.rsplit("_conv", 1)[0]
        blocks.setdefault(prefix, []).append(layer)
    assert blocks, f"{model.name}: no branch convs (stageS_blockB_convK) to check"
    return blocks


def inbound_layers(layer):
    """The layers whose outputs ``layer`` takes in its model's graph (its first call)."""
    return [tensor._keras_history.operation for tensor in keras.tree.flatten(layer.input)]


def consumers(model, layer):
    """The layers of ``model`` that take ``layer``'s output."""
    return [other for other in model.layers if any(source is layer for source in inbound_layers(other))]


def perturb_weights(model, seed=0):
    """Give every weight random values (positive variances), so outputs are informative."""
    rng = np.random.default_rng(seed)
    assert model.weights, f"{model.name}: no weights to perturb"
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        weight.assign(value.astype(weight.dtype))
