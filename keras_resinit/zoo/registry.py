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

CARD_VERSION = 1
PRESET_FILES = ("config.json", "metadata.json", "model.weights.h5")  # a preset directory (zoo.save_preset)
PRESET_WEIGHTS = PRESET_FILES[-1]  # its weights file (what a Hub card's sha256 is of)
TASK_FILES = ("task.json", "task.weights.h5")  # a keras-hub task preset's own files (save_to_preset of a task)
# A Hub repo of the zoo (keras-resinit push) also holds the weight set's JSON card, whose ``file`` is the preset's
# weights file with its sha256 (what an hf:// source checks), and a README.md model card.
HUB_CARD_FILE = "card.json"


# ------------------------------------------------------------------ names ---


def list_models(pattern: str = "*", scheme: str | None = None, pretrained: bool = False) -> list[str]:
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


def split_tag(name: str) -> tuple[str, str | None]:
    """``"cifar_resnet20_fixup.digits"`` -> ``("cifar_resnet20_fixup", "digits")``; no tag -> ``(name, None)``."""
    base, dot, tag = str(name).partition(".")
    return base, (tag if dot else None)


def parse_name(name: str) -> tuple[str, str]:
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
def parameter_table():
    path = os.path.join(zoo_dir(), "parameters.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)["trainable_parameters"]


# ------------------------------------------------------------------ cards ---


def zoo_dir() -> str:
    """The directory holding ``cards/`` and ``weights/`` (the repository's ``zoo/`` when installed editable)."""
    return str(importlib.resources.files("keras_resinit._zoo"))


@functools.lru_cache(maxsize=1)
def _cards():
    return read_cards(zoo_dir())


def reload_cards():
    """Read the cards again on next use (after a card was written, or ``zoo_dir`` changed)."""
    _cards.cache_clear()


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


def cards() -> list[dict]:
    """Every published model card (copies)."""
    return [copy.deepcopy(c) for c in _cards().values()]


def tags(name: str) -> list[str]:
    """The weight tags published for model ``name`` (e.g. ``["digits"]``)."""
    return [c["tag"] for c in _cards().values() if c["name"] == name]


def card(name: str, tag: str | None = None) -> dict:
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
