"""``sciclip fetch arxiv``: bulk LaTeX source tars from arXiv's requester-pays bucket ``s3://arxiv/src/``.

The manifest ``src/arXiv_src_manifest.xml`` lists every ``arXiv_src_YYMM_NNN.tar`` with its month, size
(~0.5 GB each) and md5. Tars of months ``--from``..``--to`` are selected (up to ``--max-gb``), the count,
GB and estimated transfer cost printed, then each is downloaded (resuming a partial one), verified
against its md5 (a corrupted tar is fetched again) and, with ``--extract-to``, handed to
:func:`sciclip_utils.extract.extract_arxiv` and deleted, so the disk holds one tar at a time.
``<dest>/extracted.txt`` lists the tars already extracted; a rerun skips them.

The requester pays the transfer: about $0.09/GB out of AWS us-east-1 (``--price-per-gb``), nothing from
an EC2 instance in us-east-1. Credentials come from the standard AWS configuration.
"""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sciclip_utils.arxiv import MANIFEST_NAME, select_bulk_tars, yymm_key
from sciclip_utils.commonpool import atomic_write
from sciclip_utils.extract import extract_arxiv
from sciclip_utils.extract.cli import yymm_arg
from sciclip_utils.fetch.transfer import (
    DEFAULTS,
    GB,
    Expected,
    S3Bucket,
    add_common_options,
    describe_plan,
    destination,
    run_reporting_errors,
    s3_client,
)
from sciclip_utils.profiles import stage_params

DONE_LIST = "extracted.txt"


@dataclass(frozen=True)
class BulkTar:
    """One manifest entry."""

    key: str  # object key, e.g. src/arXiv_src_2301_001.tar
    yymm: str
    size: int
    md5: str | None

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)


@dataclass
class ArxivFetch:
    """What a run selected and did."""

    selected: list[BulkTar] = field(default_factory=list)
    over_budget: list[BulkTar] = field(default_factory=list)
    already_extracted: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # tar name -> present/downloaded/resumed
    extracted: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(tar.size for tar in self.selected)


