"""A stand-in for the Hugging Face Hub's file downloads, served over real HTTP on 127.0.0.1.

It answers the requests huggingface_hub makes to fetch one file (`HF_ENDPOINT` pointed at
`base_url`), as the Hub does for a file stored in LFS:

* ``HEAD|GET /{owner}/{repo}/resolve/{revision}/{filename}``: a 302 whose headers carry the
  metadata (``X-Repo-Commit``, ``X-Linked-Etag`` = the LFS object id, the file's sha256,
  ``X-Linked-Size``, a git ``ETag``) and a ``Location`` on the storage origin. A repository
  marked gated answers 401 with ``X-Error-Code: GatedRepo``; an unknown repository 404
  ``RepoNotFound``; an unknown file 404 ``EntryNotFound``.
* ``HEAD|GET /lfs/{sha256}`` on the storage origin (a second port, so the client treats it
  as the Hub's CDN and sends no token there): the bytes, with ``Range: bytes=N-`` answered
  206 and ``Content-Range``.

Scripted faults (``faults``, FIFO, one per storage GET): ``{"cut_after": N}`` sends N body
bytes then drops the connection; ``{"pause_after": N, "until": threading.Event}`` sends N
bytes, waits for the event, then sends the rest; ``{"status": S}`` answers that status. ``requests`` logs
every request with the body bytes actually sent, which is how a test measures what a
resumed download fetched. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

__all__ = ["HubServer"]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_LFS = re.compile(r"^/lfs/(?P<oid>[0-9a-f]{64})$")
_CHUNK = 1 << 16


@dataclass
class _File:
    path: Path
    sha256: str  # what the Hub advertises (a test may make it wrong)
    size: int


class HubServer:
    """Use as a context manager. `add_file` serves a local file under a repo and name."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], _File] = {}
        self.blobs: dict[str, Path] = {}
        self.gated: set[str] = set()
        self.faults: list[dict] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._servers: dict[str, ThreadingHTTPServer] = {}

    # -- set-up

    def add_file(self, repo: str, filename: str, path: Path, advertised_sha256: str | None = None) -> str:
        """Serve `path` as `repo`'s `filename`; returns its true sha256."""
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        oid = advertised_sha256 or digest
        self.files[(repo, filename)] = _File(Path(path), oid, Path(path).stat().st_size)
        self.blobs[oid] = Path(path)
        return digest

    def start(self) -> HubServer:
        for origin in ("hub", "storage"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.hub = self  # type: ignore[attr-defined]
            server.origin = origin  # type: ignore[attr-defined]
            self._servers[origin] = server
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             name=f"hf-hub-{origin}", daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _url(self, origin: str) -> str:
        return f"http://127.0.0.1:{self._servers[origin].server_address[1]}"

    @property
    def base_url(self) -> str:
        return self._url("hub")

    @property
    def storage_url(self) -> str:
        return self._url("storage")

    # -- inspection

    def body_bytes(self, method: str = "GET") -> int:
        """Body bytes the storage origin sent for `method` requests."""
        with self._lock:
            return sum(r["sent"] for r in self.requests if r["origin"] == "storage" and r["method"] == method)

    def storage_gets(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["origin"] == "storage" and r["method"] == "GET"]

    def _log(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    def _fault(self) -> dict | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args) -> None:  # quiet: the log is `requests`
        return None

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        origin = self.server.origin  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path)
        entry = {"origin": origin, "method": self.command, "path": path, "range": self.headers.get("Range"),
                 "authorization": self.headers.get("Authorization"), "status": 0, "sent": 0}
        try:
            if origin == "hub":
                self._resolve(path, entry)
            else:
                self._blob(path, entry, body)
        finally:
            self.hub._log(entry)

    def _reply(self, status: int, headers: dict[str, str], entry: dict) -> None:
        entry["status"] = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _error(self, status: int, code: str, message: str, entry: dict) -> None:
        data = f'{{"error": "{message}"}}'.encode()
        self._reply(status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
                             "Content-Length": str(len(data))}, entry)
        if self.command != "HEAD":
            self.wfile.write(data)

    def _resolve(self, path: str, entry: dict) -> None:
        match = _RESOLVE.match(path)
        if not match:
            return self._error(404, "RepoNotFound", "Repository not found", entry)
        repo, name = match["repo"], match["file"]
        if repo in self.hub.gated:
            return self._error(401, "GatedRepo", f"Access to model {repo} is restricted. You must have access "
                               "to it and be authenticated to access it. Please log in.", entry)
        if not any(r == repo for r, _ in self.hub.files):
            return self._error(404, "RepoNotFound", "Repository not found", entry)
        found = self.hub.files.get((repo, name))
        if found is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist on main", entry)
        git_oid = hashlib.sha1(found.sha256.encode()).hexdigest()
        location = f"{self.hub.storage_url}/lfs/{found.sha256}?filename={quote(Path(name).name)}"
        self._reply(302, {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{found.sha256}"',
                          "X-Linked-Size": str(found.size), "ETag": f'"{git_oid}"', "Location": location,
                          "Accept-Ranges": "bytes", "Content-Length": "0"}, entry)

    def _blob(self, path: str, entry: dict, body: bool) -> None:
        match = _LFS.match(path)
        blob = self.hub.blobs.get(match["oid"]) if match else None
        if blob is None:
            return self._error(404, "EntryNotFound", "no such object", entry)
        fault = self.hub._fault() if body else None
        if fault and "status" in fault:
            return self._error(fault["status"], "Unavailable", "the storage is unavailable", entry)
        size = blob.stat().st_size
        start = 0
        wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if wanted and int(wanted[1]) < size:
            start = int(wanted[1])
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        headers["Content-Length"] = str(size - start)
        self._reply(206 if start else 200, headers, entry)
        if not body:
            return
        limit = fault.get("cut_after") if fault else None
        pause = fault.get("pause_after") if fault else None
        with blob.open("rb") as fh:
            fh.seek(start)
            while chunk := fh.read(_CHUNK):
                if pause is not None and entry["sent"] >= pause:
                    self.wfile.flush()
                    fault["until"].wait(60)
                    pause = None
                if limit is not None and entry["sent"] + len(chunk) > limit:
                    chunk = chunk[: limit - entry["sent"]]
                    self.wfile.write(chunk)
                    entry["sent"] += len(chunk)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                entry["sent"] += len(chunk)
