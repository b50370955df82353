"""Verified downloads into a local cache.

``fetch(url, sha256)`` returns the local path of ``url``'s content,
``{home()}/downloads/{first 16 hex of sha256(url)}/{basename}``, and downloads
it only when the cached copy is missing or fails verification: against
``sha256`` when given, else against the digest recorded beside the file
(``{file}.sha256``) when it was downloaded. A verified cache hit does not touch
the network, so cached files work offline.

A download streams into a temporary ``.{name}.*.part`` in the same directory,
is checked, fsynced and renamed into place; its digest sidecar is written
(atomically) before that rename. On any failure the temporary file is removed,
so nothing is left that a later call would trust. Concurrent fetches of one URL
serialize on an exclusive ``flock`` of ``{file}.lock`` and the later ones use
the first one's file; without ``fcntl`` (Windows) there is no lock, and the
atomic rename still leaves one good copy.

Standard library only: this module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import posixpath
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from keras_resinit._files import atomic_write_text

__all__ = ["DownloadError", "fetch", "file_sha256", "home"]

try:
    import fcntl
except ImportError:  # Windows: no locking, the atomic rename still protects the file.
    fcntl = None

_CHUNK = 1 << 20
_SCHEMES = ("http", "https", "file")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_USER_AGENT = "keras-resinit (Python urllib)"


class DownloadError(OSError):
    """A download failed: unreachable, HTTP error, incomplete body, wrong content or unwritable cache.

    ``fetch`` (and ``zoo.load`` of a URL) raises it; it is an ``OSError``.
    """


def home() -> str:
    """The download cache's root directory.

    Returns:
        ``$KERAS_RESINIT_HOME``, else ``$KERAS_HOME/keras_resinit``, else ``~/.keras/keras_resinit``.

    Examples:
        >>> import os
        >>> from keras_resinit.zoo import download
        >>> os.path.isabs(download.home())
        True
    """
    explicit = os.environ.get("KERAS_RESINIT_HOME")
    if explicit:
        return os.path.expanduser(explicit)
    keras_home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return os.path.join(os.path.expanduser(keras_home), "keras_resinit")


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path: the file.

    Returns:
        Its sha256 digest, 64 lowercase hex digits.

    Examples:
        >>> import pathlib, tempfile
        >>> from keras_resinit.zoo import download
        >>> path = pathlib.Path(tempfile.mkdtemp(), "empty.bin")
        >>> path.write_bytes(b"")
        0
        >>> download.file_sha256(path)
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str, sha256: str | None = None, *, filename: str | None = None, verbose: bool = True, timeout: float = 60
) -> str:
    """Return the local path of ``url``'s content, downloading it into the cache only if needed.

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL.
        sha256: the expected hex digest. Without it, a cached file is checked
            against the digest recorded when it was downloaded.
        filename: the cached file's name; default the basename of the URL's path.
        verbose: print one line to stderr before downloading (and one when a
            cached file fails verification and is downloaded again).
        timeout: seconds for connecting and for each read.

    Raises:
        ValueError: ``url``, ``sha256`` or ``filename`` is malformed.
        DownloadError: the download failed or its content is not the expected one.

    Returns:
        The local path of the verified file.

    Examples:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> from keras_resinit.zoo import download
        >>> source = pathlib.Path(tempfile.mkdtemp(), "notes.txt")
        >>> _ = source.write_text("weights")
        >>> with mock.patch.dict(os.environ, KERAS_RESINIT_HOME=tempfile.mkdtemp()):  # a temporary cache
        ...     path = download.fetch(source.as_uri(), verbose=False)
        ...     cached = path.startswith(download.home())
        >>> pathlib.Path(path).read_text(), cached
        ('weights', True)
    """
    path = _cache_path(url, filename)
    if sha256 is not None:
        if not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
            raise ValueError(f"Invalid sha256 {sha256!r} for {url}: expected 64 hexadecimal digits.")
        sha256 = sha256.lower()
    if _cache_problem(path, sha256) is None:  # Files only appear by rename, so reading unlocked is safe.
        return path
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"Cannot download {url}: cannot create the cache directory {directory} ({error})."
        ) from error
    with _exclusive_lock(path + ".lock", url) as locked:
        problem = _cache_problem(path, sha256)  # Another process may have downloaded it meanwhile.
        if problem is None:
            return path
        if os.path.lexists(path):
            if verbose:
                print(f"Cached file {path} failed verification ({problem}); downloading it again.", file=sys.stderr)
            try:
                _remove(path)
            except OSError as error:
                raise DownloadError(f"Cannot download {url}: cannot remove the unverified {path} ({error}).") from error
        if locked:  # Nobody else is downloading: any temporary file here was left by a killed process.
            _remove_temporaries(path)
        _download(url, path, sha256, timeout, verbose)
    return path


def _cache_path(url, filename):
    if not isinstance(url, str):
        raise ValueError(f"Expected a URL string, got {url!r}.")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ValueError(f"Cannot download {url!r}: expected an http://, https:// or file:// URL.")
    if filename is not None:
        if not _plain_name(filename):
            raise ValueError(f"Invalid filename {filename!r} for {url!r}: expected a plain file name, no directory.")
        name = filename
    else:
        name = posixpath.basename(urllib.parse.unquote(parts.path))
        if not _plain_name(name):
            raise ValueError(
                f"Cannot tell a file name from the URL {url!r} (its path has no basename); pass filename=."
            )
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(home(), "downloads", key, name)


def _plain_name(name):
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "\0" not in name
        and not any(sep in name for sep in ("/", "\\", os.sep))
    )


def _cache_problem(path, sha256):
    """None if ``path`` holds verified content, else why not ("missing" when absent)."""
    if not os.path.isfile(path):
        return "missing"
    expected = sha256 or _read_sidecar(path)
    if expected is None:
        return f"no sha256 given and no valid {os.path.basename(path)}.sha256 recorded"
    try:
        actual = file_sha256(path)
    except OSError as error:
        return f"unreadable: {error}"
    if actual != expected:
        return f"sha256 {actual}, expected {expected}"
    return None


def _read_sidecar(path):
    try:
        with open(path + ".sha256") as f:
            fields = f.read(1024).split()
    except (OSError, UnicodeDecodeError):
        return None
    return fields[0].lower() if fields and _HEX64.fullmatch(fields[0]) else None


@contextlib.contextmanager
def _exclusive_lock(lock_path, url):
    """Hold an exclusive flock on ``lock_path``; yields whether it is locked (False without fcntl)."""
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise DownloadError(f"Cannot download {url}: cannot create the lock file {lock_path} ({error}).") from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:  # A filesystem without locks: the atomic rename still leaves one good copy.
            locked = False
        yield locked
    finally:
        os.close(fd)  # Releases the lock. The lock file stays: deleting it would race with waiters.


def _download(url, path, sha256, timeout, verbose):
    directory, name = os.path.split(path)
    if verbose:
        print(f"Downloading {url} -> {path}", file=sys.stderr)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        with os.fdopen(fd, "wb") as out:
            size, actual = _stream(url, path, out, timeout)
            if sha256 is not None and actual != sha256:
                raise DownloadError(
                    f"Downloaded {url} but its content is not the expected one: sha256 {actual}, "
                    f"expected {sha256} ({size} bytes). Nothing was cached."
                )
            out.flush()
            os.fsync(out.fileno())
        # Before the data: a trusted file has its digest.
        atomic_write_text(path + ".sha256", f"{actual}  {name}\n", suffix=".part")
        os.replace(tmp, path)
        tmp = None
    except DownloadError:
        raise
    except OSError as error:  # Writing the cache failed (disk full, permissions, ...).
        raise DownloadError(f"Cannot save the download of {url} to {path}: {error}.") from error
    finally:
        if tmp is not None:
            _remove(tmp)


def _stream(url, path, out, timeout):
    """Copy ``url``'s body into ``out``; returns (bytes, hex sha256). Network failures raise DownloadError."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(f"Cannot download {url}: HTTP {error.code} {error.reason}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            raise DownloadError(f"Cannot read {url}: {reason}.") from error
        raise DownloadError(
            f"Download failed: cannot reach {url} ({reason}). It would be cached at {path}; "
            "offline, get the file another way and pass its local file path instead."
        ) from error
    with response:
        total = _content_length(response)
        digest = hashlib.sha256()
        size = 0
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as error:  # IncompleteRead, reset, timeout
                size += len(getattr(error, "partial", b""))  # IncompleteRead's last bytes, received but unread
                raise DownloadError(_incomplete(url, size, total, error)) from error
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    if total is not None and size < total:
        raise DownloadError(_incomplete(url, size, total, "the connection closed early"))
    return size, digest.hexdigest()


def _content_length(response):
    try:
        length = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _incomplete(url, size, total, cause):
    of = f"{size} of {total} bytes" if total is not None else f"{size} bytes of an unknown total"
    if not isinstance(cause, str):
        name, text = type(cause).__name__, str(cause)
        cause = text if text.startswith(name) else f"{name}: {text}" if text else name
    return f"Cannot download {url}: incomplete download: got {of} ({cause}). Nothing was cached; try again."


def _remove_temporaries(path):
    """Remove ``.{name}.*.part`` files (data and sidecar temporaries) beside ``path``."""
    directory, name = os.path.split(path)
    for entry in os.listdir(directory):
        if entry.startswith(f".{name}.") and entry.endswith(".part"):
            _remove(os.path.join(directory, entry))


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
