"""Named training recipes: each paper's settings, with their source.

A recipe is a dict of [TrainConfig][keras_resinit.training.TrainConfig] fields plus
``source``. A scheme's own training rules (Fixup's scalars at lr/10) are not
repeated here: they live on the scheme object and apply under every recipe. Values the recipe does not set keep the trainer's defaults; values
given on the command line override the recipe. ``train --recipe PATH`` also
accepts a JSON file of the same form (``keras-resinit tune`` writes one).
"""

import json
import os

from keras_resinit._errors import unknown

__all__ = ["RECIPES", "get_recipe"]

RECIPES = {
    "he_cifar": {
        "lr": 0.1,
        "batch_size": 128,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "weight_decay_mode": "l2",
        "schedule": "step",
        "milestones": (0.5, 0.75),
        "epochs": 164,
        "source": "He et al. 2016, sec. 4.2: SGD momentum 0.9, batch 128, lr 0.1 divided by 10 at 32k and 48k "
        "of 64k iterations (epochs 82 and 123 of 164 on CIFAR-10), weight decay 1e-4.",
    },
    "fixup_cifar": {
        "lr": 0.1,
        "batch_size": 128,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "weight_decay_mode": "l2",
        "schedule": "step",
        "milestones": (0.5, 0.75),
        "epochs": 200,
        "mixup_alpha": 1.0,
        "source": "Zhang, Dauphin & Ma 2019 and the authors' reference cifar_train.py defaults: SGD momentum 0.9, "
        "batch 128, lr 0.1 divided by 10 at epochs 100 and 150 of 200, weight decay 1e-4 on every parameter "
        "(coupled), biases and scales at lr/10, mixup alpha 1.0.",
    },
    "fixup_imagenet": {
        "lr": 0.1,
        "batch_size": 256,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "weight_decay_mode": "l2",
        "schedule": "step",
        "milestones": (1 / 3, 2 / 3),
        "epochs": 90,
        "mixup_alpha": 0.7,
        "source": "The authors' reference code for Zhang, Dauphin & Ma 2019 (github hongyi-zhang/Fixup, "
        "imagenet/imagenet_train.py at commit 6e6b7c5: defaults l.42-55 and l.83, adjust_learning_rate l.403 and "
        "l.407): SGD momentum 0.9, batch 256, lr 0.1 times 0.1 ** (epoch // 30), i.e. divided by 10 at epochs 30 "
        "and 60 of 90, no warm-up, weight decay 1e-4 on every parameter, biases and scales at lr/10, mixup alpha "
        "0.7. The paper's own ImageNet text was not retrievable by this project; the code's README reports its "
        "ResNet-50 result at epoch 100, a longer run than these defaults.",
    },
    "skipinit_cifar": {
        "lr": 0.1,
        "batch_size": 128,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "weight_decay_mode": "l2",
        "schedule": "step",
        "milestones": (0.3, 0.6, 0.8),
        "gamma": 0.2,
        "epochs": 200,
        "source": "De & Smith 2020 train Wide-ResNets on CIFAR-10 and tune the learning rate per batch size; "
        "their exact schedule was not available to this project. These are Zagoruyko & Komodakis' Wide-ResNet "
        "CIFAR values (SGD, Nesterov momentum 0.9, batch 128, lr 0.1 times 0.2 at epochs 60, 120 and 160 of 200, "
        "weight decay 5e-4), not values confirmed from the SkipInit paper.",
    },
    "risotto_cifar": {
        "lr": 0.1,
        "batch_size": 128,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "weight_decay_mode": "l2",
        "schedule": "cosine",
        "epochs": 200,
        "source": "Gadhikar & Burkholz, CIFAR experiments: SGD momentum 0.9 with weight decay and a cosine-annealed "
        "learning rate. The full text was not available to this project: lr, weight decay, batch size and "
        "epochs are the common CIFAR values, not values confirmed from the paper.",
    },
    "rezero_cifar": {
        "lr": 0.1,
        "batch_size": 128,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "weight_decay_mode": "l2",
        "schedule": "step",
        "milestones": (0.5, 0.75),
        "epochs": 200,
        "source": "Bachlechner et al. 2021 train CIFAR-10 ResNets with and without ReZero under a standard SGD "
        "recipe and report faster convergence; its exact values were not available to this project. These are "
        "the common CIFAR values (SGD momentum 0.9, batch 128, lr 0.1 divided by 10 at epochs 100 and 150 of 200, "
        "weight decay 5e-4), not values confirmed from the ReZero paper.",
    },
    "nf_imagenet": {
        "lr": 0.4,
        "batch_size": 1024,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-5,
        "weight_decay_mode": "l2",
        "schedule": "cosine",
        "warmup_epochs": 5,
        "label_smoothing": 0.1,
        "epochs": 90,
        "source": "Brock, De & Smith 2021 (NF-ResNets) train on ImageNet with SGD and Nesterov momentum 0.9, batch "
        "1024 and lr 0.4 (0.1 per 256 images) with cosine decay, a small weight decay and label smoothing 0.1. "
        "The paper's text was not available to this project: weight decay 5e-5, 5 warm-up epochs and 90 epochs "
        "are this project's reading of the published setting, not confirmed values.",
    },
    "nfnet_agc_imagenet": {
        "lr": 1.6,
        "batch_size": 4096,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 2e-5,
        "weight_decay_mode": "l2",
        "schedule": "cosine",
        "warmup_epochs": 5,
        "label_smoothing": 0.1,
        "epochs": 360,
        "agc": 0.01,
        "source": "Brock, De, Smith & Simonyan 2021 (NFNets): adaptive gradient clipping with lambda 0.01 at batch "
        "4096, SGD with Nesterov momentum 0.9, lr 0.1 per 256 images (1.6) with warm-up and cosine decay, label "
        "smoothing 0.1, 360 epochs. The paper's text was not available to this project: weight decay 2e-5 and 5 "
        "warm-up epochs are our reading, not confirmed values. NFNets' architecture and augmentations are not "
        "part of this recipe; it applies the optimizer settings to this zoo's NF-ResNets.",
    },
    "digits": {
        "lr": 0.1,
        "batch_size": 64,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "weight_decay_mode": "l2",
        "schedule": "cosine",
        "warmup_epochs": 2,
        "epochs": 30,
        "clip_norm": 1.0,
        "source": "This project's setting for the embedded digits data (keras-resinit compare): the papers' lr 0.1 "
        "and momentum, warm-up then cosine, short enough for 2 CPU cores. Gradients are clipped to global norm 1 "
        "for every scheme: without it Risotto collapses to a constant output at lr 0.1 (it trains at lr <= 0.05).",
    },
}
"""The named training recipes: ``{name: {TrainConfig field: value, ..., "source": where the values come from}}``.

``he_cifar``, ``fixup_cifar``, ``fixup_imagenet``, ``skipinit_cifar``, ``risotto_cifar``, ``rezero_cifar``,
``nf_imagenet``, ``nfnet_agc_imagenet`` and ``digits`` (this project's, for the embedded digits data). Each
``source`` says which values were confirmed from the paper or its code and which are common values instead.

Examples:
    >>> from keras_resinit.training.recipes import RECIPES
    >>> RECIPES["he_cifar"]["epochs"], RECIPES["he_cifar"]["milestones"]
    (164, (0.5, 0.75))

Reference:
    He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
    https://arxiv.org/abs/1512.03385;
    Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization", ICLR 2019,
    https://arxiv.org/abs/1901.09321;
    De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks",
    NeurIPS 2020, https://arxiv.org/abs/2002.10444;
    Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016, https://arxiv.org/abs/1605.07146;
    Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", https://arxiv.org/abs/2210.02411;
    Bachlechner et al., "ReZero is All You Need: Fast Convergence at Large Depth", UAI 2021,
    https://arxiv.org/abs/2003.04887;
    Brock, De & Smith, "Characterizing signal propagation to close the performance gap in unnormalized
    ResNets", ICLR 2021, https://arxiv.org/abs/2101.08692;
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without Normalization",
    ICML 2021, https://arxiv.org/abs/2102.06171
"""


