"""Hugging Face Hub dataset repos over plain HTTP: list a repo's files, download them verified and resumable.

The file list comes from the Hub's tree API (``GET {endpoint}/api/datasets/{repo}/tree/{revision}?recursive=
true``, paged through ``Link: rel="next"``): each file's size and, for LFS files, its sha256 (else its git
blob id), against which every download is checked. Files come from ``{endpoint}/datasets/{repo}/resolve/
{revision}/{path}``. ``HF_TOKEN`` (if set) is sent for gated repos; ``HF_ENDPOINT`` sets the default
endpoint, as for ``huggingface_hub``.
"""

from __future__ import annotations

import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciclip_utils.fetch.transfer import DEFAULTS, Expected, http_download


@dataclass(frozen=True)
class RepoFile:
    """One file of a repo and what it must be once downloaded."""

    path: str
    expected: Expected

    @property
    def size(self) -> int:
        return self.expected.size or 0


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULTS["hf_endpoint"]


def auth_headers() -> dict[str, str]:
    token = os.environ.get("HF_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def list_repo_files(endpoint: str, repo: str, revision: str = "main", session: Any = None) -> list[RepoFile]:
    """Every file of dataset ``repo`` at ``revision``, sorted by path."""
    import requests

    http = session or requests.Session()
    url: str | None = f"{endpoint.rstrip('/')}/api/datasets/{repo}/tree/{revision}?recursive=true"
    files = []
    while url:
        response = http.get(url, headers=auth_headers(), timeout=60)
        if response.status_code == 404:
            raise FileNotFoundError(f"no dataset repo {repo!r} (revision {revision}) at {endpoint}")
        response.raise_for_status()
        for entry in response.json():
            if entry.get("type") != "file":
                continue
            lfs = entry.get("lfs")
            if lfs:
                expected = Expected(int(lfs.get("size", entry["size"])), "sha256", lfs["oid"])
            else:
                expected = Expected(
                    int(entry["size"]), "git-sha1" if entry.get("oid") else None, entry.get("oid")
                )
            files.append(RepoFile(entry["path"], expected))
        url = response.links.get("next", {}).get("url")
    return sorted(files, key=lambda f: f.path)


def resolve_url(endpoint: str, repo: str, path: str, revision: str = "main") -> str:
    return f"{endpoint.rstrip('/')}/datasets/{repo}/resolve/{revision}/{urllib.parse.quote(path)}"


def download_repo_files(
    endpoint: str,
    repo: str,
    files: list[RepoFile],
    dest: Path,
    *,
    revision: str = "main",
    threads: int = DEFAULTS["hf_threads"],
) -> dict[str, str]:
    """Download ``files`` under ``dest``, verified; path -> present/downloaded/resumed."""
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(1, threads))
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def one(file: RepoFile) -> str:
        url = resolve_url(endpoint, repo, file.path, revision)
        return http_download(url, dest / file.path, file.expected, headers=auth_headers(), session=session)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return dict(zip((f.path for f in files), pool.map(one, files), strict=True))
