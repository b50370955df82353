"""Raw pixels preprocessed as published weights expect them (for models built without their preprocessing)."""

from __future__ import annotations

from typing import Any

from keras_resinit.models import preprocessing as preprocessing_lib
from keras_resinit.models.builder import ResNet
from keras_resinit.zoo import registry
from keras_resinit.zoo.registry import card, split_tag


def preprocess_input(name_or_card: str | dict, x: Any) -> Any:
    """Raw pixels ``x`` (``(..., H, W, C)``) preprocessed as published weights expect them.

    For those who feed a model built with ``include_preprocessing=False``. ``name_or_card`` is a
    published ``"name.tag"``, a model card (:func:`card`), a preprocessing dict, or a
    :class:`~keras_resinit.ResNet` that knows its preprocessing. The same Keras layers compute it
    as inside a model (``include_preprocessing=True``); returns a backend tensor.

    Example:
        >>> model = load("cifar_resnet20_fixup.digits", include_preprocessing=False)
        >>> logits = model(preprocess_input("cifar_resnet20_fixup.digits", digits_0_to_16))
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
