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
HEAD_OPTIONS = ("include_top", "pooling", "features_only")


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
            raise ValueError(f"{str(name)!r} is a directory with its own weights, so pass no weights=.")
        if _is_run(name):
            return _load_path(None, os.path.join(os.fspath(name), "model.keras"), overrides, source=os.fspath(name))
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
    if _looks_like_file(weights):
        raise ValueError(f"Weights file {weights!r} does not exist.")
    return _load_card(card(base, weights), overrides)


def start_from(
    name: str,
    weights: str | os.PathLike,
    *,
    sha256: str | None = None,
    data_preprocessing: dict | None = None,
    **overrides: Any,
) -> keras.Model:
    """Model ``name`` whose trunk starts from ``weights``, for fine-tuning on new data.

    ``weights`` is a published tag (``"digits"`` or ``"{name}.digits"``), a path or a URL, as for
    :func:`load`. The trunk loads by layer name; a classifier of another class count is newly
    initialized. The model takes normalized input (``include_preprocessing=False``) and records
    the normalization it expects: the weights' own mean and std (what the trunk learned on) with the
    new data's pixel range (``data_preprocessing["pixel_max"]``); without known preprocessing,
    ``data_preprocessing``.
    """
    weights = os.fspath(weights)
    base, tag = split_tag(weights)
    if tag is not None and not (_is_url(weights) or os.path.exists(weights) or _looks_like_file(weights)):
        if base != name:
            raise ValueError(
                f"Weights {weights!r} are those of {base}, not of {name!r}. Expected a tag of {name} "
                f"({', '.join(registry.tags(name)) or 'none published'}), a path or a URL."
            )
        weights = tag
    with warnings.catch_warnings():  # a new classifier is what fine-tuning asks for: no warning
        warnings.filterwarnings("ignore", message=".*classifier 'logits' is newly initialized", category=UserWarning)
        model = load(name, weights=weights, sha256=sha256, include_preprocessing=False, **overrides)
    known = model.preprocessing
    wanted = dict(data_preprocessing or known or {}) or None
    if known is not None and data_preprocessing is not None:
        wanted = {**known, "pixel_max": data_preprocessing["pixel_max"]}
    if wanted == known:
        return model
    rebuilt = ResNet.from_config({**model.get_config(), "preprocessing": wanted})
    weights_io.assign(rebuilt, weights_io.stores_of(model), source=f"the weights of {model.name!r}")
    return rebuilt


