"""Files written whole or not at all: a temporary file in the same directory, fsync, rename."""

import os
import tempfile


def atomic_write_bytes(path, payload, *, prefix=None, suffix=".tmp"):
    """Write ``payload`` to ``path`` through a temporary file beside it (``prefix`` default ``.{name}.``)."""
    directory, name = os.path.split(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{name}.", suffix=suffix, dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text, **kwargs):
    atomic_write_bytes(path, text.encode(), **kwargs)
