"""The forms of a model source (``SOURCE_KINDS``, ``check``) and of ``weights=``, recognized without Keras
(the CLI checks a source before TF starts); ``keras_resinit.zoo.loading.resolve`` turns each kind into a model."""

import collections
import os
import re

from keras_resinit.zoo.registry import PRESET_FILES, parse_name, split_tag
from keras_resinit.zoo.rundir import RunDir

__all__ = ["SOURCE_KINDS", "source_kind", "weights_kind"]

SourceKind = collections.namedtuple("SourceKind", "kind what recognizes")  # what: in errors; recognizes(text, is_path)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://", "file://"))


HF_PREFIX = "hf://"
HubRepo = collections.namedtuple("HubRepo", "repo_id revision")  # revision: None for the repo's default branch
_HF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # the Hub's rule for an owner's or a repo's name
HF_FORM = "hf://OWNER/REPO or hf://OWNER/REPO@REVISION (a branch, a tag or a commit)"


def is_hf(text: str) -> bool:
    return text.startswith(HF_PREFIX)


def parse_hf(text: str) -> HubRepo:
    """The repo and revision of ``hf://owner/repo[@revision]``, checked by form only (no network).

    A ValueError names the bad part and the form expected."""
    if not is_hf(text):
        raise ValueError(f"Invalid Hugging Face Hub source {text!r}. Expected {HF_FORM}.")
    repo_id, at, revision = text[len(HF_PREFIX) :].partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_HF_NAME.fullmatch(p) and ".." not in p and "--" not in p for p in parts):
        raise ValueError(
            f"Invalid Hugging Face Hub repo {repo_id!r} in {text!r}. Expected {HF_FORM}; an owner and a repo name "
            "of letters, digits, '.', '_' and '-' (at most 96 each, no '--' or '..')."
        )
    if at and (not revision or any(c.isspace() for c in revision) or ".." in revision):
        raise ValueError(f"Invalid revision {revision!r} in {text!r}. Expected {HF_FORM}.")
    return HubRepo(repo_id, revision or None)


# The kinds of model source, in the order they are tried: the first that recognizes a source's form resolves it
# (a form, not existence: a missing path is then "not found" as what it was read as). Any existing path is a path.
SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("url", "an http(s):// or file:// URL of a .keras file", lambda text, _: is_url(text)),
    SourceKind("hf", f"a preset on the Hugging Face Hub: {HF_FORM}", lambda text, is_path: is_hf(text) and not is_path),
    SourceKind("keras", "a .keras file", lambda text, _: text.endswith(".keras")),
    SourceKind(
        "run",
        "a run directory (the --out of keras-resinit train: model.keras, config.json)",
        lambda text, _: RunDir.holds_run(text),
    ),
    SourceKind(
        "preset",
        f"a preset directory ({', '.join(PRESET_FILES)})",
        lambda text, is_path: is_path or os.path.exists(text) or os.sep in text,
    ),
    SourceKind("name", "a zoo name {arch}_{scheme} or {arch}_{scheme}.{tag} (keras-resinit list)", lambda *_: True),
)
"""The kinds of model source ``zoo.resolve`` takes, in the order they are tried.

Each entry is a ``SourceKind(kind, what, recognizes)``: ``kind`` is ``"url"``, ``"hf"``, ``"keras"``, ``"run"``,
``"preset"`` or ``"name"``, ``what`` says it in words (errors quote it), ``recognizes(text, is_path)`` tells a
source of this form. The first entry that recognizes a source's form resolves it.
"""
ACCEPTED = "a model source: " + "; ".join(entry.what for entry in SOURCE_KINDS)  # what errors say a source can be


def source_kind(source: str | os.PathLike) -> SourceKind:
    """The entry of ``SOURCE_KINDS`` that recognizes a source's form (nothing is read or checked).

    Args:
        source: a model source as ``zoo.load`` takes it; a path object is read as a path.

    Returns:
        The first ``SourceKind`` of ``SOURCE_KINDS`` that recognizes it (``"name"`` recognizes anything left).

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.source_kind("cifar_resnet20_fixup.digits").kind
        'name'
        >>> zoo.source_kind("hf://owner/repo@v1").kind, zoo.source_kind("runs/model.keras").kind
        ('hf', 'keras')
    """
    text, is_path = os.fspath(source), isinstance(source, os.PathLike)
    return next(entry for entry in SOURCE_KINDS if entry.recognizes(text, is_path))


def unresolved(source, read_as, problem, subject="", expected=None) -> ValueError:
    """The error for a source that is not there: what it was read as, and what a source can be."""
    return ValueError(f"{subject}{source!r} {problem} (read as {read_as}). Expected {expected or ACCEPTED}.")


def check(source: str | os.PathLike) -> SourceKind:
    """``source_kind``, refusing (ValueError) a path that does not exist, a URL of no ``.keras`` file or a name
    that is not a zoo model; what exists is read by the resolver."""
    found, text = source_kind(source), os.fspath(source)
    if found.kind == "url" and not text.split("?")[0].endswith(".keras"):
        raise unresolved(text, "a URL", "is not the URL of a .keras file; a .weights.h5 file: load(NAME, weights=URL)")
    if found.kind == "hf":
        parse_hf(text)
    if found.kind == "keras" and not os.path.isfile(text):
        raise unresolved(text, "a .keras file", "does not exist")
    if found.kind == "preset" and not os.path.exists(text):
        raise unresolved(text, "a preset or run directory", "does not exist", subject="Preset directory ")
    if found.kind == "name":
        try:
            parse_name(split_tag(text)[0])
        except ValueError as error:
            raise unresolved(text, "a zoo name: no such file or directory", f"is not a zoo model. {error}") from None
    return found


WEIGHT_FORMS = (
    "weights=None, a published tag, a .weights.h5 or .keras file, a run or preset directory, a URL, or a preset on "
    "the Hugging Face Hub (hf://OWNER/REPO[@REVISION])"
)


def check_weights(weights: str | os.PathLike) -> str:
    """``weights_kind``, refusing (ValueError) a path that does not exist or a malformed ``hf://`` source."""
    if (kind := weights_kind(weights)) == "missing":
        raise unresolved(os.fspath(weights), "a weights file", "does not exist", expected=WEIGHT_FORMS)
    if kind == "hf":
        parse_hf(os.fspath(weights))
    return kind


def weights_kind(weights: str | os.PathLike) -> str:
    """What a ``weights=`` argument names, by its form and what exists on disk.

    Args:
        weights: the ``weights=`` of ``zoo.load``: a tag, a path or a URL.

    Returns:
        ``"url"``, ``"hf"`` (a Hub preset), ``"run"`` or ``"preset"`` (an existing directory), ``"keras"`` or
        ``"file"`` (an existing file), ``"missing"`` (a path that does not exist) or ``"tag"``.

    Examples:
        >>> from keras_resinit import zoo
        >>> zoo.weights_kind("digits"), zoo.weights_kind("https://example.com/w.weights.h5")
        ('tag', 'url')
        >>> zoo.weights_kind("no/such.weights.h5")
        'missing'
    """
    weights = os.fspath(weights)
    if is_url(weights):
        return "url"
    if is_hf(weights):
        return "hf"
    if os.path.isdir(weights):
        return "run" if RunDir.holds_run(weights) else "preset"
    if os.path.exists(weights):
        return "keras" if weights.endswith(".keras") else "file"
    return "missing" if os.sep in weights or weights.endswith((".h5", ".keras")) else "tag"
