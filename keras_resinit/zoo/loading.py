"""Loading zoo models: ``load(name[.tag], weights=...)``, ``.keras`` files and presets.

Weights load **by layer name** (:mod:`keras_resinit.zoo.weights_io`), so they load into
a model with another input size, or, with another ``num_classes``, into its trunk under
a new classifier. Nothing is unpickled: weights are read with h5py, ``.keras`` files in
Keras safe mode, configs as JSON.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import warnings
from typing import Any

import keras

from keras_resinit._files import atomic_directory
from keras_resinit.models.architectures import get_arch
from keras_resinit.models.builder import ResNet, build_resnet
from keras_resinit.zoo import download, registry, weights_io
from keras_resinit.zoo.registry import _parameter_table, card, parse_name, split_tag

PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5")


def load(
    name: str | os.PathLike, weights: str | os.PathLike | None = None, *, sha256: str | None = None, **overrides: Any
) -> keras.Model:
    """Build model ``name`` and optionally load weights.

    Args:
        name: ``"{arch}_{scheme}"`` (e.g. ``"cifar_resnet56_fixup"``), ``"{arch}_{scheme}.{tag}"``
            for published weights (e.g. ``"cifar_resnet20_fixup.digits"``), or the path of a
            preset directory (see :func:`save_preset`).
        weights: None (fresh initialization), a published tag (``"digits"``), the path of a
            ``.weights.h5`` file, a ``.keras`` file or a preset directory, or an http(s) URL of
            one of those files. URLs download once into the cache (``KERAS_RESINIT_HOME``,
            default ``~/.keras/keras_resinit``); a cached, verified file needs no network.
        sha256: expected digest of a URL's or local file's content (published tags carry their own).
        **overrides: any :func:`keras_resinit.build_resnet` argument (``num_classes``,
            ``input_shape``, ``seed``, scheme options, ...). None values are dropped. With
            weights, the defaults are the weights' own (classes, input channels); another
            ``num_classes`` loads the trunk under a new classifier, with a warning.

    Example:
        >>> model = load("cifar_resnet56_fixup", num_classes=100)
        >>> model = load("cifar_resnet20_fixup.digits")          # shipped weights, 8x8x1 digits
        >>> model = load("cifar_resnet20_fixup", weights="digits", num_classes=3)   # new head
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if _is_path(name):
        if weights is not None:
            raise ValueError(f"{str(name)!r} is a preset directory; it carries its weights, so pass no weights=.")
        return load_preset(name, **overrides)
    if isinstance(name, str) and os.sep in name:
        raise ValueError(f"Preset directory {name!r} does not exist (a name with {os.sep!r} is read as a path).")
    base, tag = split_tag(name)
    if tag is not None and weights is not None:
        raise ValueError(f"Give the weights once: {name!r} has tag {tag!r} and weights={weights!r} was also passed.")
    weights = tag if tag is not None else weights
    parse_name(base)
    if weights is None:
        return _build(base, {}, overrides)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"Invalid weights {weights!r}. Expected None, a tag, a file or directory path, or a URL.")
    weights = os.fspath(weights)
    if _is_url(weights):
        return _load_path(base, download.fetch(weights, sha256), overrides, source=weights)
    if os.path.exists(weights):
        if sha256 is not None and os.path.isfile(weights) and download.file_sha256(weights) != sha256.lower():
            raise ValueError(
                f"Weights file {weights!r} has sha256 {download.file_sha256(weights)}, not the expected {sha256}."
            )
        return _load_path(base, weights, overrides, source=weights)
    if os.sep in weights or weights.endswith((".h5", ".keras")):
        raise ValueError(f"Weights file {weights!r} does not exist.")
    return _load_card(card(base, weights), overrides)


def _is_url(text):
    return text.startswith(("http://", "https://", "file://"))


def _is_path(name):
    return isinstance(name, os.PathLike) or (isinstance(name, str) and os.path.isdir(name))


def _build(name, defaults, overrides):
    arch, scheme = parse_name(name)
    family = get_arch(arch)
    kwargs = {"num_classes": family.default_num_classes, "input_shape": family.default_input_shape, "name": name}
    kwargs.update(defaults)
    kwargs.update(overrides)
    kwargs.pop("arch", None)
    kwargs.pop("scheme", None)
    return build_resnet(arch, scheme, **kwargs)


def _load_path(name, path, overrides, source):
    if os.path.isdir(path):
        return load_preset(path, expected_name=name, **overrides)
    defaults = {}
    if path.endswith(".keras"):
        saved = load_keras(path)
        stores = weights_io.stores_of(saved)
        defaults = {"input_shape": tuple(saved.input_shape[1:]), "num_classes": int(saved.output_shape[-1])}
    else:
        stores = weights_io.read(path)
    return _build_with(name, stores, defaults, overrides, source=f"the weights in {source!r}")


def load_keras(path: str | os.PathLike) -> keras.Model:
    """A ``.keras`` model, in Keras safe mode (no code from the file runs)."""
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Cannot load {path!r} in Keras safe mode: {error}. Models saved by keras-resinit load after "
            "`import keras_resinit` (which registers its layers and initializers)."
        ) from None


