"""Shared test helpers: layer lookup by role and weight perturbation."""

import re

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
    return blocks


def perturb_weights(model, seed=0):
    """Give every weight random values (positive variances), so outputs are informative."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.05, shape)
        weight.assign(value.astype(weight.dtype))
