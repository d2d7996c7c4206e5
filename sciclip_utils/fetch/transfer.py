"""Resumable, verified downloads from S3 (any S3-compatible store) and HTTP, and what they cost.

A file is written as ``<name>.part`` and renamed when complete and verified; a rerun continues a
``.part`` with a ranged request, and a final file that fails its checksum is fetched again. S3
credentials, region and retries come from the standard AWS configuration (environment, ``~/.aws``);
``endpoint_url`` points the same code at any S3-compatible store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciclip_utils.profiles import add_profile_option, paths

# Every fetch default in one place (CLI flags default to these).
DEFAULTS: dict[str, Any] = {
    "region": "us-east-1",  # where the arxiv and pmc-oa-opendata buckets live
    "price_per_gb": 0.09,  # USD per GB out of us-east-1 to the internet (first 10 TB/month tier)
    "arxiv_bucket": "arxiv",
    "arxiv_manifest": "src/arXiv_src_manifest.xml",
    "pmc_bucket": "pmc-oa-opendata",
    "hf_endpoint": "https://huggingface.co",
    "commonpool_repo": "mlfoundations/datacomp_{scale}",
    "samples_per_shard": 10_000,
    "threads": 128,  # image downloads per img2dataset process (DataComp's)
    "pmc_threads": 16,  # parallel requests of fetch pmc
    "hf_threads": 8,  # parallel file downloads from the Hub
    "processes": 16,  # img2dataset processes (DataComp's)
    "timeout_s": 10.0,  # per image request (img2dataset's default)
    "retries": 2,  # per failed image request (DataComp's)
    "chunk_bytes": 8 * 2**20,  # S3 reads
    "http_chunk_bytes": 256 * 2**10,  # HTTP reads (each blocks until full: small keeps .part files current)
}
GB = 2**30  # AWS bills data transfer per GB of 2^30 bytes


class ChecksumError(RuntimeError):
    """A download that does not match its expected size or digest, twice."""


@dataclass(frozen=True)
class Expected:
    """What a complete file must be: its size and/or a digest (``md5``, ``sha256`` or ``git-sha1``,
    the blob id git and the Hugging Face Hub give small files)."""

    size: int | None = None
    algorithm: str | None = None
    digest: str | None = None

    def matches(self, path: Path) -> bool:
        if self.size is not None and path.stat().st_size != self.size:
            return False
        return self.digest is None or file_digest(path, self.algorithm or "md5") == self.digest.lower()


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file; ``git-sha1`` is git's blob id (sha1 of ``blob <size>\\0`` + content)."""
    if algorithm == "git-sha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(4 * 2**20):
            digest.update(block)
    return digest.hexdigest()


# (chunks, from_start): from_start says the server ignored the range and sends the whole file
Opener = Callable[[int], tuple[Iterable[bytes], bool]]


def fetch_file(
    dest: Path, open_from: Opener, expected: Expected, progress: Callable[[int], None] | None = None
) -> str:
    """Bring ``dest`` to ``expected``: ``present`` (already complete and verified), ``downloaded`` or
    ``resumed`` (a ``.part`` left by an interrupted run was continued). ``open_from(offset)`` streams the
    file from byte ``offset``. A file or part that fails verification is fetched again from the start
    once; a second failure raises :class:`ChecksumError`."""
    if dest.is_file():
        if expected.matches(dest):
            return "present"
        dest.unlink()  # corrupted or changed upstream: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for _attempt in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        if expected.size is not None and offset > expected.size:
            offset = 0
        resumed = offset > 0
        if expected.size is None or offset < expected.size:
            chunks, from_start = open_from(offset)
            with open(part, "wb" if from_start or offset == 0 else "ab") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
        if expected.matches(part):
            os.replace(part, dest)
            return "resumed" if resumed else "downloaded"
        part.unlink()
    raise ChecksumError(f"{dest.name}: does not match {expected} after downloading it twice")


