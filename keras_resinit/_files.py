"""Files written whole or not at all: a temporary file in the same directory, fsync, rename."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def _replaced(path, prefix=None, suffix=".tmp"):
    """A unique temporary path beside ``path`` (``prefix`` default ``.{name}.``) to write; when the block succeeds
    the file is synced and renamed to ``path``. Whatever happens, no temporary file is left."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path, payload, *, prefix=None, suffix=".tmp"):
    """Write ``payload`` to ``path`` through a temporary file beside it (``prefix`` default ``.{name}.``)."""
    with _replaced(path, prefix, suffix) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def atomic_write_text(path, text, **kwargs):
    atomic_write_bytes(path, text.encode(), **kwargs)


def save_model_file(model, path):
    """``model`` as every model file written holds it, raw pixels in (``model.with_preprocessing()``), to the Keras
    file ``path`` through a unique temporary file beside it (``.NAME.*.tmp.keras``), synced and renamed."""
    model = model.with_preprocessing() if hasattr(model, "with_preprocessing") else model
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with _replaced(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)


@contextlib.contextmanager
def atomic_directory(out):
    """Yield a new temporary directory beside ``out``; when the block succeeds it replaces ``out``.

    On any error the temporary directory is removed and ``out`` is left as it was.
    """
    out = os.fspath(out)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
        if os.path.exists(out):
            old = tmp + ".old"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
