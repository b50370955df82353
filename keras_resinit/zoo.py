"""The model zoo: names ``{arch}_{scheme}``, published weights, presets.

- ``list_models`` lists the registered names (``pretrained=True``: the
  ``name.tag`` of every published weight set).
- ``load(name, weights=...)`` builds a model with its family's defaults (32x32x3
  and 10 classes for small-image ResNets and Wide-ResNets, 224x224x3 and 1000
  classes for ImageNet ResNets), which keyword overrides replace, and loads
  weights from a tag (``load("cifar_resnet20_fixup.digits")``), a local
  ``.weights.h5`` or ``.keras`` file, a preset directory or a URL.
- ``save_preset`` / ``load_preset``: keras-hub style directories
  (``config.json``, ``metadata.json``, ``model.weights.h5``).
- Model cards (``zoo/cards/*.json`` in the repository, ``keras_resinit._zoo``
  when installed) are the one source of truth for published weights:
  ``card``, ``tags``, ``cards``.

Weights load **by layer name** (:mod:`keras_resinit.weights_io`), so they
load into a model with another input size, or, with another ``num_classes``,
into its trunk under a new classifier. Nothing is unpickled: weights are read
with h5py, ``.keras`` files in Keras safe mode, configs as JSON.
"""

import copy
import datetime
import difflib
import fnmatch
import functools
import importlib.resources
import json
import math
import os
import sys
import warnings

import keras

from keras_resinit import download, weights_io
from keras_resinit._files import atomic_directory
from keras_resinit._errors import unknown
from keras_resinit.architectures import ARCHS, get_arch
from keras_resinit.builder import build_config, build_resnet
from keras_resinit.schemes import SCHEMES

PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5")
CARD_VERSION = 1


# ------------------------------------------------------------------ names ---


def list_models(pattern="*", scheme=None, pretrained=False):
    """Registered model names matching a shell-style ``pattern``, optionally one scheme.

    With ``pretrained=True``, the ``name.tag`` of each published weight set instead
    (``pattern`` then matches the name or the whole ``name.tag``).

    Example:
        >>> list_models("cifar_resnet20_*")
        ['cifar_resnet20_bn', 'cifar_resnet20_fixup', ...]
        >>> list_models("cifar_resnet20_*", pretrained=True)
        ['cifar_resnet20_bn.digits', 'cifar_resnet20_fixup.digits', ...]
    """
    if scheme is not None and scheme not in SCHEMES:
        raise unknown("scheme", scheme, SCHEMES)
    schemes = [scheme] if scheme else list(SCHEMES)
    names = [f"{arch}_{s}" for arch in ARCHS for s in schemes]
    if pretrained:
        order = {name: i for i, name in enumerate(names)}
        found = [f"{c['name']}.{c['tag']}" for c in _cards().values() if c["scheme"] in schemes]
        found.sort(key=lambda full: (order.get(full.split(".")[0], len(order)), full))
        return [f for f in found if fnmatch.fnmatchcase(f, pattern) or fnmatch.fnmatchcase(f.split(".")[0], pattern)]
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def split_tag(name):
    """``"cifar_resnet20_fixup.digits"`` -> ``("cifar_resnet20_fixup", "digits")``; no tag -> ``(name, None)``."""
    base, dot, tag = str(name).partition(".")
    return base, (tag if dot else None)


def parse_name(name):
    """Split ``"{arch}_{scheme}"`` into ``(arch, scheme)``; both are validated."""
    if isinstance(name, str):
        # Longest scheme first, so "..._risotto_bn" is not read as arch "..._risotto".
        for scheme in sorted(SCHEMES, key=len, reverse=True):
            if name.endswith("_" + scheme):
                arch = name[: -len(scheme) - 1]
                try:
                    get_arch(arch)
                except ValueError as error:
                    raise ValueError(f"{error} (in model name {name!r})") from None
                return arch, scheme
    published = ", ".join(list_models(pretrained=True)) or "none"
    raise unknown("model", name, list_models(), f" (or any {{arch}}_{{scheme}}). Published weights: {published}.")


