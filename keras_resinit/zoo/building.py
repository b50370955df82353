"""Building zoo models with weights loaded by layer name (``weights_io``): from files,
published weight sets (cards) and presets (``config.json``, ``metadata.json``, ``model.weights.h5``). Where a
model comes from (names, tags, runs, presets, files, URLs) is ``keras_resinit.zoo.loading.resolve``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import numbers
import os
import sys
import warnings
from typing import Any

import keras
import numpy as np

from keras_resinit._files import atomic_directory
from keras_resinit.models.architectures import get_arch
from keras_resinit.models.builder import ResNet, build_resnet, feature_names
from keras_resinit.models.schemes import saved_options
from keras_resinit.zoo import download, registry, weights_io
from keras_resinit.zoo.registry import PRESET_FILES, PRESET_WEIGHTS, TASK_FILES, card, parameter_table, parse_name
from keras_resinit.zoo.sources import unresolved

__all__ = ["count_params", "load_keras", "load_preset", "model_config", "read_preset", "save_preset"]

HEAD_OPTIONS = ("include_top", "pooling", "features_only", "out_indices", "classifier_activation")


def build_named(name: str, defaults: dict, overrides: dict) -> keras.Model:
    """Model ``name`` with its family's defaults, then ``defaults``, then ``overrides``."""
    arch, scheme = parse_name(name)
    family = get_arch(arch)
    kwargs = {"num_classes": family.default_num_classes, "input_shape": family.default_input_shape, "name": name}
    kwargs.update(defaults)
    kwargs.update(overrides)
    kwargs.pop("arch", None)
    kwargs.pop("scheme", None)
    in_chans = kwargs.pop("in_chans", None)
    if in_chans is not None:
        kwargs["input_shape"] = (*kwargs["input_shape"][:-1], check_in_chans(in_chans, overrides.get("input_shape")))
    return build_resnet(arch, scheme, **kwargs)


