"""A minimal Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1.

No maintained server on PyPI both accepts uploads and serves downloads in the hub's
protocol (olah and hf-mirror are read-only proxies of huggingface.co), so this file
implements exactly the endpoints that ``huggingface_hub`` (2.x) calls for
``create_repo`` + ``upload_folder`` and for ``hf_hub_download`` (the path timm and
s3r_zoo use), with the same status codes and headers the hub sends:

=========================================================  ==========================================
``POST /api/repos/create``                                 create a model repo (409 if it exists)
``POST /api/validate-yaml``                                accept a model card's YAML header
``POST /api/models/{ns}/{name}/preupload/{rev}``           every file is uploaded "regular" (inline)
``POST /api/models/{ns}/{name}/commit/{rev}``              ndjson commit: header, file, deletedFile
``GET  /api/models/{ns}/{name}[/revision/{rev}]``          repo info (sha, siblings)
``HEAD|GET /{ns}/{name}/resolve/{rev}/{path}``             file download: X-Repo-Commit, ETag (git
                                                           blob sha1), Content-Length, byte ranges
=========================================================  ==========================================

Files are never "lfs"/"xet" here: the preupload answer says "regular", so uploads travel
base64-encoded inside the commit, which keeps the server small. Writes need
``Authorization: Bearer <token>`` when the server has a token; reads are public.
``requests`` records (method, path) of every request so tests can check cache reuse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import unquote, urlsplit

__all__ = ["HubServer", "git_blob_sha1"]


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the hub, as ETag of a regular file) gives a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, snapshot), oldest first

    def snapshot(self, revision: str) -> Optional[tuple[str, dict[str, bytes]]]:
        if not self.commits:
            return None
        if revision == "main":
            return self.commits[-1]
        for sha, files in self.commits:
            if sha == revision:
                return sha, files
        return None


class HubServer:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is the ``HF_ENDPOINT``."""

    def __init__(self, token: Optional[str] = None):
        self.token = token
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- test helpers ---------------------------------------------------------------------------------------
    def file(self, repo_id: str, path: str) -> bytes:
        return self.repos[repo_id].commits[-1][1][path]

    def replace_file(self, repo_id: str, path: str, data: bytes) -> str:
        """Commit new content for one file directly (e.g. a corrupt upload); returns the commit sha."""
        with self.lock:
            return self._commit(repo_id, {path: data}, set(), "test: replace " + path)

    def count(self, method: str, suffix: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and p.endswith(suffix))

    # -- internals (called with the lock held) --------------------------------------------------------------
    def _commit(self, repo_id: str, added: dict[str, bytes], deleted: set[str], summary: str) -> str:
        repo = self.repos[repo_id]
        files = dict(repo.commits[-1][1]) if repo.commits else {}
        files.update(added)
        for path in deleted:
            files.pop(path, None)
        parent = repo.commits[-1][0] if repo.commits else ""
        sha = hashlib.sha1(f"{parent}\n{summary}\n{len(repo.commits)}".encode()
                           + b"".join(git_blob_sha1(v).encode() + k.encode() for k, v in sorted(files.items())))
        repo.commits.append((sha.hexdigest(), files))
        return sha.hexdigest()


_REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class _Handler(BaseHTTPRequestHandler):
    server_hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    # -- plumbing -------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        hub = self.server_hub
        with hub.lock:
            hub.requests.append((method, path))
        for m, pattern, name in _ROUTES:
            match = pattern.match(path)
            if m == method and match:
                return getattr(self, "_" + name)(**match.groupdict())
        self._json(404, {"error": f"no route for {method} {path}"})

    do_GET = lambda self: self._dispatch("GET")  # noqa: E731
    do_HEAD = lambda self: self._dispatch("HEAD")  # noqa: E731
    do_POST = lambda self: self._dispatch("POST")  # noqa: E731

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, headers: Optional[dict] = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: Optional[dict] = None, head: bool = False) -> None:
        h = {"Content-Type": "application/json", **(headers or {})}
        self._send(status, json.dumps(obj).encode(), h, head=head)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _authorised(self) -> bool:
        token = self.server_hub.token
        if token is None or self.headers.get("Authorization") == f"Bearer {token}":
            return True
        self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        return False

    def _repo(self, repo: str, head: bool = False) -> Optional[_Repo]:
        found = self.server_hub.repos.get(repo)
        if found is None:
            self._error(404, "RepoNotFound", f"Repository not found: {repo}", head=head)
        return found

    # -- endpoints ------------------------------------------------------------------------------------------
    def _create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._authorised():
            return
        if payload.get("type", "model") != "model":
            return self._error(400, "BadRequest", "this test hub serves model repositories only")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        hub = self.server_hub
        url = f"{hub.url}/{repo_id}"
        with hub.lock:
            if repo_id in hub.repos:
                return self._json(409, {"error": "You already created this model repo", "url": url})
            hub.repos[repo_id] = _Repo()
            hub._commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, set(),
                        "initial commit")
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self) -> None:
        self._body()
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: str, rev: str) -> None:
        payload = json.loads(self._body() or b"{}")
        if not self._authorised():
            return
        hub = self.server_hub
        with hub.lock:
            r = self._repo(repo)
            if r is None:
                return
            snap = r.snapshot(rev)
            files = snap[1] if snap else {}
            answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                       "oid": git_blob_sha1(files[f["path"]]) if f["path"] in files else None}
                      for f in payload.get("files", [])]
        self._json(200, {"files": answer, "commitOid": snap[0] if snap else None})

    def _commit(self, repo: str, rev: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if not self._authorised():
            return
        if rev != "main":
            return self._error(400, "BadRequest", "this test hub commits to main only")
        added, deleted, summary = {}, set(), "commit"
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", summary)
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    return self._error(400, "BadRequest", f"unsupported encoding {value.get('encoding')}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deleted.add(value["path"])
            else:
                return self._error(400, "BadRequest", f"this test hub does not support '{key}' operations")
        hub = self.server_hub
        with hub.lock:
            if self._repo(repo) is None:
                return
            sha = hub._commit(repo, added, deleted, summary)
        self._json(200, {"commitUrl": f"{hub.url}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

    def _repo_info(self, repo: str, rev: Optional[str] = None) -> None:
        hub = self.server_hub
        with hub.lock:
            r = self._repo(repo)
            if r is None:
                return
            snap = r.snapshot(rev or "main")
            if snap is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            sha, files = snap
            info = {"id": repo, "modelId": repo, "sha": sha, "private": False, "disabled": False, "tags": [],
                    "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())]}
        self._json(200, info)

    def _resolve(self, repo: str, rev: str, path: str) -> None:
        head = self.command == "HEAD"
        hub = self.server_hub
        with hub.lock:
            r = self._repo(repo, head=head)
            if r is None:
                return
            snap = r.snapshot(rev)
            if snap is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
            sha, files = snap
            if path not in files:
                return self._error(404, "EntryNotFound", f"{path} does not exist at revision {sha}", head=head)
            data = files[path]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_sha1(data)}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng and not head:
            start = int(rng.group(1))
            end = int(rng.group(2)) if rng.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers)
        self._send(200, data, headers, head=head)
