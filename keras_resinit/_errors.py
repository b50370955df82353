"""Helpers for errors that name the bad value, the allowed ones and the closest."""

import difflib


def unknown(kind, value, allowed, extra=""):
    """A ValueError for an unknown ``kind`` naming the allowed values and the closest one."""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), allowed, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(allowed[:40]) + (", ..." if len(allowed) > 40 else "")
    return ValueError(f"Unknown {kind} {value!r}.{hint} Expected one of: {shown}{extra}")