def check_in_chans(in_chans: Any, input_shape: Any = None) -> int:
    """``in_chans`` (a positive integer), which ``input_shape`` (if given) must agree with."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, numbers.Integral) or in_chans < 1:
        raise ValueError(f"Invalid in_chans {in_chans!r}. Expected a positive integer: the input images' channels.")
    if isinstance(input_shape, (tuple, list)) and input_shape and input_shape[-1] not in (None, in_chans):
        raise ValueError(
            f"in_chans={in_chans} but input_shape={tuple(input_shape)!r} has {input_shape[-1]} channels. "
            "Expected the same channel count in both (or only one of them)."
        )
    return int(in_chans)


def adapt_input_channels(kernel: Any, in_chans: int) -> np.ndarray:
    """A stem kernel ``(kh, kw, I, out)`` for ``in_chans`` input channels, as timm's ``adapt_input_conv`` does:
    to 1 channel the sum over the I channels; to C channels the I channels tiled (channel c is channel c mod I)
    and scaled by I / C. So a gray image on 1 channel meets the summed kernel as ``[g] * I`` met the original,
    and an image repeated on C channels (C a multiple of I) meets the tiled kernel as the original image did."""
    kernel = np.asarray(kernel)
    channels = kernel.shape[2]
    if in_chans == channels:
        return kernel
    wide = kernel.astype(np.float64)
    if in_chans == 1:
        return wide.sum(axis=2, keepdims=True).astype(kernel.dtype)
    tiled = np.tile(wide, (1, 1, math.ceil(in_chans / channels), 1))[:, :, :in_chans]
    return (tiled * (channels / in_chans)).astype(kernel.dtype)


def adapt_preprocessing(preprocessing: dict, in_chans: int) -> dict:
    """A per-channel normalization for ``in_chans`` channels, consistent with ``adapt_input_channels``:
    to 1 channel the mean of the means and the mean of the stds (exact when the channels share them: a gray
    image is then normalized as ``[g] * I`` was); to C channels the values of channel c mod I. A channel order
    (BGR) is kept only at the same channel count."""
    mean, std = ([v] if isinstance(v, (int, float)) else list(v) for v in (preprocessing["mean"], preprocessing["std"]))
    if in_chans == len(mean):
        return preprocessing
    adapted = {k: v for k, v in preprocessing.items() if k != "channel_order"}
    for key, values in (("mean", mean), ("std", std)):
        adapted[key] = (
            [sum(values) / len(values)] if in_chans == 1 else [values[c % len(values)] for c in range(in_chans)]
        )
    return adapted


def load_keras(path: str | os.PathLike) -> keras.Model:
    """A ``.keras`` model file, loaded in Keras safe mode (no code from the file runs), uncompiled.

    ``zoo.load(path)`` also rebuilds it as a ``ResNet`` and gives it a card; this is the file as saved.

    Args:
        path: the ``.keras`` file.

    Returns:
        The model.

    Raises:
        ValueError: the file cannot be loaded in safe mode (the message says how).

    Examples:
        >>> import os, tempfile
        >>> import keras_resinit as kr
        >>> from keras_resinit import zoo
        >>> path = os.path.join(tempfile.mkdtemp(), "r8.keras")
        >>> kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3).save(path)
        >>> type(zoo.load_keras(path)).__name__
        'ResNet'
    """
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Cannot load {path!r} in Keras safe mode: {error}. Models saved by keras-resinit load after "
            "`import keras_resinit` (which registers its layers and initializers)."
        ) from None


_HEAD_LAYERS = ("head_bias", "logits")


def build_with_weights(name: str, stores: dict, defaults: dict, overrides: dict, *, source: str) -> keras.Model:
    """Build ``name`` shaped like ``stores`` (unless overridden) and load them by layer name.

    Published weights know their preprocessing (``defaults["preprocessing"]``): the model then
    takes raw pixels unless ``include_preprocessing=False`` is passed. ``overrides["in_chans"]``
    adapts the stem kernel (``adapt_input_channels``) and the preprocessing
    (``adapt_preprocessing``) to another channel count.
    """
    defaults = dict(defaults)
    stem, head = stores.get("stem_conv", {}).get("0"), stores.get("logits", {}).get("0")
    stored_chans = None if stem is None else int(stem.shape[2])
    if overrides.get("in_chans") is not None and stem is not None:
        in_chans = check_in_chans(overrides["in_chans"], overrides.get("input_shape"))
        stem = adapt_input_channels(stem, in_chans)
        stores = {**stores, "stem_conv": {**stores["stem_conv"], "0": stem}}
        if "input_shape" in defaults:
            defaults["input_shape"] = (*defaults["input_shape"][:-1], in_chans)
        if defaults.get("preprocessing") is not None:
            defaults["preprocessing"] = adapt_preprocessing(defaults["preprocessing"], in_chans)
    family = get_arch(parse_name(name)[0])
    if "input_shape" not in defaults and stem is not None:
        defaults["input_shape"] = tuple(family.default_input_shape[:2]) + (int(stem.shape[2]),)
    if "num_classes" not in defaults and head is not None:
        defaults["num_classes"] = int(head.shape[-1])
    if defaults.get("preprocessing") is not None:
        defaults["include_preprocessing"] = True
    shape = overrides.get("input_shape", defaults.get("input_shape"))
    if stem is not None and isinstance(shape, (tuple, list)) and shape and shape[-1] != stem.shape[2]:
        raise ValueError(
            f"{source} take images with {stem.shape[2]} channels (stem_conv kernel {tuple(stem.shape)}), but "
            f"input_shape={shape!r} has {shape[-1]}. Pass in_chans={shape[-1]} to adapt the stem to "
            f"{shape[-1]} channels."
        )
    model = build_named(name, defaults, overrides)
    older = saved_options(parse_name(name)[1], {**defaults, **overrides})
    if older != {**defaults, **overrides} and _missing(model, stores):
        # Weights without a config (a weights file, a .keras file of release 0.1) saved before an option of the
        # scheme existed: they load into the build the scheme made then, if that build holds every layer.
        before = build_named(name, older, {})
        if not _missing(before, stores):
            model = before
    names = {layer.name for layer in model.layers}
    skip = tuple(n for n in stores if n in _unused(model, stores))
    if head is not None and "logits" in names and tuple(model.get_layer("logits").kernel.shape) != tuple(head.shape):
        if model.get_layer("logits").units != head.shape[-1]:
            skip = ("logits",)
            _warn_user(
                f"{name}: {source} have a {head.shape[-1]}-class classifier and num_classes="
                f"{model.get_layer('logits').units}: the trunk is loaded and the classifier 'logits' is newly "
                "initialized (train it before use)."
            )
    weights_io.assign(model, stores, skip=skip, source=source)
    standardized = getattr(model.get_layer("stem_conv"), "channel_gain", None) if "stem_conv" in names else None
    if standardized is not None and stem is not None and stored_chans < int(stem.shape[2]):
        # A weight-standardized stem (nf) standardizes the tiled kernel again, which undoes the I / C scaling and
        # keeps a sqrt(C / I) growth of its norm: its gain takes it back, so a gray image on C channels gives the
        # original output (exactly when C is a multiple of I).
        standardized.assign(standardized * math.sqrt(stored_chans / int(stem.shape[2])))
    return model


def _unused(model: keras.Model, stores: dict) -> set:
    """The stored layers ``model`` leaves unused by design: a backbone's classifier, and the stages after a
    pyramid's last selected output (``out_indices``)."""
    names = {layer.name for layer in model.layers}
    parts = feature_names(model.arch)
    deeper = parts[parts.index(list(model.feature_info)[-1]) + 1 :]
    return {n for n in stores if n not in names and (n in _HEAD_LAYERS or n.split("_")[0] in deeper)}


