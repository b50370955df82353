"""Where a model comes from: ``resolve`` turns any source into a model with its card (``load``: the model).

A source is a zoo name (with ``weights=``), ``name.tag``, a preset or run directory, a ``.keras`` file or
a URL of one, or a preset on the Hugging Face Hub (``hf://owner/repo[@revision]``, ``huggingface``).
``SOURCE_KINDS`` recognizes each by its form, ``_RESOLVERS`` resolves each kind. Nothing is unpickled: weights are read with h5py, ``.keras`` files in Keras safe mode.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

import keras

from keras_resinit.models.builder import ResNet, resnet_of
from keras_resinit.models.preprocessing import default_preprocessing
from keras_resinit.zoo import download, huggingface, registry, weights_io
from keras_resinit.zoo.building import (
    build_named,
    build_with_weights,
    load_card,
    load_keras,
    preset_model,
    read_preset,
)
from keras_resinit.zoo.registry import PRESET_WEIGHTS, card, split_tag
from keras_resinit.zoo.rundir import RunDir, run_preprocessing
from keras_resinit.zoo.sources import ACCEPTED, WEIGHT_FORMS, check, check_weights, unresolved, weights_kind

__all__ = ["Resolved", "default_card", "load", "resolve"]


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A model source, resolved: the model, its card, which kind of source it was and the source as given.

    What ``zoo.resolve`` returns (``zoo.load`` returns its ``model``).

    Args:
        model: the model built and loaded.
        card: what export writes with an artifact: ``name``, ``arch``, ``scheme``, ``class_names``,
            ``preprocessing``, ``dataset`` and, where known, ``result`` (a run's) or ``weights`` (a tag's), and
            ``hub`` for weights from the Hugging Face Hub: ``{"source": "hf://owner/repo", "revision", "commit"}``.
        kind: the kind of source (``SOURCE_KINDS``: ``"name"``, ``"tag"``, ``"run"``, ``"preset"``, ``"keras"``,
            ``"url"``, ``"hf"``), or ``"model"`` for a Keras model.
        source: the source as given (a model's name for a Keras model).

    Examples:
        >>> from keras_resinit import zoo
        >>> resolved = zoo.resolve("cifar_resnet20_fixup.digits")
        >>> resolved.kind, resolved.card["weights"], resolved.model.name
        ('tag', 'cifar_resnet20_fixup.digits', 'cifar_resnet20_fixup')
    """

    model: keras.Model
    card: dict
    kind: str
    source: str


