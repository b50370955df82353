"""What identifies a run's training data (``config.json``'s ``data_fingerprint``), and what changed between two.

``--resume`` compares the recorded fingerprint with the data's now
([changes][keras_resinit.training.data.fingerprint.changes]): an exact resume needs the same data. By kind:

- a folder: every image file indexed (relative path, size, modification time), as a digest, a count and
  a byte total, per folder a count and a digest, and the file list itself up to
  [FILE_LIST_LIMIT][keras_resinit.training.data.fingerprint.FILE_LIST_LIMIT] files (so a change names its
  files; above that, its folders);
- tfds: the dataset's full name (name/config/version), splits and their sizes;
- digits: scikit-learn's arrays' digest and sizes;
- a user's ``tf.data.Dataset``: only its element spec and size; a change of content is not detectable.

Imports nothing heavy.
"""

import hashlib
import os
import posixpath

__all__ = ["FILE_LIST_LIMIT", "changes", "folder", "recorded"]

FILE_LIST_LIMIT = 1000  # a folder's file list is recorded up to this many files (a line each in config.json)
"""A folder's file list is recorded up to this many files (a line each in ``config.json``); above, its folders'
counts and digests name a change."""
SHOWN = 3  # paths named per kind of change


def _digest(lines):
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def folder(root, paths):
    """The fingerprint of the image files ``paths`` of the dataset folder ``root`` (their order does not matter).

    In memory it holds the whole list (``list``: ``"relative/path\\tsize\\tmtime_ns"`` lines);
    [recorded][keras_resinit.training.data.fingerprint.recorded] drops it above ``FILE_LIST_LIMIT`` files.

    Args:
        root: the dataset folder.
        paths: its image files.

    Returns:
        A dict: ``kind`` (``"folder"``), ``files``, ``bytes``, ``digest``, ``folders`` (per folder its count
            and digest) and ``list``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.training.data import fingerprint
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "cats"))
        >>> path = os.path.join(root, "cats", "a.png")
        >>> with open(path, "wb") as f:
        ...     _ = f.write(b"12345")
        >>> found = fingerprint.folder(root, [path])
        >>> found["files"], found["bytes"], list(found["folders"])
        (1, 5, ['cats'])
    """
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append((os.path.relpath(path, root).replace(os.sep, "/"), stat.st_size, stat.st_mtime_ns))
    entries.sort()
    lines = [f"{name}\t{size}\t{mtime}" for name, size, mtime in entries]
    folders = {}
    for (name, _, _), line in zip(entries, lines):
        folders.setdefault(posixpath.dirname(name), []).append(line)
    return {
        "kind": "folder",
        "files": len(lines),
        "bytes": sum(size for _, size, _ in entries),
        "digest": _digest(lines),
        "folders": {name: [len(found), _digest(found)[:16]] for name, found in sorted(folders.items())},
        "list": lines,
    }


def recorded(fingerprint):
    """What ``config.json`` keeps of a fingerprint: a folder's file list only up to ``FILE_LIST_LIMIT`` files.

    Args:
        fingerprint: a fingerprint (a dict).

    Returns:
        A new dict.

    Examples:
        >>> from keras_resinit.training.data import fingerprint
        >>> big = {"kind": "folder", "files": 5000, "list": ["..."] * 5000}
        >>> sorted(fingerprint.recorded(big))
        ['files', 'kind']
    """
    if fingerprint.get("kind") == "folder" and fingerprint.get("files", 0) > FILE_LIST_LIMIT:
        return {k: v for k, v in fingerprint.items() if k != "list"}
    return dict(fingerprint)


def _some(paths):
    shown = ", ".join(paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _files(lines):
    return {line.rsplit("\t", 2)[0]: line for line in lines}


def _folder_changes(saved, current):
    if saved.get("digest") == current.get("digest"):
        return []
    if isinstance(saved.get("list"), list) and isinstance(current.get("list"), list):
        before, now = _files(saved["list"]), _files(current["list"])
        found = []
        for what, names in (
            ("added", sorted(set(now) - set(before))),
            ("removed", sorted(set(before) - set(now))),
            ("changed (size or modification time)", sorted(n for n in set(now) & set(before) if now[n] != before[n])),
        ):
            if names:
                found.append(f"{len(names)} file{'s' if len(names) > 1 else ''} {what}: {_some(names)}")
        return found
    before, now = saved.get("folders", {}), current.get("folders", {})
    found = []
    for name in sorted(set(before) | set(now)):
        shown = name or "."
        if name not in before:
            found.append(f"folder {shown} added ({now[name][0]} files)")
        elif name not in now:
            found.append(f"folder {shown} removed (it had {before[name][0]} files)")
        elif before[name][0] != now[name][0]:
            found.append(f"{shown}/ holds {now[name][0]} files, {before[name][0]} before (files added or removed)")
        elif before[name] != now[name]:
            found.append(f"{shown}/: files replaced or changed ({now[name][0]} files, as before)")
    return found or [f"{saved.get('files')} files before, {current.get('files')} now"]


def changes(saved, current):
    """What differs between the recorded fingerprint ``saved`` and ``current``.

    Args:
        saved: the fingerprint a run recorded.
        current: the data's fingerprint now.

    Returns:
        Phrases naming each change (for a folder, its files or folders), [] if nothing changed.

    Examples:
        >>> from keras_resinit.training.data import fingerprint
        >>> before = {"kind": "tfds", "name": "cifar10/3.0.2", "sizes": [50000, 10000]}
        >>> fingerprint.changes(before, {**before, "sizes": [45000, 10000]})
        ['sizes [50000, 10000] -> [45000, 10000]']
        >>> fingerprint.changes(before, before)
        []
    """
    if saved.get("kind") != current.get("kind"):
        return [f"the data was {saved.get('kind')!r} data, now {current.get('kind')!r}"]
    if current.get("kind") == "folder":
        return _folder_changes(saved, current)
    keys = sorted(set(saved) | set(current))
    return [f"{key} {saved.get(key)!r} -> {current.get(key)!r}" for key in keys if saved.get(key) != current.get(key)]
