"""``sciclip fetch pmc``: PMC Open Access articles, from the 2026 bucket layout or the legacy packages.

Current layout (``--layout current``, default source ``s3://pmc-oa-opendata/``, public: unsigned, free):
one folder per article version, ``PMCnnn.V/`` holding ``PMCnnn.V.xml`` (JATS), ``.txt``, ``.pdf``, the
media files and the version's metadata ``PMCnnn.V.json`` (also served as ``metadata/PMCnnn.V.json``):
``pmcid``, ``version``, ``license_code``, ``is_pmc_openaccess``, ``is_retracted``, ``is_manuscript``,
``citation``, ``pmid``, ``xml_url``/``pdf_url``/``text_url``/``media_urls`` (``s3://...?md5=<digest>``).
The highest version of each article is taken; retracted and non-OA versions are skipped; ``--license``
filters on ``license_code`` and ``--since`` on the version's upload date (S3 ``LastModified``: when PMC
(re)published that version, not the article's publication date). Only the XML, the metadata and
the images are downloaded (the PDF, text and supplements are not needed for figure extraction), each
verified against the md5 the metadata gives (else the S3 ETag).

Legacy layout (``--layout legacy``; removed from NCBI's FTP and the bucket in August 2026, so a mirror):
``oa_file_list.csv`` (File, Article Citation, Accession ID, Last Updated, PMID, License) beside
``oa_package/xx/yy/PMCnnn.tar.gz``; ``--license`` filters on the License column, ``--since`` on Last
Updated. The source is ``s3://bucket/prefix/`` or an ``http(s)://`` base URL.

Either way ``<dest>`` ends up holding ``PMCnnn.V/`` folders or ``PMCnnn.tar.gz`` packages plus an
``oa_file_list.csv`` with their licences: exactly what ``sciclip extract pmc <dest>`` reads.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import posixpath
import re
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciclip_utils.commonpool import atomic_write
from sciclip_utils.fetch.transfer import (
    DEFAULTS,
    Expected,
    S3Bucket,
    add_common_options,
    describe_plan,
    destination,
    etag_md5,
    http_download,
    run_reporting_errors,
    s3_client,
)
from sciclip_utils.pmc import FILE_LIST_NAME, IMAGE_EXTENSIONS, LICENSE_FILTERS, normalize_license

FOLDER_RE = re.compile(r"^(PMC\d+)\.(\d+)/$")
KEPT_EXTENSIONS = frozenset({".xml", ".nxml", ".json", *IMAGE_EXTENSIONS})
FILE_LIST_HEADER = ["File", "Article Citation", "Accession ID", "Last Updated (YYYY-MM-DD HH:MM:SS)", "PMID", "License"]  # fmt: skip
URL_FIELDS = ("xml_url", "pdf_url", "text_url")


@dataclass
class Article:
    """One selected article: where its files go and the row it gets in ``oa_file_list.csv``."""

    name: str  # PMCnnn.V (current) or the package file name (legacy)
    files: dict[str, tuple[str, Expected]]  # source key or URL -> (path under dest, expected)
    row: list[str]
    metadata: bytes | None = None  # current layout: the version's JSON, written beside the files

    @property
    def nbytes(self) -> int:
        return sum(expected.size or 0 for _, expected in self.files.values())


@dataclass
class PmcFetch:
    """What a run examined, selected and did."""

    selected: list[Article] = field(default_factory=list)
    examined: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    outcomes: dict[str, str] = field(default_factory=dict)  # file path under dest -> outcome

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True)
class Selection:
    """The filters: licence class, earliest update date, number of articles."""

    license: str = "any"
    since: dt.date | None = None
    max_articles: int | None = None

    def license_reason(self, code: str | None) -> str | None:
        allowed = LICENSE_FILTERS[self.license]
        return (
            None if allowed is None or code in allowed else f"licence {code or 'unknown'} not {self.license}"
        )

    def date_reason(self, updated: dt.date | None) -> str | None:
        if self.since is None or updated is None or updated >= self.since:
            return None
        return "older than --since"


# ------------------------------------------------------------------------------------ current layout
def latest_versions(bucket: S3Bucket, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(PMC id, highest version) of every ``PMCnnn.V/`` folder under ``prefix``, in listing order (an
    article's versions are listed next to each other)."""
    current: str | None = None
    best = 0
    for page in bucket.list(prefix, delimiter="/"):
        for entry in page.get("CommonPrefixes", []):
            match = FOLDER_RE.match(entry["Prefix"][len(prefix) :])
            if not match:
                continue
            pmcid, version = match.group(1), int(match.group(2))
            if pmcid != current:
                if current is not None:
                    yield current, best
                current, best = pmcid, version
            else:
                best = max(best, version)
    if current is not None:
        yield current, best


