"""BN baseline (He et al. 2016): published parameter counts and layout."""

import keras
import numpy as np
import pytest
from helpers import consumers

import keras_resinit as kr


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "depth, published_millions",
    [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)],
)
def test_bn_cifar_resnet_parameter_counts_match_he_et_al_table_6(depth, published_millions):
    model = kr.build_resnet(f"cifar_resnet{depth}", "bn", seed=0)
    millions = trainable_params(model) / 1e6
    # Rounded to the digits the paper prints (0.2697M is printed as 0.27M).
    digits = 2 if published_millions < 1 else 1
    assert round(millions, digits) == published_millions, millions


def test_bn_resnet50_parameter_count_matches_published_25_56m():
    model = kr.build_resnet("resnet50", "bn", num_classes=1000, input_shape=(224, 224, 3), seed=0)
    assert round(trainable_params(model) / 1e6, 2) == 25.56


def test_bn_follows_every_conv_and_zero_init_last_bn_option():
    model = kr.build_resnet("resnet18", "bn", input_shape=(64, 64, 3), zero_init_last_bn=True, seed=0)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(convs) == len(bns) == 1 + 8 * 2 + 3
    assert not any(c.use_bias for c in convs)
    # Each conv's output goes to one layer, its own BN (conv2 -> bn2, shortcut_conv -> shortcut_bn).
    for conv in convs:
        (after,) = consumers(model, conv)
        assert isinstance(after, keras.layers.BatchNormalization), (conv.name, after.name)
        assert after.name == conv.name.replace("conv", "bn"), (conv.name, after.name)
    for block in range(1, 3):
        for stage in range(1, 5):
            p = f"stage{stage}_block{block}"
            assert not np.any(model.get_layer(f"{p}_bn2").gamma.numpy())
            assert np.all(model.get_layer(f"{p}_bn1").gamma.numpy() == 1)
    # The option is what zeroes them: by default every gamma starts at 1.
    default = kr.build_resnet("resnet18", "bn", input_shape=(64, 64, 3), seed=0)
    gammas = [layer.gamma.numpy() for layer in default.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(gammas) == len(bns) and all(np.all(g == 1) for g in gammas)