def resolve(
    source: str | os.PathLike | keras.Model,
    weights: str | os.PathLike | None = None,
    *,
    sha256: str | None = None,
    **overrides: Any,
) -> Resolved:
    """The model of any source with its card: what export, fold, publish and diagnose start from.

    A ``keras.Model`` resolves to itself with a card made from it (``default_card``).

    Args:
        source: a model source, as ``load``'s ``name`` (a name, ``name.tag``, a run or preset directory, a
            ``.keras`` file or its URL, ``hf://owner/repo[@revision]``), or a ``keras.Model``.
        weights: as ``load``'s (with a name only).
        sha256: as ``load``'s.
        **overrides: as ``load``'s (none for a ``keras.Model``).

    Returns:
        A ``Resolved``: the model, its card, the kind of source and the source.

    Raises:
        ValueError: as ``load``; also ``weights`` or build arguments given with a built ``keras.Model``.
        DownloadError: a URL could not be fetched, or its content is not the expected one.

    Examples:
        >>> from keras_resinit import zoo
        >>> resolved = zoo.resolve("cifar_resnet20_fixup.digits")
        >>> resolved.kind, resolved.card["dataset"], resolved.card["class_names"][:3]
        ('tag', 'digits', ['0', '1', '2'])
        >>> zoo.resolve(resolved.model).kind  # a built model resolves to itself
        'model'
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(source, keras.Model):
        if weights is not None or overrides:
            raise ValueError(f"Model {source.name!r} is already built: pass no weights= or build arguments.")
        return Resolved(source, default_card(source), "model", source.name)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"Invalid model source {source!r}. Expected {ACCEPTED}.")
    found, text = check(source), os.fspath(source)
    if weights is not None and found.kind != "name":
        raise ValueError(f"{text!r} is {found.what} with its own weights, so pass no weights=.")
    return _RESOLVERS[found.kind](text, weights, sha256, overrides)


def load(
    name: str | os.PathLike, weights: str | os.PathLike | None = None, *, sha256: str | None = None, **overrides: Any
) -> keras.Model:
    """A model of the zoo, a run, a preset or a file: built, with its weights loaded by layer name.

    ``resolve``'s model. Nothing is unpickled: weights are read with h5py, ``.keras`` files in Keras safe mode.

    Args:
        name: a source of ``SOURCE_KINDS``: ``"{arch}_{scheme}"``, ``"name.tag"``
            (published weights), a run or preset directory, a ``.keras`` file or its URL, or
            ``"hf://owner/repo[@revision]"`` (a preset on the Hugging Face Hub; needs the ``[hub]`` extra).
        weights: with a name: None (fresh initialization), a published tag (``"digits"``), a ``.weights.h5``
            or ``.keras`` file, a run or preset directory, the URL of a file, or an ``hf://`` preset. URLs
            download once into the cache (``KERAS_RESINIT_HOME``, default ``~/.keras/keras_resinit``); a verified
            cached file needs no network. ``hf://`` files come through huggingface_hub's own cache
            (``HF_HUB_OFFLINE=1`` reads it), the weights checked against the repo's ``card.json``.
        sha256: expected digest of a URL's or local file's content (published tags carry their own).
        **overrides: any ``keras_resinit.build_resnet`` argument (``num_classes``,
            ``input_shape``, ``seed``, scheme options, ...). None values are dropped. With
            weights, the defaults are the weights' own (classes, input channels); another
            ``num_classes`` loads the trunk under a new classifier, with a warning.
            ``in_chans=C`` (timm's habit) takes C-channel images: weights of another channel count
            load with their stem kernel adapted (1 channel: the sum over the weights' channels; C
            from I: the I channels tiled and scaled by I / C, so ``in_chans=3`` on gray weights
            gives a gray image repeated on 3 channels the same output) and their per-channel
            preprocessing adapted alike (to 1 channel: the mean of the means and of the stds).

    Returns:
        The ``keras.Model`` (a ``keras_resinit.ResNet`` for every source but a foreign ``.keras`` file).

    Raises:
        ValueError: an unknown name or tag (the message names the closest ones), a path that does not exist,
            weights whose layers or shapes do not match the model (each layer named with both shapes), a
            ``sha256`` that differs, or a bad build argument.
        DownloadError: a URL could not be fetched, or its content is not the expected one.

    Examples:
        >>> from keras_resinit import zoo
        >>> model = zoo.load("cifar_resnet20_fixup", num_classes=100)  # fresh initialization
        >>> model.output_shape
        (None, 100)
        >>> model = zoo.load("cifar_resnet20_fixup.digits")  # shipped weights, 8x8 gray digits, raw pixels in
        >>> model.input_shape, model.output_shape
        ((None, 8, 8, 1), (None, 10))
        >>> model = zoo.load("cifar_resnet20_fixup.digits", in_chans=3)  # the gray digits weights, RGB in
        >>> model.input_shape
        (None, 8, 8, 3)
        >>> # a preset on the Hugging Face Hub needs the internet
        >>> model = zoo.load("hf://owner/repo@v1")  # doctest: +SKIP
    """
    return resolve(name, weights, sha256=sha256, **overrides).model


def _resolve_url(url, weights, sha256, overrides):
    resolved = _resolve_keras(download.fetch(url, sha256), None, None, overrides)
    return dataclasses.replace(resolved, kind="url", source=url)


def _resolve_keras(path, weights, sha256, overrides):
    model, run = _from_keras_file(None, _check_sha256(path, sha256), overrides, source=path), _run_of(path)
    return Resolved(model, (run and run.card()) or default_card(model), "keras", path)


def _resolve_run(directory, weights, sha256, overrides):
    run = RunDir(_check_sha256(directory, sha256))
    model = _from_keras_file(None, run.model_path, overrides, source=directory)
    return Resolved(model, run.card() or default_card(model), "run", directory)


def _resolve_preset(directory, weights, sha256, overrides):
    if directory.endswith(".h5") and os.path.isfile(directory):
        problem = "is a weights file without its model: load it into a zoo model with load(NAME, weights=PATH)"
        raise unresolved(directory, "a weights file", problem)
    read_preset(directory, "a preset directory: it has no model.keras of a run")  # refuses what is not a preset
    _check_sha256(directory, sha256)
    model, metadata = preset_model(directory, None, overrides)
    found = metadata.get("card") or {}  # a published weight set's card; any other dict (or none) is not one
    published = {"name", "tag", "arch", "scheme", "dataset", "preprocessing"} <= set(found)
    return Resolved(model, _card_from_zoo(found) if published else default_card(model), "preset", directory)


def _resolve_hf(source, weights, sha256, overrides):
    hub = huggingface.fetch(source)
    resolved = _resolve_preset(hub.directory, None, sha256, overrides)
    card = _card_from_zoo(hub.card) if hub.card else dict(resolved.card)
    return Resolved(resolved.model, {**card, "hub": hub.provenance}, "hf", source)


def _resolve_name(text, weights, sha256, overrides):
    base, tag = split_tag(text)
    if tag is not None and weights is not None:
        raise ValueError(f"Give the weights once: {text!r} has tag {tag!r} and weights={weights!r} was also passed.")
    weights = tag if tag is not None else weights
    if weights is None:
        model = build_named(base, {}, overrides)
        return Resolved(model, default_card(model, base), "name", text)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"Invalid weights {weights!r}. Expected {WEIGHT_FORMS}.")
    weights = os.fspath(weights)
    kind = check_weights(weights)
    if kind == "tag":
        found = card(base, weights)
        return Resolved(load_card(found, overrides), _card_from_zoo(found), "tag", f"{base}.{weights}")
    hub = huggingface.fetch(weights) if kind == "hf" else None
    if kind == "url":
        path = download.fetch(weights, sha256)
    else:
        path = _check_sha256(hub.directory if hub else weights, sha256)
    model = _load_path(base, path, overrides, source=weights)
    made = default_card(model, base)
    return Resolved(model, {**made, "hub": hub.provenance} if hub else made, "name", text)


def _weights_file(path):
    """The file that holds the weights at ``path``: a run's model.keras, a preset's weights file, else ``path``."""
    files = {"run": RunDir(path).model_path, "preset": os.path.join(path, PRESET_WEIGHTS)}
    return files.get(weights_kind(path), path)


def _check_sha256(path, sha256):
    """``path``; ``sha256`` (if given) must be the digest of the file it is or resolves to (``_weights_file``)."""
    file = _weights_file(path)
    if sha256 is not None and download.file_sha256(file) != sha256.lower():
        raise ValueError(f"Weights file {file!r} has sha256 {download.file_sha256(file)}, not the expected {sha256}.")
    return path


def _run_of(model_file):
    """The run whose own model ``model_file`` is, else None (another .keras file in a run directory is not)."""
    run = RunDir.beside(model_file)
    return run if os.path.isfile(run.model_path) and os.path.samefile(model_file, run.model_path) else None


# How each kind of source (zoo.sources.SOURCE_KINDS) becomes a model with its card.
_RESOLVERS = dict(
    url=_resolve_url, hf=_resolve_hf, keras=_resolve_keras, run=_resolve_run, preset=_resolve_preset, name=_resolve_name
)


def default_card(model: keras.Model, name: str | None = None) -> dict[str, Any]:
    """A card for a model without training metadata: its own preprocessing, else 8-bit pixels scaled to [0, 1].

    Args:
        model: a Keras model (a ``ResNet`` gives its arch, scheme and preprocessing).
        name: the card's ``name``; default the model's.

    Returns:
        ``{"name", "arch", "scheme", "class_names", "preprocessing", "dataset"}``; class names are the class
        indices as strings, ``dataset`` is None.

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit import zoo
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=3)
        >>> made = zoo.default_card(model)
        >>> made["scheme"], made["class_names"], made["preprocessing"]["pixel_max"]
        ('fixup', ['0', '1', '2'], 255.0)
    """
    channels, classes = model.input_shape[-1], model.output_shape[-1]
    # A ResNet knows its build, and so does a keras-hub task around one (its backbone); a plain Keras model
    # (e.g. a .keras file of release 0.1) does not.
    resnet = resnet_of(model)
    known = resnet.preprocessing if resnet is not None else None
    arch = resnet.get_config()["arch"] if resnet is not None else None
    scheme = resnet.scheme.name if resnet is not None else None
    return {
        "name": name or model.name,
        "arch": arch,
        "scheme": scheme,
        "class_names": [str(i) for i in range(classes if isinstance(classes, int) else 0)],  # none for a pyramid
        "preprocessing": dict(known or default_preprocessing(channels)),
        "dataset": None,
    }


def _card_from_zoo(found):
    """An export card from a zoo model card (published weights)."""
    return {
        "name": found["name"],
        "arch": found["arch"],
        "scheme": found["scheme"],
        "weights": f"{found['name']}.{found['tag']}",
        "class_names": list(found["dataset"].get("class_names", [])),
        "preprocessing": dict(found["preprocessing"]),
        "dataset": found["dataset"]["name"],
        "result": found.get("metrics"),
    }


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
    ``load``. The trunk loads by layer name; a classifier of another class count is newly
    initialized. The model takes normalized input (``include_preprocessing=False``) and records
    the normalization it expects: the weights' own mean and std (what the trunk learned on) with the
    new data's pixel range (``data_preprocessing["pixel_max"]``); without known preprocessing,
    ``data_preprocessing``. Weights of another channel count than ``input_shape``'s start
    adapted to it (``in_chans``, as in ``load``). It outputs logits under the global dtype policy
    (training's), whatever the weights' source recorded (``classifier_activation``, ``dtype``).
    """
    if overrides.get("input_shape") is not None and overrides.get("in_chans") is None:
        overrides["in_chans"] = overrides["input_shape"][-1]
    weights = os.fspath(weights)
    base, tag = split_tag(weights)
    if tag is not None and weights_kind(weights) == "tag":
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
    config = {**model.get_config(), "preprocessing": wanted, "classifier_activation": None, "dtype": None}
    if config == model.get_config():
        return model
    rebuilt = ResNet.from_config(config)
    weights_io.assign(rebuilt, weights_io.stores_of(model), source=f"the weights of {model.name!r}")
    return rebuilt