def describe_version(
    bucket: S3Bucket, prefix: str, pmcid: str, version: int, selection: Selection
) -> Article | str:
    """The article to fetch for one version folder, or why it is skipped."""
    name = f"{pmcid}.{version}"
    objects = [obj for page in bucket.list(f"{prefix}{name}/") for obj in page.get("Contents", [])]
    metadata_key = f"{prefix}{name}/{name}.json"
    if not any(obj["Key"] == metadata_key for obj in objects):
        metadata_key = f"{prefix}metadata/{name}.json"
    try:
        raw = bucket.get_bytes(metadata_key)
    except bucket.client.exceptions.NoSuchKey:
        raw = None
    metadata = json.loads(raw) if raw else {}
    if metadata.get("is_pmc_openaccess") is False:
        return "not in the OA subset"
    if metadata.get("is_retracted") is True:
        return "retracted"
    code = normalize_license(metadata.get("license_code"))
    updated = max((obj["LastModified"] for obj in objects), default=None)
    reason = selection.license_reason(code) or selection.date_reason(updated.date() if updated else None)
    if reason:
        return reason
    digests = _metadata_md5s(metadata)
    files = {}
    for obj in objects:
        base = posixpath.basename(obj["Key"])
        stem, extension = posixpath.splitext(base)
        if extension.lower() in KEPT_EXTENSIONS and not (stem == name and extension.lower() == ".pdf"):
            md5 = digests.get(base) or etag_md5(obj.get("ETag"))
            files[obj["Key"]] = (f"{name}/{base}", Expected(obj["Size"], "md5" if md5 else None, md5))
    if not any(key.endswith((".xml", ".nxml")) for key in files):
        return "no XML"
    stamp = updated.strftime("%Y-%m-%d %H:%M:%S") if updated else ""
    row = [
        f"{name}/",
        metadata.get("citation") or "",
        pmcid,
        stamp,
        str(metadata.get("pmid") or ""),
        code or "",
    ]
    written_by_listing = metadata_key.startswith(f"{prefix}{name}/")
    return Article(name, files, row, metadata=None if written_by_listing or raw is None else raw)


def _metadata_md5s(metadata: dict[str, Any]) -> dict[str, str]:
    """File name -> md5 from the metadata's ``s3://...?md5=`` URLs."""
    urls = [metadata.get(name) for name in URL_FIELDS] + list(metadata.get("media_urls") or [])
    digests = {}
    for url in urls:
        if not isinstance(url, str):
            continue
        parts = urllib.parse.urlsplit(url)
        md5 = urllib.parse.parse_qs(parts.query).get("md5", [""])[0].lower()
        if re.fullmatch(r"[0-9a-f]{32}", md5):
            digests[posixpath.basename(parts.path)] = md5
    return digests


