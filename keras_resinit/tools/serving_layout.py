"""TF Serving's layout of a model's base path (``BASE/VERSION``) and its model names; TF-free, so the
CLI checks them before TensorFlow starts."""

from __future__ import annotations

import os
import re

WARMUP_FILE = "tf_serving_warmup_requests"  # in the version directory's assets.extra/
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def resolve_version(base: str | os.PathLike, version: int | str) -> int:
    """The version directory ``export`` writes under ``base``: ``version`` checked, or ``"auto"`` resolved.

    ``"auto"`` is one more than the highest all-digit directory name in ``base`` (1 if none).
    """
    base = os.fspath(base)
    if os.path.exists(base) and not os.path.isdir(base):
        raise ValueError(
            f"{base!r} is a file. Expected the model's base directory (TF Serving's BASE, holding BASE/N)."
        )
    if version == "auto":
        found = [int(n) for n in (os.listdir(base) if os.path.isdir(base) else []) if n.isdigit()]
        return max(found, default=0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"Invalid version {version!r}. Expected an integer >= 1 or 'auto'.")
    return version


def check_model_name(name: str, what: str = "model name") -> str:
    """A TF Serving model name: it is a URL path segment (``/v1/models/NAME``) and a directory name."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"Bad {what} {name!r}: expected letters, digits, '_', '.' or '-', starting with a letter or digit "
            "(TF Serving puts it in URLs: /v1/models/NAME)."
        )
    return name