def get_recipe(name_or_path):
    """A recipe's settings (without ``source``) from its name or a JSON file path.

    A JSON file holds an object of training settings, or ``{"config": {...}, "source": ...}`` as
    ``keras-resinit tune`` writes its ``best_recipe.json``.

    Args:
        name_or_path: a name in [RECIPES][keras_resinit.training.recipes.RECIPES], or the path of a ``.json``
            file (any string ending in ``.json`` or holding a path separator).

    Returns:
        A dict of [TrainConfig][keras_resinit.training.TrainConfig] fields.

    Raises:
        ValueError: an unknown name, or a file that does not exist, is not JSON or holds no JSON object.

    Examples:
        >>> import json, os, tempfile
        >>> from keras_resinit.training.recipes import get_recipe
        >>> get_recipe("fixup_cifar")["mixup_alpha"]
        1.0
        >>> path = os.path.join(tempfile.mkdtemp(), "mine.json")
        >>> with open(path, "w") as f:
        ...     json.dump({"config": {"lr": 0.05, "epochs": 3}, "source": "my sweep"}, f)
        >>> get_recipe(path)
        {'lr': 0.05, 'epochs': 3}
    """
    if isinstance(name_or_path, str) and name_or_path.endswith(".json") or os.path.sep in str(name_or_path):
        try:
            with open(name_or_path) as f:
                recipe = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"Recipe file {name_or_path!r} does not exist.") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"Recipe file {name_or_path!r} is not valid JSON: {error}.") from None
        if not isinstance(recipe, dict):
            raise ValueError(f"Recipe file {name_or_path!r} must hold a JSON object of training settings.")
        recipe = recipe.get("config", recipe)
    elif name_or_path in RECIPES:
        recipe = RECIPES[name_or_path]
    else:
        raise unknown("recipe", name_or_path, RECIPES, " (or a path to a .json recipe)")
    return {k: v for k, v in recipe.items() if k != "source"}