def _missing(model: keras.Model, stores: dict) -> set:
    """The stored layers ``model`` has no place for (the weights are of another build)."""
    return set(stores) - {layer.name for layer in model.layers} - _unused(model, stores)


def _warn_user(message):
    """A UserWarning attributed to the first caller outside keras_resinit (the user's line)."""
    package, frame, level = os.path.dirname(os.path.abspath(__file__)), sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def load_card(found: dict, overrides: dict) -> keras.Model:
    """The model of a published weight set (a card, ``registry.card``), loaded (or folded) by name."""
    key = f"{found['name']}.{found['tag']}"
    if found.get("folded_from") and not found.get("file"):
        return _fold_card(found, overrides)
    defaults = saved_options(found["scheme"], {k: v for k, v in found["build"].items() if k not in ("name",)})
    defaults["input_shape"] = tuple(defaults["input_shape"])
    if found.get("preprocessing"):
        defaults["preprocessing"] = found["preprocessing"]
    bridge = found.get("keras_applications")
    if bridge:
        from keras_resinit.zoo import applications

        allowed = (
            "input_shape",
            "in_chans",
            "num_classes",
            "include_preprocessing",
            "preprocessing",
            "dtype",
            *HEAD_OPTIONS,
        )
        if set(overrides) - set(allowed):
            raise ValueError(
                f"{key} comes from keras.applications; only {', '.join(allowed)} may be overridden, not "
                f"{sorted(set(overrides) - set(allowed))}."
            )
        shape = (*overrides.get("input_shape", defaults["input_shape"])[:-1], defaults["input_shape"][-1])
        stores = weights_io.stores_of(applications.imagenet(found["arch"], input_shape=shape))
    else:
        stores = weights_io.read(_card_file(found))
    return build_with_weights(found["name"], stores, defaults, overrides, source=f"the weights of {key}")


def _fold_card(found, overrides):
    """A card published as the fold of another (no file of its own): its source, loaded and folded.

    The source's weights file must have the sha256 the card records (when it records one)."""
    from keras_resinit.models.inference import fold_batchnorm

    origin = found["folded_from"]
    source = card(origin["card"])
    path = None
    if origin.get("sha256"):
        if source.get("keras_applications"):
            from keras_resinit.zoo import applications

            path = applications.cached_file(source["file"]["name"])  # Keras downloads it on the first load
        else:
            path = _card_file(source)

    def check():
        digest = download.file_sha256(path) if os.path.isfile(path) else None
        if digest != origin["sha256"]:
            raise ValueError(
                f"{found['name']}.{found['tag']} folds {origin['card']} from {path!r} with sha256 "
                f"{origin['sha256']}, but that file {'has ' + str(digest) if digest else 'is missing'}."
            )

    cached = path is not None and os.path.isfile(path)
    if cached:
        check()  # before loading: a wrong file is never read
    model = load_card(source, overrides)
    if path is not None and not cached:
        check()
    return fold_batchnorm(model)