# ------------------------------------------------------------------------------------------------- S3
def s3_client(endpoint_url: str | None = None, *, unsigned: bool = False) -> Any:
    """An S3 client from the standard AWS configuration (region defaults to us-east-1); ``unsigned``
    for public buckets (no credentials needed)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    config = Config(
        retries={"max_attempts": 10, "mode": "standard"},
        max_pool_connections=64,
        signature_version=UNSIGNED if unsigned else None,
    )
    return session.client(
        "s3", endpoint_url=endpoint_url, region_name=session.region_name or DEFAULTS["region"], config=config
    )


@dataclass
class S3Bucket:
    """One bucket; every request carries ``RequestPayer=requester`` when ``requester_pays``."""

    client: Any
    name: str
    requester_pays: bool = False
    chunk_bytes: int = DEFAULTS["chunk_bytes"]

    @property
    def _extra(self) -> dict[str, str]:
        return {"RequestPayer": "requester"} if self.requester_pays else {}

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key, **self._extra)["Body"].read()

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        """Listing pages (``Contents``, ``CommonPrefixes``) under ``prefix``."""
        paginator = self.client.get_paginator("list_objects_v2")
        options: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, **self._extra}
        if delimiter:
            options["Delimiter"] = delimiter
        yield from paginator.paginate(**options)

    def download(
        self,
        key: str,
        dest: Path,
        expected: Expected,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """:func:`fetch_file` for one object (ranged GETs continue a partial download)."""

        def open_from(offset: int) -> tuple[Iterable[bytes], bool]:
            options: dict[str, Any] = {"Bucket": self.name, "Key": key, **self._extra}
            if offset:
                options["Range"] = f"bytes={offset}-"
            try:
                response = self.client.get_object(**options)
            except self.client.exceptions.ClientError as error:
                if offset and error.response.get("Error", {}).get("Code") == "InvalidRange":
                    return [], False  # the part is already whole
                raise
            return response["Body"].iter_chunks(self.chunk_bytes), False

        return fetch_file(dest, open_from, expected, progress)


def etag_md5(etag: str | None) -> str | None:
    """The md5 an S3 ETag is, for objects uploaded in one part (multipart ETags carry a ``-N``)."""
    value = (etag or "").strip('"')
    return value if len(value) == 32 and "-" not in value else None


# ----------------------------------------------------------------------------------------------- HTTP
def http_download(
    url: str,
    dest: Path,
    expected: Expected,
    *,
    headers: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    session: Any = None,
) -> str:
    """:func:`fetch_file` over HTTP(S); a server that ignores ``Range`` restarts the file."""
    import requests

    http = session or requests.Session()

    def open_from(offset: int) -> tuple[Iterable[bytes], bool]:
        request_headers = dict(headers or {})
        if offset:
            request_headers["Range"] = f"bytes={offset}-"
        response = http.get(url, headers=request_headers, stream=True, timeout=timeout_s)
        if response.status_code == 416 and offset:
            return [], False
        response.raise_for_status()
        return response.iter_content(DEFAULTS["http_chunk_bytes"]), response.status_code != 206

    return fetch_file(dest, open_from, expected)


# ------------------------------------------------------------------------------------------ planning
def transfer_cost(nbytes: int, price_per_gb: float) -> float:
    """Data transfer cost in USD of ``nbytes`` at ``price_per_gb``."""
    return nbytes / GB * price_per_gb


def describe_plan(what: str, count: int, unit: str, nbytes: int, price_per_gb: float | None = None) -> str:
    """One line: how many files, how many GB, and (requester pays) the estimated transfer cost."""
    line = f"{what}: {count:,} {unit}, {nbytes / GB:,.2f} GB"
    if price_per_gb is not None:
        cost = transfer_cost(nbytes, price_per_gb)
        line += (
            f", estimated transfer cost ${cost:,.2f} at ${price_per_gb:.3f}/GB "
            "(requester pays; none within us-east-1)"
        )
    return line


# ------------------------------------------------------------------------------------------------ CLI
def add_common_options(
    parser: argparse.ArgumentParser,
    *,
    s3: bool = True,
    hub: bool = False,
    dest_default: str = "<profile run>/downloads/<source>",
) -> None:
    """``--dest``, ``--profile``, ``--dry-run``, ``--endpoint-url`` (S3 sources) and ``--hf-endpoint`` (Hub
    sources)."""
    parser.add_argument(
        "--dest", default=None, metavar="DIR", help=f"download folder (default: {dest_default})"
    )
    add_profile_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="print what would be fetched, fetch nothing")
    if s3:
        parser.add_argument(
            "--endpoint-url",
            default=None,
            metavar="URL",
            help="S3-compatible endpoint (default: AWS, from the standard configuration)",
        )
    if hub:
        parser.add_argument(
            "--hf-endpoint",
            default=None,
            metavar="URL",
            help="Hub endpoint (default: $HF_ENDPOINT or huggingface.co)",
        )


def destination(args: argparse.Namespace, source: str) -> Path:
    """``--dest``, else ``paths(profile).root / "downloads" / source``."""
    return Path(args.dest) if args.dest else paths(args.profile).root / "downloads" / source


def run_reporting_errors(run: Callable[[], int]) -> int:
    """Run a fetch; network, credential and checksum failures become one line on stderr and exit 1."""
    import botocore.exceptions
    import requests

    try:
        return run()
    except botocore.exceptions.NoCredentialsError:
        print(
            "error: no AWS credentials found (environment, ~/.aws/credentials or an instance role); "
            "the arxiv bucket is requester-pays and needs them",
            file=sys.stderr,
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(f"error: S3: {error}", file=sys.stderr)
    except (requests.RequestException, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
    return 1