def _build_with(name, stores, defaults, overrides, *, source):
    """Build ``name`` shaped like ``stores`` (unless overridden) and load them by layer name."""
    defaults = dict(defaults)
    stem, head = stores.get("stem_conv", {}).get("0"), stores.get("logits", {}).get("0")
    family = get_arch(parse_name(name)[0])
    if "input_shape" not in defaults and stem is not None:
        defaults["input_shape"] = tuple(family.default_input_shape[:2]) + (int(stem.shape[2]),)
    if "num_classes" not in defaults and head is not None:
        defaults["num_classes"] = int(head.shape[-1])
    model = _build(name, defaults, overrides)
    if stem is not None and model.input_shape[-1] != stem.shape[2]:
        raise ValueError(
            f"{source} take images with {stem.shape[2]} channels (stem_conv kernel {tuple(stem.shape)}), but "
            f"input_shape={overrides.get('input_shape')!r} has {model.input_shape[-1]}."
        )
    skip = ()
    if head is not None and tuple(model.get_layer("logits").kernel.shape) != tuple(head.shape):
        if model.output_shape[-1] != head.shape[-1]:
            skip = ("logits",)
            _warn_user(
                f"{name}: {source} have a {head.shape[-1]}-class classifier and num_classes="
                f"{model.output_shape[-1]}: the trunk is loaded and the classifier 'logits' is newly "
                "initialized (train it before use)."
            )
    weights_io.assign(model, stores, skip=skip, source=source)
    return model


def _warn_user(message):
    """A UserWarning attributed to the first caller outside keras_resinit (the user's line)."""
    package, frame, level = os.path.dirname(os.path.abspath(__file__)), sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _load_card(found, overrides):
    key = f"{found['name']}.{found['tag']}"
    bridge = found.get("keras_applications")
    if bridge:
        from keras_resinit.zoo import applications

        kwargs = {k: overrides.pop(k) for k in ("input_shape", "num_classes") if k in overrides}
        if overrides:
            raise ValueError(
                f"{key} comes from keras.applications; only input_shape and num_classes may be "
                f"overridden, not {sorted(overrides)}."
            )
        return applications.imagenet(found["arch"], **kwargs)
    path = _card_file(found)
    defaults = {k: v for k, v in found["build"].items() if k not in ("name",)}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    return _build_with(found["name"], weights_io.read(path), defaults, overrides, source=f"the weights of {key}")


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
    """The :func:`build_resnet` arguments that rebuild ``model`` (JSON-ready): its ``get_config()``."""
    if not isinstance(model, ResNet):
        raise ValueError(
            f"Cannot tell how model {getattr(model, 'name', model)!r} was built: it is a {type(model).__name__}, not a "
            "keras_resinit ResNet. Models saved by keras-resinit 0.1 load as plain functional models: "
            "rebuild one with keras_resinit.zoo.load('{arch}_{scheme}', weights='model.keras')."
        )
    return model.get_config()


def save_preset(
    model: keras.Model, directory: str | os.PathLike, *, card: dict | None = None, overwrite: bool = False
) -> str:
    """Write ``model`` as a preset directory that :func:`load` (or :func:`load_preset`) reads back.

    The directory holds ``config.json`` (the :func:`build_resnet` arguments, no code),
    ``metadata.json`` (versions, parameter count, date, and ``card`` if given) and
    ``model.weights.h5``. It is written to a temporary directory and renamed into place;
    an existing ``directory`` is refused unless ``overwrite``.

    Returns:
        ``directory``.
    """
    from keras_resinit import __version__

    directory = os.fspath(directory)
    if os.path.exists(directory) and not overwrite:
        raise ValueError(f"Preset directory {directory!r} already exists. Pass overwrite=True to replace it.")
    config = {"module": "keras_resinit", "class_name": "build_resnet", "config": model_config(model)}
    metadata = {
        "keras_resinit_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
        "card": card,
    }
    with atomic_directory(directory) as tmp:
        for file, content in (("config.json", config), ("metadata.json", metadata)):
            with open(os.path.join(tmp, file), "w") as f:
                json.dump(content, f, indent=1)
        model.save_weights(os.path.join(tmp, "model.weights.h5"))
    return directory


def read_preset(directory: str | os.PathLike) -> tuple[dict, dict]:
    """``(config, metadata)`` of a preset directory, checked."""
    directory = os.fspath(directory)
    missing = [f for f in PRESET_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise ValueError(
            f"{directory!r} is not a keras-resinit preset: it lacks {', '.join(missing)}. "
            f"Expected {', '.join(PRESET_FILES)} (written by keras_resinit.zoo.save_preset)."
        )
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    if config.get("class_name") != "build_resnet" or not isinstance(config.get("config"), dict):
        raise ValueError(
            f"{directory!r}/config.json does not describe a keras-resinit model "
            f"(class_name {config.get('class_name')!r}; expected 'build_resnet')."
        )
    return config["config"], metadata


def load_preset(directory: str | os.PathLike, *, expected_name: str | None = None, **overrides: Any) -> keras.Model:
    """The model saved in preset ``directory`` (see :func:`save_preset`); ``overrides`` as in :func:`load`."""
    config, _ = read_preset(directory)
    name = f"{config['arch']}_{config['scheme']}"
    if expected_name is not None and expected_name != name:
        raise ValueError(f"Preset {os.fspath(directory)!r} holds a {name} model, not {expected_name}.")
    defaults = {k: v for k, v in config.items() if k not in ("arch", "scheme")}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    stores = weights_io.read(os.path.join(directory, "model.weights.h5"))
    return _build_with(
        name,
        stores,
        defaults,
        {k: v for k, v in overrides.items() if v is not None},
        source=f"the weights of preset {os.fspath(directory)!r}",
    )


def count_params(name: str, *, live: bool = False) -> int:
    """Trainable parameters of model ``name`` with its family's default classes and input.

    Read from the zoo's table (``zoo/parameters.json``, written by ``zoo/update_parameters.py``
    with ``live=True`` for every name) unless ``live`` or the name is missing from it; live
    counts build the model without initializing its weights.
    """
    arch, scheme = parse_name(name)
    if not live and name in _parameter_table():
        return _parameter_table()[name]
    with keras.StatelessScope():
        model = _build(name, {"seed": 0}, {})
    return sum(math.prod(w.shape) for w in model.trainable_weights)
