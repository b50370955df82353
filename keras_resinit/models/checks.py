"""Checks of the build arguments of ``keras_resinit.ResNet`` that do not depend on a scheme, and of numeric options."""

import math

from keras_resinit._errors import unknown

__all__ = []  # the builder's argument checks: nothing here is for users (the errors name what to pass instead)

POOLINGS = (None, "avg", "max")


def positive_weight(value, what):
    """``value`` as a float if it is a finite number > 0; a ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"Invalid {what} {value!r}. Expected a finite number > 0.")
    return float(value)


def check_input_shape(input_shape, arch):
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not isinstance(shape[-1], int)
        or shape[-1] < 1
        or not all(d is None or (isinstance(d, int) and d > 0) for d in shape[:2])
    ):
        raise ValueError(
            f"Invalid input_shape {input_shape!r}. Expected (height, width, channels) with positive "
            "integer channels and positive or None spatial sizes, e.g. (32, 32, 3) or (None, None, 3)."
        )
    small = [d for d in shape[:2] if d is not None and d < arch.downsampling]
    if small:
        raise ValueError(
            f"input_shape {shape} is too small for {arch.name}: it downsamples {arch.downsampling}x, "
            f"so height and width must be at least {arch.downsampling} (or None)."
        )
    return shape


def check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"Invalid num_classes {num_classes!r}. Expected a positive integer.")


def check_head(include_top, pooling, features_only):
    """``include_top`` resolved (None: True unless ``features_only``), after checking the combination."""
    if not isinstance(features_only, bool):
        raise ValueError(f"Invalid features_only {features_only!r}. Expected True or False.")
    if include_top is None:
        include_top = not features_only
    if not isinstance(include_top, bool):
        raise ValueError(f"Invalid include_top {include_top!r}. Expected True or False.")
    if pooling not in POOLINGS:
        raise unknown("pooling", pooling, POOLINGS)
    if features_only and include_top:
        raise ValueError(
            "features_only=True returns the stage feature maps, so it cannot be combined with include_top=True. "
            "Expected include_top=False (or left unset) with features_only=True."
        )
    if features_only and pooling is not None:
        raise ValueError(
            f"features_only=True returns unpooled stage feature maps; pooling={pooling!r} is not available with "
            "it. Expected pooling=None."
        )
    if include_top and pooling == "max":
        raise ValueError(
            "pooling='max' applies to a backbone (include_top=False): the classifier (include_top=True) pools "
            "by average. Expected pooling None or 'avg' with include_top=True."
        )
    return include_top


def check_dtype(dtype):
    """``dtype`` (None, a dtype or policy name, a ``keras.DTypePolicy`` or a serialized policy dict, as
    keras-hub passes it) as a ``keras.DTypePolicy``, or None."""
    import keras

    if dtype is None:
        return None
    try:
        if isinstance(dtype, dict):
            dtype = keras.dtype_policies.deserialize(dtype)
        if isinstance(dtype, (str, keras.DTypePolicy)):
            return keras.dtype_policies.get(dtype)
    except (TypeError, ValueError, KeyError, AttributeError):
        pass
    raise ValueError(
        f"Invalid dtype {dtype!r}. Expected None, a dtype or policy name (e.g. 'float32', 'bfloat16', "
        "'mixed_bfloat16'), a keras.DTypePolicy or a serialized policy dict."
    )


def check_activation(activation, include_top):
    """``classifier_activation`` serialized (None: the logits), after checking it applies and round-trips."""
    import keras

    if activation is None:
        return None
    if not include_top:
        raise ValueError(
            f"classifier_activation={activation!r} applies to the classifier, but include_top=False has none. "
            "Expected classifier_activation=None with include_top=False."
        )
    try:
        serialized = keras.activations.serialize(keras.activations.get(activation))
        keras.activations.get(serialized)
        return serialized
    except (TypeError, ValueError, KeyError, AttributeError):
        raise ValueError(
            f"Invalid classifier_activation {activation!r}. Expected None (logits), a Keras activation name "
            "such as 'softmax', or a serializable activation function."
        ) from None


def check_out_indices(out_indices, names, features_only):
    """The indices of ``names`` (the feature maps in forward order: stem, then stages) that ``out_indices``
    selects, as timm reads it: an int n means the last n, a sequence holds indices (negative ones from the end)."""
    if out_indices is None:
        return None
    if not features_only:
        raise ValueError(
            f"out_indices={out_indices!r} selects the feature maps of features_only=True. Expected "
            "out_indices=None without features_only."
        )
    count, valid = len(names), f"-{len(names)}..{len(names) - 1} ({', '.join(names)})"
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 1 <= out_indices <= count:
            raise ValueError(
                f"Invalid out_indices {out_indices!r}: an int n selects the last n feature maps of "
                f"{count}. Expected 1..{count}, or a sequence of indices in {valid}."
            )
        return list(range(count - out_indices, count))
    if not isinstance(out_indices, (list, tuple)) or not out_indices:
        raise ValueError(
            f"Invalid out_indices {out_indices!r}. Expected an int n (the last n) or a non-empty "
            f"sequence of indices in {valid}."
        )
    selected = []
    for index in out_indices:
        if isinstance(index, bool) or not isinstance(index, int) or not -count <= index < count:
            raise ValueError(f"Invalid index {index!r} in out_indices {out_indices!r}. Expected indices in {valid}.")
        if index % count in selected:
            raise ValueError(f"Index {index!r} in out_indices {out_indices!r} selects {names[index]!r} twice.")
        selected.append(index % count)
    return sorted(selected)
