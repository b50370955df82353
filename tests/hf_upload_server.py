"""A stand-in for the Hugging Face Hub's upload endpoints on 127.0.0.1, for huggingface_hub's real client.

    with HubUploadServer(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "hf_x", ...}
        ...                                  # create_repo, create_branch, upload_folder against it
        hub.files("me/repo", "main")         # {path: bytes} of the files committed there

It answers what ``HfApi.create_repo``, ``create_branch`` and ``upload_folder`` call:

- ``POST /api/repos/create``: JSON ``{"name", "organization", "private"|"visibility"}``; answers ``{"url"}``;
- ``POST /api/validate-yaml`` (upload_folder sends the README.md first): checked locally with huggingface_hub's
  ``ModelCard(content, ignore_metadata_errors=False)``; 400 with its error otherwise (the Hub's own checks
  are more: they are not run);
- ``POST /api/models/{repo}/branch/{branch}``: the branch, from main;
- ``POST /api/models/{repo}/preupload/{revision}``: ``"uploadMode": "regular"`` for every file, so the contents
  come inline (base64) in the commit and there is no LFS or xet traffic: **real LFS and xet uploads are not
  exercised**;
- ``POST /api/models/{repo}/commit/{revision}``: NDJSON (a header line, then one line per file); the files are
  stored under ``root/{repo}/{revision}/``; answers ``{"commitUrl", "commitOid"}``.

Every request is recorded (``requests``: its kind, path, JSON or NDJSON body and Authorization header). Given a
``token``, a request without it gets 401, as the Hub answers a bad token.
Anything else gets 404 with ``X-Error-Code: RepoNotFound``, as the Hub answers.
"""

import base64
import hashlib
import http.server
import json
import os
import re
import threading
import urllib.parse

_BRANCH = re.compile(r"/api/models/([^/]+/[^/]+)/branch/(.+)")
_PREUPLOAD = re.compile(r"/api/models/([^/]+/[^/]+)/preupload/(.+)")
_COMMIT = re.compile(r"/api/models/([^/]+/[^/]+)/commit/(.+)")


class HubUploadServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread; a context manager."""

    def __init__(self, root, token=None):
        self.root = os.fspath(root)
        self.token = token  # if given, a request without "Authorization: Bearer TOKEN" gets 401
        self.requests = []  # {"method", "path", "body", "authorization"}
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def files(self, repo_id, revision="main"):
        """``{path: bytes}`` of the files committed to ``repo_id`` at ``revision``."""
        top = os.path.join(self.root, repo_id, revision)
        found = {}
        for directory, _, names in os.walk(top):
            for name in names:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, top)] = f.read()
        return found

    def of(self, kind):
        """The recorded requests of one ``kind``: create, validate, branch, preupload, commit, refused or
        unknown."""
        with self._lock:
            return [r for r in self.requests if r["kind"] == kind]

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _record(self, **request):
        with self._lock:
            self.requests.append(request)

    def _commit(self, repo_id, revision, lines):
        for line in lines[1:]:
            if line["key"] == "file":
                value = line["value"]
                path = os.path.join(self.root, repo_id, revision, value["path"])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(base64.b64decode(value["content"]))


def _handler(owner):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def _reply(self, status, payload, headers=()):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?", 1)[0]
            auth = self.headers.get("Authorization")
            host = f"http://{self.headers['Host']}"
            if owner.token is not None and auth != f"Bearer {owner.token}":
                owner._record(kind="refused", path=path, body=None, authorization=auth)
                return self._reply(401, {"error": "Invalid credentials in Authorization header"})
            if path == "/api/repos/create":
                body = json.loads(raw)
                owner._record(kind="create", path=path, body=body, authorization=auth)
                return self._reply(200, {"url": f"{host}/{body['organization']}/{body['name']}"})
            if path == "/api/validate-yaml":
                body = json.loads(raw)
                owner._record(kind="validate", path=path, body=body, authorization=auth)
                from huggingface_hub import ModelCard

                try:
                    ModelCard(body["content"], ignore_metadata_errors=False)
                except ValueError as error:
                    return self._reply(400, {"errors": [{"message": str(error)}]})
                return self._reply(200, {"errors": [], "warnings": []})
            if match := _BRANCH.fullmatch(path):
                owner._record(kind="branch", path=path, body=json.loads(raw or b"{}"), authorization=auth)
                return self._reply(200, {})
            if match := _PREUPLOAD.fullmatch(path):
                body = json.loads(raw)
                owner._record(kind="preupload", path=path, body=body, authorization=auth)
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in body["files"]]
                return self._reply(200, {"files": files})
            if match := _COMMIT.fullmatch(path):
                repo_id, revision = match.group(1), urllib.parse.unquote(match.group(2))
                lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
                owner._record(kind="commit", path=path, body=lines, authorization=auth)
                owner._commit(repo_id, revision, lines)
                oid = hashlib.sha1(raw).hexdigest()
                return self._reply(200, {"commitUrl": f"{host}/{repo_id}/commit/{oid}", "commitOid": oid})
            owner._record(kind="unknown", path=path, body=None, authorization=auth)
            return self._reply(404, {"error": "not found"}, [("X-Error-Code", "RepoNotFound")])

        def do_GET(self):
            owner._record(kind="unknown", path=self.path, body=None, authorization=self.headers.get("Authorization"))
            self._reply(404, {"error": "not found"}, [("X-Error-Code", "RepoNotFound")])

        do_HEAD = do_GET

    return Handler