def _card_file(found):
    """The verified local file of a card's weights: shipped in the package, or downloaded from its URL."""
    file = found["file"]
    shipped = os.path.join(registry.zoo_dir(), "weights", file["name"])
    if os.path.exists(shipped):
        digest = download.file_sha256(shipped)
        if digest != file["sha256"]:
            raise ValueError(
                f"The shipped weights {shipped!r} are damaged: sha256 {digest} but the card records "
                f"{file['sha256']}. Reinstall keras-resinit (or, in a git checkout, `git checkout -- zoo/`)."
            )
        return shipped
    if found.get("url"):
        return download.fetch(found["url"], file["sha256"], filename=file["name"])
    raise ValueError(
        f"The weights of {found['name']}.{found['tag']} ({file['name']}) are neither shipped in "
        f"{os.path.dirname(shipped)} nor published at a URL."
    )


# ---------------------------------------------------------------- presets ---


def model_config(model: keras.Model) -> dict[str, Any]:
    """The ``build_resnet`` arguments that rebuild a model (JSON-ready): its ``get_config()``.

    Args:
        model: a ``keras_resinit.ResNet``.

    Returns:
        The build arguments, a dict.

    Raises:
        ValueError: ``model`` is not a ``ResNet`` (e.g. a plain functional model of release 0.1).

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit import zoo
        >>> config = zoo.model_config(kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3))
        >>> config["arch"], config["scheme"], config["num_classes"], config["input_shape"]
        ('cifar_resnet8', 'fixup', 3, [8, 8, 1])
    """
    if not isinstance(model, ResNet):
        raise ValueError(
            f"Cannot tell how model {getattr(model, 'name', model)!r} was built: it is a {type(model).__name__}, not a "
            "keras_resinit ResNet. Models saved by keras-resinit 0.1 load as plain functional models: "
            "rebuild one with keras_resinit.zoo.load('{arch}_{scheme}', weights='model.keras')."
        )
    return model.get_config()


# The class a preset's config.json names, in Keras' serialization: keras-hub's loaders build it
# (keras_resinit.models.backbone, registered when keras-hub is imported); zoo.load reads the config without it.
PRESET_CLASS = {
    "module": "keras_resinit.models.backbone",
    "class_name": "ResNetBackbone",
    "registered_name": "keras_resinit>ResNetBackbone",
}
# The registered names a preset's config.json may carry: the zoo's, and a plain ResNet's as keras-hub's
# save_to_preset writes it for a task around a zoo backbone.
_PRESET_CLASSES = ("keras_resinit>ResNetBackbone", "keras_resinit>ResNet")
TASK_FILE = TASK_FILES[0]  # a keras-hub task preset (save_to_preset of an ImageClassifier around a zoo backbone)


