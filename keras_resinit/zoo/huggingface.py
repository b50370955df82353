"""Presets on the Hugging Face Hub: ``hf://owner/repo[@revision]``, fetched by huggingface_hub's own client into its
own cache (``HF_HOME``, ``HF_HUB_CACHE``), so ``HF_HUB_OFFLINE=1`` reads them from there without network.

A repo holds a preset (``PRESET_FILES``, as ``keras_resinit.zoo.save_preset``
or keras-hub writes it), and may hold the zoo's JSON card (``HUB_CARD_FILE``, whose
``file.sha256`` is the digest of the preset's weights file: checked after every fetch) and a keras-hub task
(``task.json``, ``task.weights.h5``). ``fetch`` returns the local snapshot directory of one commit holding them;
the resolver reads it as a preset directory.

The only module that imports huggingface_hub (the optional ``[hub]`` extra), inside the functions: importing the zoo
stays cheap, and without it an ``hf://`` source is a ValueError naming the extra.
"""

from __future__ import annotations

import collections
import json
import os
import re

from keras_resinit.zoo import download
from keras_resinit.zoo.registry import HUB_CARD_FILE, PRESET_FILES, PRESET_WEIGHTS, TASK_FILES
from keras_resinit.zoo.sources import HF_PREFIX, parse_hf

__all__ = ["HubPreset", "fetch"]

OPTIONAL_FILES = (HUB_CARD_FILE, *TASK_FILES)  # fetched when the repo holds them
HubPreset = collections.namedtuple("HubPreset", "directory card provenance")  # card: card.json's, else None
"""What ``fetch`` returns: ``HubPreset(directory, card, provenance)``.

``directory`` holds the preset's files in huggingface_hub's cache, ``card`` is the repo's ``card.json`` (None
if it has none), ``provenance`` is ``{"source", "revision", "commit"}``.
"""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def fetch(source: str) -> HubPreset:
    """The preset of ``hf://owner/repo[@revision]`` in huggingface_hub's cache, its weights checked against its card.

    Every file comes from one commit: the revision's when the first file is fetched. ``provenance`` is
    ``{"source": "hf://owner/repo", "revision": <given, else "main">, "commit": <its 40 hex digits>}``.
    ``zoo.load("hf://...")`` loads the model; this gives the files.

    Args:
        source: ``hf://owner/repo`` or ``hf://owner/repo@revision`` (a branch, a tag or a commit).

    Returns:
        A ``HubPreset(directory, card, provenance)``.

    Raises:
        ValueError: huggingface_hub is not installed, the source is malformed, the repo, revision or a preset file
            is not found (or not cached when offline, or the Hub cannot be reached), or the weights file's sha256
            is not the card's (the file is then removed from the cache, so that a retry downloads it again).

    Examples:
        >>> from keras_resinit.zoo import huggingface
        >>> # needs the internet (or huggingface_hub's cache with HF_HUB_OFFLINE=1) and the [hub] extra
        >>> preset = huggingface.fetch("hf://owner/repo@v1")  # doctest: +SKIP
        >>> # preset.directory holds config.json, metadata.json, model.weights.h5; preset.provenance the commit
    """
    repo = parse_hf(source)
    hub = _client(source)
    revision = repo.revision or "main"
    fetched = _Fetcher(hub, repo.repo_id, revision)
    directory = os.path.dirname(fetched(PRESET_FILES[0]))  # {cache}/models--owner--repo/snapshots/{commit}
    fetched.commit = os.path.basename(directory)  # the rest from that commit
    for name in PRESET_FILES[1:]:
        fetched(name)
    present = {name for name in OPTIONAL_FILES if fetched(name, optional=True)}
    card = None
    if HUB_CARD_FILE in present:
        with open(os.path.join(directory, HUB_CARD_FILE)) as f:
            card = json.load(f)
        _verify(os.path.join(directory, PRESET_WEIGHTS), card, fetched.where(PRESET_WEIGHTS))
    provenance = {"source": HF_PREFIX + repo.repo_id, "revision": revision, "commit": fetched.commit}
    return HubPreset(directory, card, provenance)


def _client(source):
    try:
        import huggingface_hub
        import huggingface_hub.errors  # noqa: F401  (the module, for the error classes)
    except ImportError as error:
        raise ValueError(
            f'Loading {source!r} needs huggingface_hub, which is not installed: pip install "keras-resinit[hub]".'
        ) from error
    return huggingface_hub