# ------------------------------------------------------------------------------------- legacy layout
def legacy_articles(file_list: bytes, selection: Selection, result: PmcFetch) -> list[Article]:
    """The packages of ``oa_file_list.csv`` that pass the filters, in file order (up to max_articles)."""
    reader = csv.reader(io.StringIO(file_list.decode("utf-8-sig")))
    header = next(reader, [])
    columns = {name.strip().lower().split(" (")[0]: index for index, name in enumerate(header)}
    if not {"file", "license"} <= set(columns):
        raise ValueError(f"not an {FILE_LIST_NAME}: header {header}")
    articles = []
    for row in reader:
        if len(row) < len(header):
            continue  # blank or truncated line
        if selection.max_articles is not None and len(articles) >= selection.max_articles:
            break
        result.examined += 1
        path = row[columns["file"]].strip()
        updated = _date(row[columns["last updated"]]) if "last updated" in columns else None
        reason = None if path.endswith((".tar.gz", ".tgz")) else "not a package"
        reason = reason or selection.license_reason(normalize_license(row[columns["license"]]))
        reason = reason or selection.date_reason(updated)
        if reason:
            result.skip(reason)
            continue
        name = posixpath.basename(path)
        articles.append(Article(name, {path: (name, Expected())}, row))
    return articles


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- running
@dataclass
class Source:
    """Where articles come from: an S3 bucket and prefix, or an HTTP(S) base URL (legacy only)."""

    url: str
    endpoint_url: str | None = None
    bucket: S3Bucket | None = None

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "s3":
            if self.bucket is None:
                self.bucket = S3Bucket(s3_client(self.endpoint_url, unsigned=True), parts.netloc)
            self.prefix = parts.path.lstrip("/")
        elif parts.scheme in {"http", "https"}:
            self.prefix = ""
        else:
            raise ValueError(f"source must be s3://bucket/prefix or an http(s):// URL, not {self.url!r}")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"

    def get_bytes(self, key: str) -> bytes:
        if self.bucket is not None:
            return self.bucket.get_bytes(self.prefix + key)
        import requests

        response = requests.get(self._http_url(key), timeout=60)
        response.raise_for_status()
        return response.content

    def download(self, key: str, dest: Path, expected: Expected, *, prefixed: bool = False) -> str:
        if self.bucket is not None:
            full = key if prefixed else self.prefix + key
            if expected.size is None:  # legacy packages: size and md5 from the object itself
                head = self.bucket.client.head_object(Bucket=self.bucket.name, Key=full)
                md5 = etag_md5(head.get("ETag"))
                expected = Expected(head["ContentLength"], "md5" if md5 else None, md5)
            return self.bucket.download(full, dest, expected)
        return http_download(self._http_url(key), dest, expected)

    def _http_url(self, key: str) -> str:
        return self.url.rstrip("/") + "/" + key.lstrip("/")


def fetch_pmc(
    source: Source,
    dest: str | Path,
    *,
    layout: str = "current",
    selection: Selection = Selection(),
    threads: int = DEFAULTS["pmc_threads"],
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> PmcFetch:
    """Select and download PMC OA articles into ``dest`` (see the module docstring for both layouts)."""
    if layout not in {"current", "legacy"}:
        raise ValueError(f"layout must be current or legacy, not {layout!r}")
    if layout == "current" and source.bucket is None:
        raise ValueError("the current layout is listed through S3: give an s3:// source")
    dest = Path(dest)
    result = PmcFetch()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        if layout == "legacy":
            result.selected = legacy_articles(source.get_bytes(FILE_LIST_NAME), selection, result)
        else:
            _select_current(source, selection, result, pool, batch_size=4 * max(1, threads))
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(result.skipped.items()))
        nbytes = sum(article.nbytes for article in result.selected)
        log(describe_plan(f"PMC OA ({layout} layout)", len(result.selected), "articles", nbytes))
        log(f"  examined {result.examined}" + (f"; skipped: {skipped}" if skipped else ""))
        if dry_run:
            return result
        jobs = [
            (article, key, path, expected)
            for article in result.selected
            for key, (path, expected) in article.files.items()
        ]
        prefixed = layout == "current"
        outcomes = pool.map(
            lambda job: source.download(job[1], dest / job[2], job[3], prefixed=prefixed), jobs
        )
        for (_, _, path, _), outcome in zip(jobs, outcomes, strict=True):
            result.outcomes[path] = outcome
    for article in result.selected:
        if article.metadata is not None:
            atomic_write(dest / article.name / f"{article.name}.json", article.metadata)
    _update_file_list(dest / FILE_LIST_NAME, [article.row for article in result.selected])
    counts = {o: list(result.outcomes.values()).count(o) for o in sorted(set(result.outcomes.values()))}
    log(f"PMC OA: {len(result.selected)} articles in {dest} (files: {counts})")
    return result


