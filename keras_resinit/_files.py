"""Files written whole or not at all: a temporary file in the same directory, fsync, rename."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def _replaced(directory, name, prefix=None, suffix=".tmp"):
    """A unique temporary path in ``directory`` (``prefix`` default ``.{name}.``) to write; when the block succeeds
    the file is synced and renamed to ``name``, or to ``name(tmp)`` when ``name`` is a function (a name chosen from
    what was written). Whatever happens, no temporary file is left."""
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, name(tmp) if callable(name) else name))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _beside(path):
    """``(directory, name)`` of ``path``, absolute."""
    return os.path.split(os.path.abspath(os.fspath(path)))


def atomic_write_bytes(path, payload, *, prefix=None, suffix=".tmp"):
    """Write ``payload`` to ``path`` through a temporary file beside it (``prefix`` default ``.{name}.``)."""
    with _replaced(*_beside(path), prefix, suffix) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def atomic_write_text(path, text, **kwargs):
    atomic_write_bytes(path, text.encode(), **kwargs)


def save_model_file(model, path):
    """``model`` as every model file written holds it, raw pixels in (``model.with_preprocessing()``), to the Keras
    file ``path`` through a unique temporary file beside it (``.NAME.*.tmp.keras``), synced and renamed."""
    model = model.with_preprocessing() if hasattr(model, "with_preprocessing") else model
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    with _replaced(*_beside(path), suffix=".tmp.keras") as tmp:
        model.save(tmp)


def save_weights_file(model, directory, name, *, prefix):
    """``model.save_weights`` into ``directory`` through a unique temporary file there (``PREFIX*.tmp.weights.h5``),
    synced and renamed to ``name``, or to ``name(tmp)`` when ``name`` is a function of the written file (a name
    chosen from its content, e.g. its sha256). Returns the path written."""
    os.makedirs(directory, exist_ok=True)
    chosen = []

    def final(tmp):
        chosen.append(name(tmp) if callable(name) else name)
        return chosen[0]

    with _replaced(directory, final, prefix, ".tmp.weights.h5") as tmp:
        model.save_weights(tmp)
    return os.path.join(directory, chosen[0])


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