def read_manifest(manifest_xml: bytes) -> dict[str, BulkTar]:
    """The manifest's entries by tar file name."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    entries = {}
    for entry in etree.fromstring(manifest_xml, parser).iter("file"):
        key = (entry.findtext("filename") or "").strip()
        if not key:
            continue
        size = (entry.findtext("size") or "").strip()
        if not size.isdigit():
            raise ValueError(f"arXiv manifest entry {key} has no valid <size>: {size!r}")
        md5 = (entry.findtext("md5sum") or "").strip().lower() or None
        tar = BulkTar(key=key, yymm=(entry.findtext("yymm") or "").strip(), size=int(size), md5=md5)
        entries[tar.name] = tar
    return entries


def plan_tars(
    manifest_xml: bytes, start: str | None, end: str | None, max_gb: float | None = None
) -> tuple[list[BulkTar], list[BulkTar]]:
    """(selected, over budget): the tars of months ``start..end`` in manifest order, cut where the running
    total would pass ``max_gb``."""
    entries = read_manifest(manifest_xml)
    selected: list[BulkTar] = []
    over: list[BulkTar] = []
    total = 0
    for name in select_bulk_tars(manifest_xml, start, end):
        tar = entries[name]
        if over or (max_gb is not None and total + tar.size > max_gb * GB):
            over.append(tar)
            continue
        selected.append(tar)
        total += tar.size
    return selected, over


def fetch_arxiv(
    bucket: S3Bucket,
    dest: str | Path,
    *,
    start: str | None = None,
    end: str | None = None,
    max_gb: float | None = None,
    price_per_gb: float = DEFAULTS["price_per_gb"],
    manifest_key: str = DEFAULTS["arxiv_manifest"],
    dry_run: bool = False,
    extract_to: str | Path | None = None,
    extract_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
) -> ArxivFetch:
    """Download (and optionally extract, one at a time) the bulk tars of months ``start..end``.

    ``extract_options`` go to :func:`~sciclip_utils.extract.extract_arxiv` (workers, samples_per_shard,
    progress...). ``progress`` is called with the byte count of every chunk written.
    """
    dest = Path(dest)
    manifest_xml = bucket.get_bytes(manifest_key)
    selected, over = plan_tars(manifest_xml, start, end, max_gb)
    if not selected and not over:
        raise ValueError(f"the manifest lists no bulk tars for months {start or 'start'}..{end or 'end'}")
    done = _read_done(dest) if extract_to else set()
    result = ArxivFetch(
        selected=[tar for tar in selected if tar.name not in done],
        over_budget=over,
        already_extracted=[tar.name for tar in selected if tar.name in done],
    )
    log(describe_plan("arXiv bulk sources", len(result.selected), "tars", result.nbytes, price_per_gb))
    if over:
        log(
            f"  {len(over)} more tars of these months ({sum(t.size for t in over) / GB:,.2f} GB) pass --max-gb"
        )
    if result.already_extracted:
        log(f"  {len(result.already_extracted)} tars already extracted (listed in {dest / DONE_LIST})")
    if dry_run:
        return result
    atomic_write(dest / MANIFEST_NAME, manifest_xml)
    for tar in result.selected:
        path = dest / tar.name
        outcome = bucket.download(tar.key, path, Expected(tar.size, "md5", tar.md5), progress)
        result.outcomes[tar.name] = outcome
        log(f"{tar.name}: {outcome} ({tar.size / GB:.2f} GB, md5 verified)")
        if extract_to:
            summary = extract_arxiv([path], extract_to, **(extract_options or {}))
            log(f"{tar.name}: {summary.pairs} pairs -> {summary.out_dir}")
            with open(dest / DONE_LIST, "a") as handle:
                handle.write(tar.name + "\n")
            path.unlink()
            result.extracted.append(tar.name)
    return result


def _read_done(dest: Path) -> set[str]:
    done = dest / DONE_LIST
    return set(done.read_text().split()) if done.is_file() else set()


# ------------------------------------------------------------------------------------------------ CLI
def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip fetch arxiv``."""
    parser.add_argument(
        "--from", dest="start", type=yymm_arg, required=True, metavar="YYMM", help="first month (e.g. 1901)"
    )
    parser.add_argument("--to", dest="end", type=yymm_arg, required=True, metavar="YYMM", help="last month")
    add_common_options(parser)
    parser.add_argument("--max-gb", type=float, default=None, metavar="N", help="download at most N GB")
    parser.add_argument(
        "--price-per-gb",
        type=float,
        default=DEFAULTS["price_per_gb"],
        metavar="USD",
        help="transfer price for the estimate (default: %(default)s, us-east-1 to the internet)",
    )
    parser.add_argument("--bucket", default=DEFAULTS["arxiv_bucket"], help="bucket (default: %(default)s)")
    parser.add_argument(
        "--manifest-key", default=DEFAULTS["arxiv_manifest"], help="manifest object (default: %(default)s)"
    )
    parser.add_argument(
        "--extract-to",
        default=None,
        metavar="DIR",
        help="extract each tar into this CommonPool folder (as `sciclip extract arxiv`), then delete it",
    )
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N", help="extraction workers (default: the profile's)"
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip fetch arxiv``."""
    if yymm_key(args.start) > yymm_key(args.end):
        raise ValueError(f"--from {args.start} is after --to {args.end}")
    if args.max_gb is not None and args.max_gb <= 0:
        raise ValueError("--max-gb must be positive")
    params = stage_params(args.profile, "extract", workers=args.workers)
    bucket = S3Bucket(s3_client(args.endpoint_url), args.bucket, requester_pays=True)
    fetch = partial(
        fetch_arxiv,
        bucket,
        destination(args, "arxiv"),
        start=args.start,
        end=args.end,
        max_gb=args.max_gb,
        price_per_gb=args.price_per_gb,
        manifest_key=args.manifest_key,
        dry_run=args.dry_run,
        extract_to=args.extract_to,
        extract_options={"workers": params["workers"], "samples_per_shard": params["samples_per_shard"]},
    )

    def run() -> int:
        fetch()
        return 0

    return run_reporting_errors(run)
