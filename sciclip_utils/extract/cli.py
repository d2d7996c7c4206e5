"""``sciclip extract arxiv|pmc [INPUT...]``: the shared run options, profile defaults and exit codes.

With no INPUT the profile's sample corpus is extracted into the profile's folder, exactly what the
extraction notebooks do (both resolve through :func:`~sciclip_utils.extract.sources.extraction_inputs`).
Exit codes: 0 when the batch ran to the end (failed items are in the manifest), 2 for bad inputs or options
or an unusable output folder, 1 when the run itself could not go on (scheduler unreachable, disk full).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sciclip_utils.archives import ArchiveError
from sciclip_utils.extract.sandbox import (
    DEFAULT_ITEM_MEMORY_BYTES,
    DEFAULT_ITEM_TIMEOUT_S,
    ENV_ITEM_MEMORY,
    ENV_ITEM_TIMEOUT,
    ItemLimits,
)
from sciclip_utils.extract.sources import extract_arxiv, extract_pmc, extraction_inputs
from sciclip_utils.profiles import add_profile_option, apply_profile

UNITS = {"arxiv": "papers", "pmc": "articles"}
INPUT_HELP = {
    "arxiv": "bulk tars, arXiv_src_manifest.xml, per-paper .gz/.tar.gz/.tar, source dirs, or folders of these",
    "pmc": "PMCnnn.tar.gz, PMCnnn.V/ folder, .nxml/.xml",
}


def _at_least(minimum: int, kind: type = int) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = kind(value)
        if not minimum <= number < math.inf:
            raise argparse.ArgumentTypeError(f"must be a number >= {minimum}, got {value}")
        return number

    return parse


def yymm_arg(value: str) -> str:
    from sciclip_utils.arxiv import yymm_key

    try:
        yymm_key(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return value


def cli_configure(parser: argparse.ArgumentParser, source: str | None = None) -> None:
    """Arguments of ``sciclip extract SOURCE`` (default: the last word of the parser's ``prog``)."""
    source = source or parser.prog.split()[-1]
    if source not in UNITS:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(UNITS)}")
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help=f"{INPUT_HELP[source]} (default: the profile's sample corpus)",
    )
    if source == "arxiv":
        parser.add_argument("--from", dest="start", type=yymm_arg, default=None, metavar="YYMM",
                            help="first month of bulk tars to take")  # fmt: skip
        parser.add_argument("--to", dest="end", type=yymm_arg, default=None, metavar="YYMM",
                            help="last month of bulk tars to take")  # fmt: skip
    else:
        from sciclip_utils.pmc import FILE_LIST_NAME, LICENSE_FILTERS

        parser.add_argument(
            "--file-list", action="append", help=f"{FILE_LIST_NAME} with licences (repeatable)"
        )
        parser.add_argument(
            "--license", default="any", choices=sorted(LICENSE_FILTERS), help="licence filter"
        )
        parser.add_argument("--language", default=None, help="keep captions in this language only, e.g. en")
    parser.set_defaults(source=source)
    add_profile_option(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (shards/, sizes.json, manifest.parquet; default: the profile's)")  # fmt: skip
    parser.add_argument("--workers", type=_at_least(0), default=None, metavar="N",
                        help="Dask worker processes (0 = in this process; default: the profile's)")  # fmt: skip
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument("--max-papers", type=_at_least(1), default=None, metavar="N",
                        help="process at most N papers (default: the profile's)")  # fmt: skip
    parser.add_argument("--samples-per-shard", type=_at_least(1), default=None, metavar="N",
                        help="samples per shard (default: the profile's)")  # fmt: skip
    parser.add_argument(
        "--item-timeout-s",
        type=_at_least(0, float),
        default=None,
        metavar="S",
        help=f"seconds per item before it is killed and failed (0 = none; default: ${ENV_ITEM_TIMEOUT} or "
        f"{DEFAULT_ITEM_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--item-memory-mb",
        type=_at_least(0),
        default=None,
        metavar="MIB",
        help=f"address space per item beyond the worker's, MiB (0 = none; default: ${ENV_ITEM_MEMORY} or "
        f"{DEFAULT_ITEM_MEMORY_BYTES // 2**20})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _writable_problem(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot be created or written to, or None."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"output directory {out_dir} cannot be created: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"output directory {out_dir} is not writable"
    return None


def resolve(args: argparse.Namespace) -> Any:
    """The :class:`~sciclip_utils.extract.sources.ExtractionInputs` of parsed ``sciclip extract`` args."""
    params = apply_profile(args, "extract")
    return extraction_inputs(
        args.profile,
        args.source,
        args.inputs or None,
        args.out,
        **{key: getattr(args, key) for key in params},
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run ``sciclip extract SOURCE`` (exit codes: see the module doc)."""
    try:
        plan = resolve(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    problem = _writable_problem(plan.out_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        limits = ItemLimits.from_env()
        if args.item_timeout_s is not None:
            limits = replace(limits, timeout_s=args.item_timeout_s or None)
        if args.item_memory_mb is not None:
            limits = replace(limits, memory_bytes=args.item_memory_mb * 2**20 or None)
        if plan.source == "arxiv":
            extract, options = extract_arxiv, {"start": args.start, "end": args.end}
        else:
            extract = extract_pmc
            options = {"file_list": args.file_list, "license": args.license, "language": args.language}
        summary = extract(
            plan.inputs,
            plan.out_dir,
            **options,
            **plan.params,
            scheduler=args.scheduler,
            progress=not args.no_progress,
            limits=limits,
        )
    except (FileNotFoundError, PermissionError, ValueError, ArchiveError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: the extraction could not run: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    unit = UNITS[plan.source]
    print(
        f"{plan.source}: {len(summary.manifest)} {unit} ({counts}), {summary.pairs} pairs -> {summary.out_dir}"
    )
    return 0
