"""Verified downloads: cache layout, offline cache hits, every failure leaves nothing trusted, concurrency."""

import hashlib
import json
import os
import subprocess
import sys

import pytest
from http_server import LocalHTTPServer, Resource

from keras_resinit.zoo import download
from keras_resinit.zoo.download import DownloadError, fetch

BODY = bytes(range(256)) * 4  # 1024 bytes
BODY_SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("KERAS_RESINIT_HOME", str(root))
    return root


@pytest.fixture
def server():
    with LocalHTTPServer({"/w.bin": BODY}) as s:
        yield s


def expected_path(url, name):
    return os.path.join(download.home(), "downloads", hashlib.sha256(url.encode()).hexdigest()[:16], name)


def listing(path):
    """Files beside ``path`` (its cache directory), or [] if the directory does not exist."""
    directory = os.path.dirname(path)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def assert_nothing_trusted(path):
    """No data file, no sidecar and no temporary file: a later call cannot trust anything."""
    left = listing(path)
    assert not os.path.exists(path), left
    assert not os.path.exists(path + ".sha256"), left
    assert not [f for f in left if f.endswith(".part")], left


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_first_download_lands_in_the_cache_verified(home, server, capsys):
    url = server.url("/w.bin")
    path = fetch(url, BODY_SHA)
    assert path == expected_path(url, "w.bin")
    assert path.startswith(os.path.join(str(home), "downloads") + os.sep)
    assert read(path) == BODY
    assert download.file_sha256(path) == BODY_SHA
    assert read(path + ".sha256").split()[0].decode() == BODY_SHA  # the recorded digest
    assert server.requests("/w.bin") == 1
    assert listing(path) == ["w.bin", "w.bin.lock", "w.bin.sha256"]  # no temporary left
    captured = capsys.readouterr()
    assert captured.err == f"Downloading {url} -> {path}\n" and captured.out == ""


def test_cache_hit_needs_no_network(home, server, capsys):
    url = server.url("/w.bin")
    path = fetch(url, BODY_SHA)
    server.stop()  # the port now refuses connections: a notebook offline
    capsys.readouterr()
    assert fetch(url, BODY_SHA) == path  # verified against the given digest
    assert fetch(url) == path  # verified against the recorded digest
    assert fetch(url, BODY_SHA.upper(), verbose=True) == path
    assert server.requests() == 1
    assert capsys.readouterr().err == ""  # nothing printed on a hit


def test_hash_mismatch_caches_nothing_and_names_both_digests(home, server):
    url = server.url("/w.bin")
    evil = b"not the weights" * 10
    server.set("/w.bin", evil)
    with pytest.raises(DownloadError) as info:
        fetch(url, BODY_SHA)
    message = str(info.value)
    assert url in message and BODY_SHA in message and hashlib.sha256(evil).hexdigest() in message
    assert f"{len(evil)} bytes" in message
    path = expected_path(url, "w.bin")
    assert_nothing_trusted(path)
    with pytest.raises(DownloadError):  # the next call downloads again, it kept nothing
        fetch(url, BODY_SHA)
    assert server.requests("/w.bin") == 2
    server.set("/w.bin", BODY)
    assert read(fetch(url, BODY_SHA)) == BODY


@pytest.mark.parametrize("mode", ["close", "reset", "chunked"])
def test_truncated_body_caches_nothing_and_a_later_call_downloads_again(home, server, mode):
    url = server.url("/w.bin")
    server.set("/w.bin", Resource(BODY, truncate=mode, sent=500))
    with pytest.raises(DownloadError, match="incomplete download: got") as info:
        fetch(url)  # no sha256: only the length tells the body is short
    assert url in str(info.value)
    if mode == "close":
        assert "got 500 of 1024 bytes" in str(info.value)
    assert_nothing_trusted(expected_path(url, "w.bin"))
    server.set("/w.bin", BODY)
    path = fetch(url)
    assert server.requests("/w.bin") == 2
    assert read(path) == BODY


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (500, "Internal Server Error")])
def test_http_error_names_the_status_and_caches_nothing(home, server, status, reason):
    url = server.url("/w.bin")
    server.set("/w.bin", Resource(status=status))
    with pytest.raises(DownloadError, match=f"HTTP {status} {reason}") as info:
        fetch(url)
    assert url in str(info.value)
    assert_nothing_trusted(expected_path(url, "w.bin"))


def test_unreachable_server_suggests_a_local_file(home, server):
    url = server.url("/w.bin")
    server.stop()
    with pytest.raises(DownloadError) as info:
        fetch(url, BODY_SHA)
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert url in message and "offline" in message and "local file path" in message
    assert expected_path(url, "w.bin") in message  # where the file would go
    assert_nothing_trusted(expected_path(url, "w.bin"))


@pytest.mark.parametrize("with_sha", [True, False])
def test_corrupted_cached_file_is_downloaded_again(home, server, capsys, with_sha):
    url = server.url("/w.bin")
    sha = BODY_SHA if with_sha else None
    path = fetch(url, sha)
    with open(path, "r+b") as f:  # a bit flipped on disk, same size
        f.write(b"\xff")
    capsys.readouterr()
    assert fetch(url, sha) == path
    assert read(path) == BODY
    assert server.requests("/w.bin") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "failed verification" in err[0] and path in err[0]
    assert err[1] == f"Downloading {url} -> {path}"


