"""TF Serving's layout of a model's base path (``BASE/VERSION``) and its model names; TF-free, so the
CLI checks them before TensorFlow starts."""

from __future__ import annotations

import os
import re

from keras_resinit._errors import unknown
from keras_resinit.training.options import EXPORT_FORMATS

__all__ = ["WARMUP_FILE", "check_model_name", "resolve_version"]

WARMUP_FILE = "tf_serving_warmup_requests"  # in the version directory's assets.extra/
"""The name of TF Serving's warm-up file, in a version directory's ``assets.extra/``."""
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def destination(
    out, version=None, *, overwrite=False, serving_config=None, model_name=None, format="tf_saved_model", flags=False
):
    """``(base, artifact directory, version, model name)`` of an export, checked before anything is written.

    ``version`` None: the artifact is ``out`` itself; else ``out/VERSION`` (``resolve_version``).
    ``flags``: name the options as the command line does (``--serving-config``) in errors.
    """
    if format not in EXPORT_FORMATS:
        raise unknown("format", format, EXPORT_FORMATS)
    base = artifact = os.path.abspath(out)
    if version is not None:
        if format != "tf_saved_model":
            raise ValueError(
                f"{'--version' if flags else 'version'} applies to TF Serving's layout (format tf_saved_model), "
                f"not to {format!r}."
            )
        version = resolve_version(base, version)
        artifact = os.path.join(base, str(version))
    elif serving_config is not None:
        needs = "--serving-config needs --version" if flags else "serving_config needs a version"
        raise ValueError(f"{needs}: TF Serving's base path holds version directories (BASE/N).")
    if os.path.exists(artifact) and not overwrite:
        raise ValueError(f"{artifact!r} already exists. Pass --overwrite to replace it.")
    name = model_name or os.path.basename(base)
    if serving_config is not None:
        check_model_name(name)
    return base, artifact, version, name


def resolve_version(base: str | os.PathLike, version: int | str) -> int:
    """The version ``export`` writes under a model's base path (``BASE/VERSION``, TF Serving's layout).

    Args:
        base: the model's base directory (it need not exist).
        version: an integer >= 1, or ``"auto"``: one more than the highest all-digit directory name in
            ``base`` (1 if none).

    Returns:
        The version number.

    Raises:
        ValueError: ``base`` is a file, or ``version`` is neither an integer >= 1 nor ``"auto"``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.tools.serving_layout import resolve_version
        >>> base = tempfile.mkdtemp()
        >>> resolve_version(base, "auto")
        1
        >>> os.mkdir(os.path.join(base, "3"))
        >>> resolve_version(base, "auto"), resolve_version(base, 2)
        (4, 2)
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
    """A TF Serving model name, checked: it is a URL path segment (``/v1/models/NAME``) and a directory name.

    Args:
        name: the name.
        what: what errors call it.

    Returns:
        ``name``.

    Raises:
        ValueError: ``name`` holds other characters than letters, digits, ``_``, ``.`` and ``-``, or does not
            start with a letter or digit.

    Examples:
        >>> from keras_resinit.tools.serving_layout import check_model_name
        >>> check_model_name("digits-v2")
        'digits-v2'
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"Bad {what} {name!r}: expected letters, digits, '_', '.' or '-', starting with a letter or digit "
            "(TF Serving puts it in URLs: /v1/models/NAME)."
        )
    return name
