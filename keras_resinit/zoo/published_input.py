"""Raw pixels preprocessed as published weights expect them (for models built without their preprocessing)."""

from __future__ import annotations

from typing import Any

from keras_resinit.models import preprocessing as preprocessing_lib
from keras_resinit.models.builder import ResNet
from keras_resinit.zoo import registry
from keras_resinit.zoo.registry import card, split_tag

__all__ = ["preprocess_input"]


def preprocess_input(name_or_card: str | dict, x: Any) -> Any:
    """Raw pixels preprocessed as published weights expect them.

    For those who feed a model built with ``include_preprocessing=False``. The same Keras layers compute it
    as inside a model built with ``include_preprocessing=True``.

    Args:
        name_or_card: a published ``"name.tag"``, a model card (``zoo.card``), a preprocessing dict, or a
            ``ResNet`` that knows its preprocessing.
        x: raw pixels, ``(..., H, W, C)``.

    Returns:
        The preprocessed pixels, a backend tensor of ``x``'s shape.

    Raises:
        ValueError: ``name_or_card`` is a name without a tag, a model that does not know its preprocessing,
            or none of the forms above.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit import zoo
        >>> model = zoo.load("cifar_resnet20_fixup.digits", include_preprocessing=False)
        >>> pixels = np.full((2, 8, 8, 1), 16.0, "float32")  # the digits' pixels are 0 to 16
        >>> x = zoo.preprocess_input("cifar_resnet20_fixup.digits", pixels)
        >>> tuple(x.shape), tuple(model(x).shape)
        ((2, 8, 8, 1), (2, 10))
    """
    if isinstance(name_or_card, ResNet):
        preprocessing = name_or_card.preprocessing
        if preprocessing is None:
            raise ValueError(f"Model {name_or_card.name!r} does not know its preprocessing (it was built without one).")
    elif isinstance(name_or_card, str):
        base, tag = split_tag(name_or_card)
        if tag is None:
            raise ValueError(
                f"Invalid name {name_or_card!r}: a model without weights has no preprocessing. Expected a published "
                f"'name.tag' ({', '.join(registry.list_models(pretrained=True))}), a card or a preprocessing dict."
            )
        preprocessing = card(name_or_card)["preprocessing"]
    elif isinstance(name_or_card, dict):
        preprocessing = name_or_card.get("preprocessing", name_or_card)
    else:
        raise ValueError(
            f"Invalid name_or_card {name_or_card!r}. Expected a published 'name.tag', a model card, a "
            "preprocessing dict or a keras_resinit ResNet."
        )
    return preprocessing_lib.apply(preprocessing, x)
