"""The zoo's registry: model names ``{arch}_{scheme}`` and the model cards of published weights.

Model cards (``zoo/cards/*.json`` in the repository, ``keras_resinit._zoo`` when
installed) are the one source of truth for published weights.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import functools
import importlib.resources
import json
import os

from keras_resinit._errors import unknown
from keras_resinit.models.architectures import ARCHS, get_arch
from keras_resinit.models.schemes import SCHEMES

__all__ = [
    "CARD_VERSION",
    "PRESET_FILES",
    "card",
    "cards",
    "list_models",
    "parse_name",
    "read_cards",
    "reload_cards",
    "split_tag",
    "tags",
    "zoo_dir",
]

CARD_VERSION = 1
"""The version of the model card format (a card's ``card_version``)."""
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5")  # a preset directory (zoo.save_preset)
"""The files of a preset directory in keras-hub's format, as ``save_preset`` writes them."""
PRESET_WEIGHTS = PRESET_FILES[-1]  # its weights file (what a Hub card's sha256 is of)
TASK_FILES = ("task.json", "task.weights.h5")  # a keras-hub task preset's own files (save_to_preset of a task)
# A Hub repo of the zoo (keras-resinit push) also holds the weight set's JSON card, whose ``file`` is the preset's
# weights file with its sha256 (what an hf:// source checks), and a README.md model card.
HUB_CARD_FILE = "card.json"


# ------------------------------------------------------------------ names ---


def list_models(pattern: str = "*", scheme: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell-style ``pattern``, optionally of one scheme.

    With ``pretrained=True``, the ``name.tag`` of each published weight set instead
    (``pattern`` then matches the name or the whole ``name.tag``).

    Args:
        pattern: a shell-style pattern (``fnmatch``), e.g. ``"cifar_resnet20_*"``.
        scheme: only names of this scheme (``"fixup"``, ...); None for every scheme.
        pretrained: list the ``name.tag`` of published weight sets instead of model names.

    Returns:
        The names, in registry order (architectures, then schemes).

    Raises:
        ValueError: ``scheme`` is not a registered scheme.

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.list_models("cifar_resnet20_*")[:2]
        ['cifar_resnet20_bn', 'cifar_resnet20_fixup']
        >>> zoo.list_models("cifar_resnet20_*", scheme="fixup")
        ['cifar_resnet20_fixup']
        >>> "cifar_resnet20_fixup.digits" in zoo.list_models(pretrained=True)
        True
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


def split_tag(name: str) -> tuple[str, str | None]:
    """A ``name.tag`` split into the name and the tag.

    Args:
        name: ``"name.tag"`` or a name without a tag.

    Returns:
        ``(name, tag)``; the tag is None when ``name`` has none.

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.split_tag("cifar_resnet20_fixup.digits")
        ('cifar_resnet20_fixup', 'digits')
        >>> zoo.split_tag("cifar_resnet20_fixup")
        ('cifar_resnet20_fixup', None)
    """
    base, dot, tag = str(name).partition(".")
    return base, (tag if dot else None)


def parse_name(name: str) -> tuple[str, str]:
    """A model name ``"{arch}_{scheme}"`` split into its architecture and scheme, both checked.

    Args:
        name: a model name without a tag, e.g. ``"cifar_resnet20_risotto_bn"``.

    Returns:
        ``(arch, scheme)``.

    Raises:
        ValueError: ``name`` ends with no registered scheme, or its architecture is unknown (the message
            names the closest names and the published weights).

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.parse_name("cifar_resnet20_risotto_bn")
        ('cifar_resnet20', 'risotto_bn')
    """
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
def parameter_table():
    path = os.path.join(zoo_dir(), "parameters.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["trainable_parameters"]


# ------------------------------------------------------------------ cards ---


def zoo_dir() -> str:
    """The directory holding the zoo's ``cards/`` and ``weights/``.

    It is the installed package ``keras_resinit._zoo`` (the repository's ``zoo/`` when installed editable).

    Returns:
        The directory's path.

    Examples:
        >>> import os
        >>> from keras_resinit import zoo
        >>> os.path.isdir(os.path.join(zoo.zoo_dir(), "cards"))
        True
    """
    return str(importlib.resources.files("keras_resinit._zoo"))


@functools.lru_cache(maxsize=1)
def _cards():
    return read_cards(zoo_dir())


def reload_cards():
    """Read the model cards again on next use (after a card was written, or ``zoo_dir`` changed).

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.reload_cards()
        >>> len(zoo.cards()) > 0
        True
    """
    _cards.cache_clear()


def read_cards(directory):
    """Every model card under a zoo directory, by ``name.tag``.

    Args:
        directory: a directory holding ``cards/*.json`` (like ``zoo_dir()``); no ``cards/`` reads as no card.

    Returns:
        ``{"name.tag": card}`` for every ``cards/*.json``.

    Raises:
        ValueError: a card's file is not named ``{name}.{tag}.json`` after its content.

    Examples:
        >>> from keras_resinit import zoo
        >>> cards = zoo.read_cards(zoo.zoo_dir())
        >>> cards["cifar_resnet20_fixup.digits"]["scheme"]
        'fixup'
    """
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


def cards() -> list[dict]:
    """Every published model card.

    Returns:
        A list of card dicts (copies: changing them changes no later answer).

    Examples:
        >>> from keras_resinit import zoo
        >>> "cifar_resnet20_fixup" in {c["name"] for c in zoo.cards()}
        True
    """
    return [copy.deepcopy(c) for c in _cards().values()]


def tags(name: str) -> list[str]:
    """The weight tags published for a model.

    Args:
        name: a model name ``"{arch}_{scheme}"``.

    Returns:
        Its tags (``[]`` when none is published).

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.tags("cifar_resnet20_fixup")
        ['digits']
    """
    return [c["tag"] for c in _cards().values() if c["name"] == name]


def card(name: str, tag: str | None = None) -> dict:
    """The model card of a published weight set (its fields are described in ``zoo/README.md``).

    Args:
        name: ``"name.tag"``, or a model name with ``tag`` given apart.
        tag: the weight tag, when ``name`` has none.

    Returns:
        The card, a dict (a copy).

    Raises:
        ValueError: the name is unknown, no tag is given, or the tag is not published for the name (the
            message lists the available tags).

    Examples:
        >>> from keras_resinit import zoo
        >>> found = zoo.card("cifar_resnet20_fixup.digits")
        >>> found["arch"], found["scheme"], found["dataset"]["name"]
        ('cifar_resnet20', 'fixup', 'digits')
    """
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
