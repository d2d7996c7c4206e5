"""One article's figure-caption pairs: :func:`process_article` (per-article work only, against the item
contract of :mod:`sciclip_utils.extract.items`; distribution, manifest and resume are
:func:`sciclip_utils.extract.runner.run_extraction`'s)."""

from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sciclip_utils.archives import ArchiveError
from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem

from .jats import parse_article
from .language import detect_language
from .package import find_image, index_media, open_article

SOURCE = "pmc"
PLAN_NAME = "pmc_plan.json"


# ------------------------------------------------------------------------------------------------ per item
@dataclass(frozen=True)
class Options:
    """What a worker needs besides the item: filters and where the run's plan file is."""

    plan_file: str | None = None
    allowed_licenses: frozenset[str] | None = None
    license_filter: str = "any"
    language: str | None = None


@functools.lru_cache(maxsize=4)
def _load_plan(path: str, mtime_ns: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _plan(options: Options) -> dict[str, Any]:
    if options.plan_file is None:
        return {"licenses": {}, "skips": {}}
    return _load_plan(options.plan_file, os.stat(options.plan_file).st_mtime_ns)


def process_article(item: WorkItem, options: Options) -> ItemResult:
    """Extract one article's pairs (images prepared here, on the worker)."""
    from sciclip_utils.commonpool import Record
    from sciclip_utils.images import MAX_SIDE, ImageError, composite, load_image, prepare_image

    plan = _plan(options)
    listed = plan["licenses"].get(item.paper_id)
    if item.key in plan["skips"]:
        extra = {"license": listed, "license_source": "file_list" if listed else None}
        return ItemResult([], status="skipped", stage="input", reason=plan["skips"][item.key], extra=extra)
    files, xml_name = open_article(item)
    try:
        xml = files.read(xml_name)
    except ArchiveError as exc:
        raise ExtractionError("package", str(exc)) from exc
    article = parse_article(xml)
    license_code = listed or article.license
    extra = {
        "license": license_code,
        "license_source": "file_list" if listed else ("xml" if article.license else None),
        "language": article.language,
        "figures_filtered": 0,
    }
    result = ItemResult([], main_file=xml_name, figures_found=len(article.figures), extra=extra)
    result.problems.extend(files.problems)
    if not article.figures:
        return _finish(result, "skipped", "figures", "no <fig> elements in the article")
    if options.allowed_licenses is not None and license_code not in options.allowed_licenses:
        extra["figures_filtered"] = len(article.figures)
        reason = f"license {license_code or 'unknown'} not allowed by license={options.license_filter!r}"
        return _finish(result, "skipped", "filter", reason)
    index = index_media((n for n in files.names if n != xml_name), str(PurePosixPath(xml_name).parent))
    kinds: Counter[str] = Counter()
    for figure in article.figures:
        if figure.problem:
            kinds[figure.problem] += 1
            result.problems.append(f"{figure.figure_id}: {figure.problem}")
            continue
        language = detect_language(figure.caption, article.language)
        if options.language is not None and language != options.language:
            extra["figures_filtered"] += 1
            continue
        paths, missing = [], []
        for href in figure.hrefs:
            name = find_image(href, index)
            (paths if name else missing).append(name or href)
        if missing:
            absolute = all(re.match(r"^[a-z][a-z0-9+.-]*://", h, re.IGNORECASE) for h in missing)
            kind = "absolute URL href with no local file" if absolute else "image not found"
            kinds[kind] += 1
            result.problems.append(f"{figure.figure_id}: {kind}: {', '.join(missing)}")
            continue
        try:
            if len(paths) == 1:
                prepared = prepare_image(files.read(paths[0]), paths[0])
            else:
                panels = [load_image(files.read(p), p, max_side=MAX_SIDE) for p in paths]
                prepared = prepare_image(composite(panels))
        except (ImageError, ArchiveError) as exc:
            kinds["unreadable image"] += 1
            result.problems.append(f"{figure.figure_id}: unreadable image {', '.join(paths)}: {exc}")
            continue
        result.records.append(
            Record(
                image=prepared,
                text=figure.caption,
                source=SOURCE,
                paper_id=item.paper_id,
                figure_id=figure.figure_id,
                license=license_code,
                extra={"language": language},
            )
        )
    if result.records:
        return result
    if extra["figures_filtered"] and not kinds:
        reason = (
            f"no captions in language {options.language!r} ({extra['figures_filtered']} figures filtered)"
        )
        return _finish(result, "skipped", "filter", reason)
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    stage = "caption" if set(kinds) <= {"no caption text"} else "images"
    return _finish(result, "failed", stage, f"no pairs from {len(article.figures)} figures: {summary}")


def _finish(result: ItemResult, status: str, stage: str, reason: str) -> ItemResult:
    result.status, result.stage, result.reason = status, stage, reason
    return result
