"""Helpers for the fetch tests (all on 127.0.0.1): request recording for S3 clients and a file server that
speaks HTTP ranges and the Hugging Face Hub's tree API (``/api/datasets/<repo>/tree/<rev>``, ``/datasets/<repo>/
resolve/<rev>/<path>``)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def record_requests(client: Any) -> list[tuple[str, str, dict[str, str]]]:
    """(method, url, headers) of every request ``client`` sends from now on."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    def before_send(request: Any, **_: Any) -> None:
        headers = {
            k.lower(): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()
        }
        seen.append((request.method, request.url, headers))

    client.meta.events.register("before-send.s3", before_send)
    return seen


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    log: list[tuple[str, dict[str, str]]]
    delay_s: float  # pause after each 64 KiB of a .tar body (a slow link, to kill a download midway)

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.log.append((path, {k.lower(): v for k, v in self.headers.items()}))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "datasets"] and "tree" in parts:
            at = parts.index("tree")
            self._tree("/".join(parts[2:at]), "/".join(parts[at + 2 :]))
        elif parts[:1] == ["datasets"] and "resolve" in parts:
            at = parts.index("resolve")
            self._file(self.root / "/".join(parts[1:at]) / "/".join(parts[at + 2 :]))
        else:
            self._file(self.root / path.lstrip("/"))

    def _tree(self, repo: str, sub: str) -> None:
        base = self.root / repo
        if not base.is_dir():
            self.send_error(404)
            return
        entries = []
        for file in sorted((base / sub).rglob("*")):
            if not file.is_file():
                continue
            data = file.read_bytes()
            entry: dict[str, Any] = {
                "type": "file",
                "path": file.relative_to(base).as_posix(),
                "size": len(data),
            }
            if file.suffix in {".tar", ".parquet"}:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}
            else:
                entry["oid"] = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
            entries.append(entry)
        self._send(200, json.dumps(entries).encode(), "application/json")

    def _file(self, file: Path) -> None:
        if not file.is_file():
            self.send_error(404)
            return
        data = file.read_bytes()
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start = int(ranged[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self._write(data[start:], slow=file.suffix == ".tar")
            return
        self._send(200, data, "application/octet-stream", slow=file.suffix == ".tar")

    def _send(self, status: int, data: bytes, content_type: str, slow: bool = False) -> None:
        self.send_response(status)
        if self.path.rsplit("/", 1)[-1].startswith("noai"):  # a site that opts out of AI training
            self.send_header("X-Robots-Tag", "noai, noimageai")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self._write(data, slow)

    def _write(self, data: bytes, slow: bool) -> None:
        if not (slow and self.delay_s):
            self.wfile.write(data)
            return
        try:
            for start in range(0, len(data), 65536):
                self.wfile.write(data[start : start + 65536])
                self.wfile.flush()
                time.sleep(self.delay_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was killed


@contextmanager
def file_server(root: Path, delay_s: float = 0.0) -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """Serve ``root`` on 127.0.0.1 (ranges, the Hub's tree API); yields (base URL, request log)."""
    log: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Handler,), {"root": root, "log": log, "delay_s": delay_s})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