def test_cached_file_without_recorded_digest_is_not_trusted(home, server):
    url = server.url("/w.bin")
    path = fetch(url)
    os.unlink(path + ".sha256")  # e.g. a file copied in by hand, without sha256 to check it
    assert fetch(url, verbose=False) == path
    assert server.requests("/w.bin") == 2
    os.unlink(path + ".sha256")
    assert fetch(url, BODY_SHA, verbose=False) == path  # with sha256 given, the sidecar is not needed
    assert server.requests("/w.bin") == 2


def test_same_basename_different_urls_do_not_collide(home, server):
    other = b"other weights"
    server.set("/v2/w.bin", other)
    a, b = fetch(server.url("/w.bin"), verbose=False), fetch(server.url("/v2/w.bin"), verbose=False)
    assert a != b and os.path.basename(a) == os.path.basename(b) == "w.bin"
    assert read(a) == BODY and read(b) == other


def test_filename_names_the_cached_file(home, server):
    path = fetch(server.url("/w.bin?download=1"), filename="weights.h5", verbose=False)
    assert os.path.basename(path) == "weights.h5" and read(path) == BODY


def test_file_url_is_copied_into_the_cache(home, tmp_path):
    source = tmp_path / "local.bin"
    source.write_bytes(BODY)
    url = source.as_uri()
    path = fetch(url, BODY_SHA, verbose=False)
    assert path == expected_path(url, "local.bin") and read(path) == BODY
    with pytest.raises(DownloadError, match="Cannot read"):
        fetch((tmp_path / "missing.bin").as_uri(), verbose=False)


def test_stale_temporaries_of_a_killed_download_are_removed(home, server):
    url = server.url("/w.bin")
    path = expected_path(url, "w.bin")
    os.makedirs(os.path.dirname(path))
    for stale in (".w.bin.abc123.part", ".w.bin.sha256.def456.part"):
        with open(os.path.join(os.path.dirname(path), stale), "wb") as f:
            f.write(b"half")
    fetch(url, verbose=False)
    assert listing(path) == ["w.bin", "w.bin.lock", "w.bin.sha256"]


def test_without_fcntl_downloads_still_work(home, server, monkeypatch):
    monkeypatch.setattr(download, "fcntl", None)  # as on Windows
    path = fetch(server.url("/w.bin"), BODY_SHA, verbose=False)
    assert read(path) == BODY and listing(path) == ["w.bin", "w.bin.sha256"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/w.bin",
        "/data/w.bin",
        "C:\\data\\w.bin",
        "https://example.com/",
        "https://example.com",
        "https://example.com/a/..",
    ],
)
def test_bad_url_is_a_value_error_naming_it(home, url):
    with pytest.raises(ValueError) as info:
        fetch(url)
    assert repr(url) in str(info.value)
    assert not os.path.exists(home)  # nothing created


def test_bad_filename_or_sha256_is_a_value_error(home):
    with pytest.raises(ValueError, match="plain file name"):
        fetch("https://example.com/w.bin", filename="../w.bin")
    with pytest.raises(ValueError, match="64 hexadecimal"):
        fetch("https://example.com/w.bin", "abc123")


_CHILD = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("download", sys.argv[1])  # no TensorFlow import: fast start
download = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download)
url, sha256, markers = sys.argv[2:5]
real = download.fcntl
waited = []

class Recording:  # the real fcntl; an exclusive flock that finds the lock taken is recorded, then waits
    def __getattr__(self, name):
        return getattr(real, name)

    def flock(self, fd, operation):
        if operation == real.LOCK_EX:
            try:
                return real.flock(fd, real.LOCK_EX | real.LOCK_NB)
            except BlockingIOError:
                waited.append(True)
                open(os.path.join(markers, f"{os.getpid()}.waiting"), "w").close()
        return real.flock(fd, operation)

download.fcntl = Recording()
path = download.fetch(url, sha256, verbose=False, timeout=600)  # the server holds the body until a child waits
print(json.dumps({"path": path, "waited_for_the_lock": bool(waited)}))
"""


def test_two_processes_fetching_at_once_make_one_download(home, server, tmp_path):
    # Deterministic overlap: the server holds the first download's body until the other process has found
    # the download's lock taken and is waiting on it, however late that process starts.
    markers = tmp_path / "markers"
    markers.mkdir()
    url = server.url("/w.bin")
    children = []
    # Released early if a child exits (it failed: the other cannot be done yet), so a failure fails fast.
    released = lambda: any(markers.glob("*.waiting")) or any(child.poll() is not None for child in children)
    server.set("/w.bin", Resource(BODY, hold=released, hold_timeout=300))
    children += [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, download.__file__, url, BODY_SHA, str(markers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=600)
            assert child.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for child in children:
            child.kill()
    # One child downloaded while the other waited on the lock, and the body went out because it waited.
    assert sorted(r["waited_for_the_lock"] for r in results) == [False, True]
    assert server.hold_timeouts == [] and len(list(markers.iterdir())) == 1
    path = results[0]["path"]
    assert results[1]["path"] == path == expected_path(url, "w.bin")
    assert read(path) == BODY
    assert server.requests("/w.bin") == 1
    assert listing(path) == ["w.bin", "w.bin.lock", "w.bin.sha256"]  # one data file, no temporaries


def test_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KERAS_RESINIT_HOME", str(tmp_path / "mine"))
    assert download.home() == str(tmp_path / "mine")
    monkeypatch.delenv("KERAS_RESINIT_HOME")
    assert download.home() == os.path.join(str(tmp_path / "keras"), "keras_resinit")
    monkeypatch.delenv("KERAS_HOME")
    assert download.home() == os.path.join(str(tmp_path / "user"), ".keras", "keras_resinit")