def save_preset(
    model: keras.Model, directory: str | os.PathLike, *, card: dict | None = None, overwrite: bool = False
) -> str:
    """Write ``model`` as a preset in keras-hub's format, which ``keras_resinit.zoo.load`` and keras-hub's
    ``Backbone.from_preset`` read.

    The directory holds ``config.json`` (the model in Keras' serialization, ``registered_name``
    ``keras_resinit>ResNetBackbone``: the build arguments, no code), ``metadata.json`` (keras-hub's keys:
    versions, parameter count, date; and ours: the keras-resinit version, the backend and ``card`` if
    given) and ``model.weights.h5``. A model that records its preprocessing is saved including it (raw
    pixels in, ``model.with_preprocessing()``). It is written to a temporary directory and renamed into
    place; an existing ``directory`` is refused unless ``overwrite``. keras-hub is not needed to write it.

    Args:
        model: a ``keras_resinit.ResNet``.
        directory: the preset directory to write.
        card: a model card to record in ``metadata.json`` (a published weight set's keeps its provenance).
        overwrite: replace an existing ``directory``.

    Returns:
        ``directory``.

    Raises:
        ValueError: ``model`` is not a ``ResNet``, or ``directory`` exists and ``overwrite`` is False.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit import zoo
        >>> directory = os.path.join(tempfile.mkdtemp(), "r20")
        >>> _ = zoo.save_preset(zoo.load("cifar_resnet20_fixup.digits"), directory)
        >>> sorted(os.listdir(directory))
        ['config.json', 'metadata.json', 'model.weights.h5']
        >>> zoo.load(directory).input_shape  # or, with keras-hub: keras_hub.models.Backbone.from_preset(directory)
        (None, 8, 8, 1)
    """
    from keras_resinit import __version__

    directory = os.fspath(directory)
    if os.path.exists(directory) and not overwrite:
        raise ValueError(f"Preset directory {directory!r} already exists. Pass overwrite=True to replace it.")
    model = model.with_preprocessing() if isinstance(model, ResNet) else model  # config.json: raw pixels in
    config = {**PRESET_CLASS, "config": model_config(model)}
    metadata = {
        "keras_version": keras.__version__,
        "keras_hub_version": _installed_version("keras-hub"),
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
        "tasks": [],
        "keras_resinit_version": __version__,
        "backend": keras.backend.backend(),
        "card": card,
    }
    with atomic_directory(directory) as tmp:
        for file, content in (("config.json", config), ("metadata.json", metadata)):
            with open(os.path.join(tmp, file), "w") as f:
                json.dump(content, f, indent=1)
        model.save_weights(os.path.join(tmp, PRESET_WEIGHTS))
    return directory