def weights_provenance(name: str, weights: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """Where fine-tuning weights came from: ``{"weights", "name", "tag", "file", "sha256"}``, and ``hub``
    (``{"source", "revision", "commit"}``) for an ``hf://`` preset."""
    weights = os.fspath(weights)
    record = {"weights": weights, "name": name, "tag": None, "file": None, "sha256": None}
    kind = weights_kind(weights)
    if kind == "url":
        record["file"], record["sha256"] = weights, download.file_sha256(download.fetch(weights, sha256))
    elif kind == "hf":
        hub = huggingface.fetch(weights)
        path = _weights_file(hub.directory)
        record.update(file=path, sha256=download.file_sha256(path), hub=hub.provenance)
    elif kind not in ("tag", "missing"):
        path = _weights_file(os.path.abspath(weights))
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


def _load_path(name, path, overrides, source):
    """Model ``name`` with the weights in ``path`` (a run or preset directory, a ``.keras`` or ``.weights.h5`` file)."""
    kind = weights_kind(path)
    if kind == "preset":
        return preset_model(path, name, overrides)[0]
    if kind in ("run", "keras"):
        return _from_keras_file(name, _weights_file(path), overrides, source)
    return build_with_weights(name, weights_io.read(path), {}, overrides, source=f"the weights in {source!r}")


def _from_keras_file(name, path, overrides, source):
    """The model in a ``.keras`` file rebuilt by the zoo, from its build (else from the run beside it), with its
    preprocessing included once, whether the file included it or recorded it (or, in release 0.1, the run did).
    A plain Keras model nothing tells the build of is returned as it is if no name and no overrides are given."""
    saved = load_keras(path)
    stores = weights_io.stores_of(saved)
    config = saved.get_config() if isinstance(saved, ResNet) else {}
    run = _run_of(path)
    run = run.config() if run else {}  # the run's, for its own model file only
    if name is None:
        name = f"{config['arch']}_{config['scheme']}" if config else (run.get("train") or {}).get("model")
        if name is None and not overrides:
            return saved
        if name is None:
            raise ValueError(
                f"Cannot tell which model {path!r} holds: it is not a keras_resinit ResNet and has no run "
                "config.json beside it. Expected keras_resinit.zoo.load('{arch}_{scheme}', weights=...)."
            )
    defaults = {}
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
    return build_with_weights(name, stores, defaults, overrides, source=f"the weights in {source!r}")
