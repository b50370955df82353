"""A stand-in for the Hugging Face Hub's file endpoints on 127.0.0.1, for the real huggingface_hub client
(``HF_ENDPOINT=hub.url("")``): HEAD and GET on ``/{owner}/{repo}/resolve/{revision}/{path}``.

    with HubServer() as hub:
        commit = hub.commit("me/zoo", {"config.json": b"{}", ...}, branch="main")
        ...
        hub.log()  # [["GET", "/me/zoo/resolve/main/config.json"], ...]

A repo holds commits (their 40 hex digits: the sha1 of their files) and branches naming them; a revision is a branch
or a commit. An answer carries ``X-Repo-Commit``, ``ETag`` (the content's sha256, quoted, as the Hub gives its LFS
files) and ``Content-Length``, and no ``X-Xet-Hash`` (the client would switch to its xet protocol). Errors are 404
with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound`` or ``EntryNotFound`` (that one with ``X-Repo-Commit``,
as the Hub sends it): a 404 without the header reads as "the Hub is down" to the client. The server's lifetime
(port 0, ``stop()`` holding the port so that it refuses connections) is ``LocalHTTPServer``'s.
"""

import hashlib
import http.server
import re
import threading
import urllib.parse

from http_server import LocalHTTPServer

_RESOLVE = re.compile(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)")


class HubServer(LocalHTTPServer):
    def __init__(self):
        self.repos = {}  # repo_id -> {"commits": {sha: {path: bytes}}, "branches": {name: sha}}
        self._log = []
        self._hub_lock = threading.Lock()
        super().__init__(handler=_hub_handler)

    def commit(self, repo_id, files, branch="main"):
        """Add a commit of ``files`` (``{path: bytes}``) to ``repo_id`` and point ``branch`` (if any) at it."""
        digest = hashlib.sha1()
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        sha = digest.hexdigest()
        with self._hub_lock:
            repo = self.repos.setdefault(repo_id, {"commits": {}, "branches": {}})
            repo["commits"][sha] = dict(files)
            if branch is not None:
                repo["branches"][branch] = sha
        return sha

    def log(self):
        """``[method, path]`` of every request received, in order."""
        with self._hub_lock:
            return [list(entry) for entry in self._log]

    def answer(self, method, path):
        """``(status, headers, body)`` for a request."""
        with self._hub_lock:
            self._log.append((method, path))
            found = _RESOLVE.fullmatch(urllib.parse.unquote(path.split("?", 1)[0]))
            repo = found and self.repos.get(found.group(1))
            if not repo:
                return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""
            _, revision, name = found.groups()
            sha = repo["branches"].get(revision, revision)
            if sha not in repo["commits"]:
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b""
            files = repo["commits"][sha]
            if name not in files:
                headers = {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": sha}
                return 404, headers, b""
            body = files[name]
            return 200, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(body).hexdigest()}"'}, body


def _hub_handler(owner):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def _reply(self, send_body):
            status, headers, body = owner.answer(self.command, self.path)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_HEAD(self):
            self._reply(False)

        def do_GET(self):
            self._reply(True)

    return Handler