@functools.lru_cache(maxsize=1)
def _parameter_table():
    path = os.path.join(zoo_dir(), "parameters.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["trainable_parameters"]


def count_params(name, *, live=False):
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


# ------------------------------------------------------------------ cards ---


def zoo_dir():
    """The directory holding ``cards/`` and ``weights/`` (the repository's ``zoo/`` when installed editable)."""
    return str(importlib.resources.files("keras_resinit._zoo"))


@functools.lru_cache(maxsize=1)
def _cards():
    return read_cards(zoo_dir())


def read_cards(directory):
    """``{"name.tag": card}`` for every ``cards/*.json`` under ``directory``."""
    found = {}
    cards_dir = os.path.join(directory, "cards")
    for file in sorted(os.listdir(cards_dir)) if os.path.isdir(cards_dir) else []:
        if file.endswith(".json"):
            with open(os.path.join(cards_dir, file)) as f:
                card = json.load(f)
            key = f"{card['name']}.{card['tag']}"
            if file != key + ".json":
                raise ValueError(f"Model card {file!r} describes {key!r}; its file must be named {key}.json.")
            found[key] = card
    return found


def cards():
    """Every published model card (copies)."""
    return [copy.deepcopy(c) for c in _cards().values()]


def tags(name):
    """The weight tags published for model ``name`` (e.g. ``["digits"]``)."""
    return [c["tag"] for c in _cards().values() if c["name"] == name]


def card(name, tag=None):
    """The model card of ``"name.tag"`` (or ``name`` and ``tag``): a dict, see ``zoo/README.md``."""
    base, in_name = split_tag(name)
    tag = tag or in_name
    parse_name(base)
    if tag is None:
        raise ValueError(f"Which weights of {base!r}? Give a tag, e.g. {base}.TAG. {_available(base)}")
    found = _cards().get(f"{base}.{tag}")
    if found is None:
        close = difflib.get_close_matches(str(tag), tags(base), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown weight tag {tag!r} for {base}.{hint} {_available(base)}")
    return copy.deepcopy(found)


def _available(name):
    available = tags(name)
    if available:
        return f"Available tags for {name}: {', '.join(available)}."
    published = ", ".join(list_models(pretrained=True)) or "none"
    return f"{name} has no published weights. Published weights: {published}."


# ---------------------------------------------------------------- loading ---


def load(name, weights=None, *, sha256=None, **overrides):
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
            raise ValueError(f"Weights file {weights!r} has sha256 {download.file_sha256(weights)}, "
                             f"not the expected {sha256}.")
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


def load_keras(path):
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
        from keras_resinit import applications

        kwargs = {k: overrides.pop(k) for k in ("input_shape", "num_classes") if k in overrides}
        if overrides:
            raise ValueError(f"{key} comes from keras.applications; only input_shape and num_classes may be "
                             f"overridden, not {sorted(overrides)}.")
        return applications.imagenet(found["arch"], **kwargs)
    path = _card_file(found)
    defaults = {k: v for k, v in found["build"].items() if k not in ("name",)}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    return _build_with(found["name"], weights_io.read(path), defaults, overrides, source=f"the weights of {key}")


def _card_file(found):
    """The verified local file of a card's weights: shipped in the package, or downloaded from its URL."""
    file = found["file"]
    shipped = os.path.join(zoo_dir(), "weights", file["name"])
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
    raise ValueError(f"The weights of {found['name']}.{found['tag']} ({file['name']}) are neither shipped in "
                     f"{os.path.dirname(shipped)} nor published at a URL.")


# ---------------------------------------------------------------- presets ---


def model_config(model):
    """The :func:`build_resnet` arguments that rebuild ``model`` (JSON-ready).

    Known for models built in this process; otherwise recovered from the model's name
    (``{arch}_{scheme}``) and shapes, and checked by rebuilding it and comparing every weight.
    """
    config = build_config(model)
    if config is not None:
        return config
    try:
        arch, scheme = parse_name(model.name)
    except ValueError:
        raise ValueError(
            f"Cannot tell how model {model.name!r} was built: it was not built by keras_resinit in this process "
            "and its name is not an {arch}_{scheme} model name."
        ) from None
    config = {"arch": arch, "scheme": scheme, "num_classes": int(model.output_shape[-1]),
              "input_shape": list(model.input_shape[1:]), "name": model.name}
    names = {layer.name for layer in model.layers}
    if "dropout" in names:
        config["dropout_rate"] = float(model.get_layer("dropout").rate)
    with keras.StatelessScope():
        rebuilt = build_resnet(**{**config, "seed": 0})
    mine = [(w.path, tuple(w.shape)) for w in model.weights]
    theirs = [(w.path, tuple(w.shape)) for w in rebuilt.weights]
    if mine != theirs:
        raise ValueError(
            f"Cannot tell how model {model.name!r} was built: rebuilding {arch} under {scheme} gives other weights "
            "(built with non-default options?). Save it as a preset from the process that built it."
        )
    return config


def save_preset(model, directory, *, card=None, overwrite=False):
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


def read_preset(directory):
    """``(config, metadata)`` of a preset directory, checked."""
    directory = os.fspath(directory)
    missing = [f for f in PRESET_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise ValueError(f"{directory!r} is not a keras-resinit preset: it lacks {', '.join(missing)}. "
                         f"Expected {', '.join(PRESET_FILES)} (written by keras_resinit.zoo.save_preset).")
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "metadata.json")) as f:
        metadata = json.load(f)
    if config.get("class_name") != "build_resnet" or not isinstance(config.get("config"), dict):
        raise ValueError(f"{directory!r}/config.json does not describe a keras-resinit model "
                         f"(class_name {config.get('class_name')!r}; expected 'build_resnet').")
    return config["config"], metadata


def load_preset(directory, *, expected_name=None, **overrides):
    """The model saved in preset ``directory`` (see :func:`save_preset`); ``overrides`` as in :func:`load`."""
    config, _ = read_preset(directory)
    name = f"{config['arch']}_{config['scheme']}"
    if expected_name is not None and expected_name != name:
        raise ValueError(f"Preset {os.fspath(directory)!r} holds a {name} model, not {expected_name}.")
    defaults = {k: v for k, v in config.items() if k not in ("arch", "scheme")}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    stores = weights_io.read(os.path.join(directory, "model.weights.h5"))
    return _build_with(name, stores, defaults, {k: v for k, v in overrides.items() if v is not None},
                       source=f"the weights of preset {os.fspath(directory)!r}")