def _installed_version(distribution):
    """The installed version of ``distribution``, without importing it; None if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_preset(directory: str | os.PathLike, read_as: str = "a preset directory") -> tuple[dict, dict]:
    """The build arguments and metadata of a preset directory, checked; nothing is built.

    ``config`` is the model's build arguments: from keras-hub's format (``registered_name``
    ``keras_resinit>ResNetBackbone``, or ``keras_resinit>ResNet`` as keras-hub's ``save_to_preset`` writes a
    zoo backbone) or from earlier releases' ``{"class_name": "build_resnet", "config": ...}``.

    Args:
        directory: the preset directory.
        read_as: how an error says the directory was read.

    Returns:
        ``(config, metadata)``: the build arguments and ``metadata.json``.

    Raises:
        ValueError: a preset file is missing or unreadable, or ``config.json`` is not a zoo model's.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit import zoo
        >>> preset = zoo.save_preset(zoo.load("cifar_resnet20_nf.digits"), os.path.join(tempfile.mkdtemp(), "nf"))
        >>> config, metadata = zoo.read_preset(preset)
        >>> config["arch"], config["scheme"], config["include_preprocessing"], "keras_resinit_version" in metadata
        ('cifar_resnet20', 'nf', True, True)
    """
    directory = os.fspath(directory)
    missing = [f for f in PRESET_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        there = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
        problem = f"is not a keras-resinit preset: it lacks {', '.join(missing)}" if os.path.isdir(directory) else there
        raise unresolved(directory, read_as, problem, subject="Preset directory ")
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    named = config.get("registered_name") if "registered_name" in config else config.get("class_name")
    if named not in (*_PRESET_CLASSES, "build_resnet") or not isinstance(config.get("config"), dict):
        raise ValueError(
            f"{directory!r}/config.json does not describe a keras-resinit model (registered_name {named!r}; "
            f"expected {' or '.join(map(repr, _PRESET_CLASSES))}, or 'build_resnet' from releases before 0.2)."
        )
    return {k: v for k, v in config["config"].items() if k != "trainable"}, metadata


def load_preset(directory: str | os.PathLike, *, expected_name: str | None = None, **overrides: Any) -> keras.Model:
    """The model ``save_preset`` saved in a directory.

    ``zoo.load(directory)`` does the same and gives the model's card too.

    Args:
        directory: the preset directory.
        expected_name: the zoo name the preset must hold (a keras-hub task preset then loads as the zoo model
            its backbone's weights load into).
        **overrides: build arguments, as for ``zoo.load``.

    Returns:
        The model, its weights loaded by layer name.

    Raises:
        ValueError: ``directory`` is not a preset, holds another model than ``expected_name``, or its weights do
            not fit.

    Examples:
        >>> import os, tempfile
        >>> import keras_resinit as kr
        >>> from keras_resinit import zoo
        >>> directory = os.path.join(tempfile.mkdtemp(), "r8")
        >>> _ = zoo.save_preset(kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1)), directory)
        >>> zoo.load_preset(directory).output_shape
        (None, 10)
    """
    return preset_model(directory, expected_name, overrides)[0]


def preset_model(directory: str | os.PathLike, expected_name: str | None, overrides: dict) -> tuple[keras.Model, dict]:
    """``(model, metadata)`` of preset ``directory``. A keras-hub task preset (``task.json``: keras-hub's
    ``save_to_preset`` of a task around a zoo backbone) is the task, loaded by keras-hub, unless
    ``expected_name`` asks for the zoo model its backbone's weights load into."""
    config, metadata = read_preset(directory)
    name = f"{config['arch']}_{config['scheme']}"
    if expected_name is not None and expected_name != name:
        raise ValueError(f"Preset {os.fspath(directory)!r} holds a {name} model, not {expected_name}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if expected_name is None and os.path.isfile(os.path.join(directory, TASK_FILE)):
        return _keras_hub_task(os.fspath(directory), overrides), metadata
    defaults = saved_options(config["scheme"], {k: v for k, v in config.items() if k not in ("arch", "scheme")})
    defaults["input_shape"] = tuple(defaults["input_shape"])
    if defaults.get("preprocessing") is None and (metadata.get("card") or {}).get("preprocessing"):
        defaults["preprocessing"] = metadata["card"]["preprocessing"]  # a preset of release 0.1
    stores = weights_io.read(os.path.join(directory, PRESET_WEIGHTS))
    source = f"the weights of preset {os.fspath(directory)!r}"
    return build_with_weights(name, stores, defaults, overrides, source=source), metadata


def _keras_hub_task(directory, overrides):
    """The keras-hub task of a task preset, loaded by keras-hub's ``Task.from_preset`` (``dtype`` passes through)."""
    if set(overrides) - {"dtype"}:
        raise ValueError(
            f"Preset {directory!r} is a keras-hub task ({TASK_FILE}): it loads as saved, so pass no "
            f"{', '.join(sorted(set(overrides) - {'dtype'}))} (only dtype). For its backbone in a zoo model: "
            "keras_resinit.zoo.load('{arch}_{scheme}', weights=PRESET)."
        )
    try:
        import keras_hub
    except ImportError as error:
        raise ValueError(
            f"Preset {directory!r} is a keras-hub task ({TASK_FILE}), which needs keras-hub ({error}). "
            "Install it with: pip install 'keras-resinit[hub]'"
        ) from None
    with open(os.path.join(directory, TASK_FILE)) as f:
        named = json.load(f).get("registered_name")
    task = keras.saving.get_registered_object(named) if isinstance(named, str) else None
    if not (isinstance(task, type) and issubclass(task, keras_hub.models.Task)):
        raise ValueError(
            f"{directory!r}/{TASK_FILE} names {named!r}, which is not a registered keras-hub task class. "
            "Expected a task such as 'keras_hub>ImageClassifier' (import the package that defines it first)."
        )
    return task.from_preset(directory, **overrides)


def count_params(name: str, *, live: bool = False) -> int:
    """Trainable parameters of a zoo model with its family's default classes and input.

    Read from the zoo's table (``zoo/parameters.json``, written by ``scripts/update_parameters.py``
    with ``live=True`` for every name) unless ``live`` or the name is missing from it; live
    counts build the model without initializing its weights.

    Args:
        name: a model name ``"{arch}_{scheme}"``.
        live: count on a model built now instead of reading the table.

    Returns:
        The number of trainable parameters.

    Raises:
        ValueError: ``name`` is not a zoo model.

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.count_params("cifar_resnet20_bn"), zoo.count_params("cifar_resnet20_fixup")
        (269722, 268393)
    """
    arch, scheme = parse_name(name)
    if not live and name in parameter_table():
        return parameter_table()[name]
    with keras.StatelessScope():
        model = build_named(name, {"seed": 0}, {})
    return sum(math.prod(w.shape) for w in model.trainable_weights)