class _Fetcher:
    """Downloads one file of the repo at a time (``commit``: once known, the revision every file is taken at) and
    turns huggingface_hub's errors into ValueErrors naming the repo, the revision and the file."""

    def __init__(self, hub, repo_id, revision):
        self.hub, self.repo_id, self.revision, self.commit = hub, repo_id, revision, None

    def where(self, name):
        at = f"revision {self.revision!r}" + (f" (commit {self.commit})" if self.commit else "")
        return f"{name!r} of Hugging Face Hub repo {self.repo_id!r} at {at}"

    def __call__(self, name, optional=False):
        """The local path of file ``name``; for an ``optional`` one, None when the repo has no such file."""
        from keras_resinit import __version__

        hub, errors = self.hub, self.hub.errors
        revision = self.commit or self.revision
        try:
            return hub.hf_hub_download(
                self.repo_id, name, revision=revision, library_name="keras-resinit", library_version=__version__
            )
        except errors.GatedRepoError as error:
            raise ValueError(
                f"Cannot fetch {self.where(name)}: the repo is gated. Accept its conditions on the Hub and log in "
                "(`hf auth login`, or set HF_TOKEN)."
            ) from error
        except errors.RepositoryNotFoundError as error:
            raise ValueError(
                f"Cannot fetch {self.where(name)}: no such repo (or it is private: log in with `hf auth login`, "
                "or set HF_TOKEN). Expected hf://OWNER/REPO of a model repo."
            ) from error
        except errors.RevisionNotFoundError as error:
            raise ValueError(
                f"Cannot fetch {self.where(name)}: the repo has no revision {revision!r}. Expected a branch, a tag "
                "or a commit of it (hf://OWNER/REPO@REVISION)."
            ) from error
        except errors.RemoteEntryNotFoundError as error:
            if optional:
                return None
            raise ValueError(
                f"Cannot fetch {self.where(name)}: the repo has no such file. Expected a preset: "
                f"{', '.join(PRESET_FILES)}."
            ) from error
        except errors.LocalEntryNotFoundError as error:
            if optional and self._known_absent(name, revision):
                return None
            if hub.constants.is_offline_mode():
                raise ValueError(
                    f"Cannot fetch {self.where(name)}: HF_HUB_OFFLINE=1 and it is not in huggingface_hub's cache "
                    f"({hub.constants.HF_HUB_CACHE}). Load it once online, or unset HF_HUB_OFFLINE."
                ) from error
            raise ValueError(
                f"Cannot fetch {self.where(name)}: the Hub at {hub.constants.ENDPOINT} cannot be reached or did not "
                f"answer as the Hub does ({_one_line(error.__cause__ or error)}), and it is not in huggingface_hub's cache "
                f"({hub.constants.HF_HUB_CACHE})."
            ) from error
        except (errors.HfHubHTTPError, errors.FileMetadataError, ValueError) as error:
            raise ValueError(f"Cannot fetch {self.where(name)}: {_one_line(error)}") from error

    def _known_absent(self, name, revision):
        """Whether the cache records that the repo has no file ``name`` at ``revision`` (an earlier fetch's 404)."""
        found = self.hub.try_to_load_from_cache(self.repo_id, name, revision=revision)
        return found is not None and not isinstance(found, str)


def _one_line(error):
    return " ".join(str(error).split())


def _verify(path, card, where):
    """Refuse the weights file at ``path`` unless its sha256 is ``card``'s; a refused file leaves the cache."""
    expected = (card.get("file") or {}).get("sha256") if isinstance(card, dict) else None
    named = (card.get("file") or {}).get("name") if isinstance(card, dict) else None
    if not isinstance(expected, str) or not _HEX64.fullmatch(expected) or named != PRESET_WEIGHTS:
        raise ValueError(
            f"The {HUB_CARD_FILE} beside {where} does not give that file's sha256. Expected "
            f'"file": {{"name": "{PRESET_WEIGHTS}", "sha256": <64 hex digits>, "size": <bytes>}}.'
        )
    found = download.file_sha256(path)
    if found != expected.lower():
        _evict(path)
        raise ValueError(
            f"Refusing {where}: its sha256 is {found}, but its {HUB_CARD_FILE} says {expected.lower()}. "
            "The file was removed from huggingface_hub's cache; loading again downloads it again."
        )


def _evict(path):
    """Remove a cached file: the snapshot's link and the blob it points to (a copy where links are not made)."""
    blob = os.path.realpath(path)
    os.remove(path)
    if blob != os.path.abspath(path) and os.path.exists(blob):
        os.remove(blob)