def _select_current(
    source: Source, selection: Selection, result: PmcFetch, pool: ThreadPoolExecutor, batch_size: int
) -> None:
    """Describe candidate versions in parallel batches, keeping the first max_articles that pass."""
    assert source.bucket is not None
    candidates = latest_versions(source.bucket, source.prefix)
    while selection.max_articles is None or len(result.selected) < selection.max_articles:
        batch = [c for _, c in zip(range(batch_size), candidates, strict=False)]
        if not batch:
            return
        described = pool.map(lambda c: describe_version(source.bucket, source.prefix, *c, selection), batch)
        for outcome in described:
            if selection.max_articles is not None and len(result.selected) >= selection.max_articles:
                return
            result.examined += 1
            if isinstance(outcome, str):
                result.skip(outcome)
            else:
                result.selected.append(outcome)


def _update_file_list(path: Path, rows: list[list[str]]) -> None:
    """Merge ``rows`` into ``oa_file_list.csv`` by accession id (the extractor reads licences from it)."""
    existing: dict[str, list[str]] = {}
    if path.is_file():
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        next(reader, None)
        existing = {row[2]: row for row in reader if len(row) >= 6}
    existing.update({row[2]: row for row in rows if len(row) >= 6})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FILE_LIST_HEADER)
    writer.writerows(existing[key] for key in sorted(existing))
    atomic_write(path, buffer.getvalue().encode())


# ------------------------------------------------------------------------------------------------ CLI
def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip fetch pmc``."""
    add_common_options(parser)
    parser.add_argument(
        "--layout",
        choices=["current", "legacy"],
        default="current",
        help="current: PMCnnn.V/ folders (2026); legacy: oa_file_list.csv + oa_package/ (default: %(default)s)",
    )
    parser.add_argument(
        "--source",
        default=None,
        metavar="URL",
        help=f"s3://bucket/prefix/ or (legacy) http(s)://base/ (default: s3://{DEFAULTS['pmc_bucket']}/)",
    )
    parser.add_argument(
        "--license",
        choices=sorted(LICENSE_FILTERS),
        default="any",
        help="commercial: CC0, PD, CC BY(-SA/-ND); noncommercial: also the NC licences (default: any)",
    )
    parser.add_argument(
        "--since",
        type=dt.date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="only articles updated on or after this date",
    )
    parser.add_argument("--max-articles", type=int, default=None, metavar="N", help="stop after N articles")
    parser.add_argument(
        "--threads", type=int, default=DEFAULTS["pmc_threads"], metavar="N", help="parallel requests"
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip fetch pmc``."""
    if args.max_articles is not None and args.max_articles < 1:
        raise ValueError("--max-articles must be at least 1")
    if args.layout == "legacy" and not args.source:
        raise ValueError("--layout legacy needs --source (the legacy files left NCBI in August 2026)")
    source = Source(args.source or f"s3://{DEFAULTS['pmc_bucket']}/", args.endpoint_url)
    selection = Selection(args.license, args.since, args.max_articles)

    def run() -> int:
        fetch_pmc(
            source,
            destination(args, "pmc"),
            layout=args.layout,
            selection=selection,
            threads=args.threads,
            dry_run=args.dry_run,
        )
        return 0

    return run_reporting_errors(run)