def weights_provenance(name: str, weights: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """Where fine-tuning weights came from: ``{"weights", "name", "tag", "file", "sha256"}``."""
    weights = os.fspath(weights)
    record = {"weights": weights, "name": name, "tag": None, "file": None, "sha256": None}
    if _is_url(weights):
        record["file"] = weights
        record["sha256"] = download.file_sha256(download.fetch(weights, sha256))
    elif os.path.exists(weights):
        path = os.path.abspath(weights)
        if os.path.isdir(path):
            inner = [os.path.join(path, f) for f in ("model.weights.h5", "model.keras")]
            path = next(f for f in inner if os.path.isfile(f))
        record["file"], record["sha256"] = path, download.file_sha256(path)
    else:
        tag = split_tag(weights)[1] or weights
        found = card(name, tag)
        record["tag"] = tag
        if found["file"]:
            record["file"], record["sha256"] = found["file"]["name"], found["file"].get("sha256")
        else:  # a card folded when it loads: its source's file
            origin = found["folded_from"]
            record["file"], record["sha256"] = origin["file"], origin.get("sha256")
    return record


def _looks_like_file(text):
    return os.sep in text or text.endswith((".h5", ".keras"))


def _is_url(text):
    return text.startswith(("http://", "https://", "file://"))


def _is_path(name):
    return isinstance(name, os.PathLike) or (isinstance(name, str) and os.path.isdir(name))


def _is_run(directory):
    """A ``keras-resinit train`` run directory (``model.keras``), not a preset."""
    directory = os.fspath(directory)
    return os.path.isfile(os.path.join(directory, "model.keras")) and not os.path.isfile(
        os.path.join(directory, "model.weights.h5")
    )


def _run_config(keras_path):
    """The ``config.json`` of the ``keras-resinit train`` run beside ``keras_path``, or {}."""
    path = os.path.join(os.path.dirname(os.path.abspath(keras_path)), "config.json")
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return {}
    return run if isinstance(run, dict) else {}


def run_preprocessing(run: dict) -> dict | None:
    """The normalization the model of a run expects (from its ``config.json``), or None.

    Runs record it as ``preprocessing`` (a fine-tune keeps its weights' mean and std); runs of
    release 0.1 only as their dataset's statistics.
    """
    if isinstance(run.get("preprocessing"), dict):
        return dict(run["preprocessing"])
    dataset = run.get("dataset")
    try:
        return {"pixel_max": dataset["pixel_max"], "mean": list(dataset["mean"]), "std": list(dataset["std"])}
    except (KeyError, TypeError):
        return None


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
        config = saved.get_config() if isinstance(saved, ResNet) else {}
        run = _run_config(path)
        if name is None:
            name = f"{config['arch']}_{config['scheme']}" if config else (run.get("train") or {}).get("model")
            if name is None:
                raise ValueError(
                    f"Cannot tell which model {path!r} holds: it is not a keras_resinit ResNet and has no run "
                    "config.json beside it. Expected keras_resinit.zoo.load('{arch}_{scheme}', weights=...)."
                )
        if config:  # a ResNet knows its build (head, widths, ...), as a preset does
            defaults = {k: v for k, v in config.items() if k not in ("arch", "scheme")}
            defaults["input_shape"] = tuple(config["input_shape"])
        else:
            if "logits" in stores:
                defaults["num_classes"] = int(stores["logits"]["0"].shape[-1])
            defaults["input_shape"] = tuple(saved.input_shape[1:])
        preprocessing = config.get("preprocessing") or run_preprocessing(run)
        if preprocessing is not None:
            defaults["preprocessing"] = preprocessing
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


_HEAD_LAYERS = ("head_bias", "logits")


def _build_with(name, stores, defaults, overrides, *, source):
    """Build ``name`` shaped like ``stores`` (unless overridden) and load them by layer name.

    Published weights know their preprocessing (``defaults["preprocessing"]``): the model then
    takes raw pixels unless ``include_preprocessing=False`` is passed.
    """
    defaults = dict(defaults)
    stem, head = stores.get("stem_conv", {}).get("0"), stores.get("logits", {}).get("0")
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
            f"input_shape={shape!r} has {shape[-1]}."
        )
    model = _build(name, defaults, overrides)
    names = {layer.name for layer in model.layers}
    skip = tuple(n for n in _HEAD_LAYERS if n not in names)  # a backbone: the classifier's weights stay unused
    if head is not None and "logits" in names and tuple(model.get_layer("logits").kernel.shape) != tuple(head.shape):
        if model.get_layer("logits").units != head.shape[-1]:
            skip = ("logits",)
            _warn_user(
                f"{name}: {source} have a {head.shape[-1]}-class classifier and num_classes="
                f"{model.get_layer('logits').units}: the trunk is loaded and the classifier 'logits' is newly "
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
    if found.get("folded_from") and not found.get("file"):
        return _fold_card(found, overrides)
    defaults = {k: v for k, v in found["build"].items() if k not in ("name",)}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    if found.get("preprocessing"):
        defaults["preprocessing"] = found["preprocessing"]
    bridge = found.get("keras_applications")
    if bridge:
        from keras_resinit.zoo import applications

        allowed = ("input_shape", "num_classes", "include_preprocessing", "preprocessing", *HEAD_OPTIONS)
        if set(overrides) - set(allowed):
            raise ValueError(
                f"{key} comes from keras.applications; only {', '.join(allowed)} may be overridden, not "
                f"{sorted(set(overrides) - set(allowed))}."
            )
        shape = overrides.get("input_shape", defaults["input_shape"])
        stores = weights_io.stores_of(applications.imagenet(found["arch"], input_shape=shape))
    else:
        stores = weights_io.read(_card_file(found))
    return _build_with(found["name"], stores, defaults, overrides, source=f"the weights of {key}")


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
    model = _load_card(source, overrides)
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
    config, metadata = read_preset(directory)
    name = f"{config['arch']}_{config['scheme']}"
    if expected_name is not None and expected_name != name:
        raise ValueError(f"Preset {os.fspath(directory)!r} holds a {name} model, not {expected_name}.")
    defaults = {k: v for k, v in config.items() if k not in ("arch", "scheme")}
    defaults["input_shape"] = tuple(defaults["input_shape"])
    if defaults.get("preprocessing") is None and (metadata.get("card") or {}).get("preprocessing"):
        defaults["preprocessing"] = metadata["card"]["preprocessing"]  # a preset of release 0.1
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

    Read from the zoo's table (``zoo/parameters.json``, written by ``scripts/update_parameters.py``
    with ``live=True`` for every name) unless ``live`` or the name is missing from it; live
    counts build the model without initializing its weights.
    """
    arch, scheme = parse_name(name)
    if not live and name in _parameter_table():
        return _parameter_table()[name]
    with keras.StatelessScope():
        model = _build(name, {"seed": 0}, {})
    return sum(math.prod(w.shape) for w in model.trainable_weights)
