"""The extraction stage per source: ``extract_arxiv`` and ``extract_pmc`` bind the per-paper code
(:mod:`sciclip_utils.arxiv`, :mod:`sciclip_utils.pmc`) to the runner, and :func:`extraction_inputs` resolves
what a run reads and writes from a profile, for the notebooks and ``sciclip extract`` alike."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciclip_utils import arxiv, pmc
from sciclip_utils.extract.runner import ExtractionSummary, run_extraction
from sciclip_utils.extract.sandbox import ItemLimits
from sciclip_utils.files import atomic_write
from sciclip_utils.profiles import paths, stage_params

SOURCES = ("arxiv", "pmc")


@dataclass(frozen=True)
class ExtractionInputs:
    """What one extraction run reads and writes, and its ``extract`` stage parameters."""

    source: str
    inputs: list[Path]
    out_dir: Path
    params: dict[str, Any] = field(default_factory=dict)  # workers, samples_per_shard, max_papers


def extraction_inputs(
    profile: str,
    source: str,
    inputs: Sequence[str | Path] | str | Path | None = None,
    out_dir: str | Path | None = None,
    **params: Any,
) -> ExtractionInputs:
    """The inputs, output folder and parameters of extracting ``source`` under ``profile``.

    ``None`` takes the profile's: inputs ``paths(profile).<source>_inputs`` (the sample corpus), output
    ``paths(profile).<source>``, parameters ``stage_params(profile, "extract")`` with ``params`` applied.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    run = paths(profile)
    if inputs is None:
        default = getattr(run, f"{source}_inputs")
        if not default.exists():
            raise FileNotFoundError(
                f"{default} does not exist: generate the sample corpus first (01_sample_corpus, or "
                f"`sciclip sample-corpus {run.sample_corpus} --size {stage_params(profile, 'corpus')['size']}`)"
            )
        inputs = [default]
    elif isinstance(inputs, (str, Path)):
        inputs = [inputs]
    return ExtractionInputs(
        source=source,
        inputs=[Path(p) for p in inputs],
        out_dir=Path(out_dir) if out_dir is not None else getattr(run, source),
        params=stage_params(profile, "extract", **params),
    )


def extract_arxiv(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    max_papers: int | None = None,
    samples_per_shard: int = 10_000,
    progress: bool = True,
    start: str | None = None,
    end: str | None = None,
    limits: ItemLimits | None = None,
) -> ExtractionSummary:
    """Extract figure-caption pairs from arXiv sources into a CommonPool dataset at ``out_dir``
    (``shards/``, ``sizes.json``, ``manifest.parquet``); reruns skip papers already done.

    ``start``/``end`` (``YYMM``) keep bulk tars (and arXiv-id named papers) of those months. ``limits``:
    per-paper time and memory (default: :meth:`ItemLimits.from_env`).
    """
    items = arxiv.build_work_items(inputs, start=start, end=end)
    return run_extraction(
        items,
        arxiv.process_item,
        out_dir,
        source=arxiv.SOURCE,
        workers=workers,
        scheduler=scheduler,
        max_items=max_papers,
        samples_per_shard=samples_per_shard,
        progress=progress,
        limits=limits,
    )


def extract_pmc(
    inputs: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    *,
    file_list: str | Path | Sequence[str | Path] | None = None,
    license: str = "any",
    language: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    max_papers: int | None = None,
    samples_per_shard: int = 10_000,
    progress: bool = True,
    limits: ItemLimits | None = None,
) -> ExtractionSummary:
    """Extract figure-caption pairs from PMC OA inputs into CommonPool shards under ``out_dir``.

    ``file_list``: ``oa_file_list.csv`` path(s) giving each article's licence (default: any such file found
    in the input folders; else the licence in the XML). ``license``: ``any``, ``commercial`` (CC0, PD,
    CC BY, CC BY-SA, CC BY-ND) or ``noncommercial`` (also the NC variants). ``language``: keep only
    captions detected in this language (e.g. ``"en"``). ``workers=0`` runs in this process. ``limits``:
    per-article time and memory (default: :meth:`ItemLimits.from_env`).
    """
    if license not in pmc.LICENSE_FILTERS:
        raise ValueError(
            f"unknown license filter {license!r}; choose one of {', '.join(pmc.LICENSE_FILTERS)}"
        )
    wanted_language = pmc.normalize_language(language) if language else None
    if language and wanted_language is None:
        raise ValueError(f"language must be an ISO 639 code such as 'en', not {language!r}")
    if workers is not None and workers < 0:
        raise ValueError("workers must be >= 0")
    if max_papers is not None and max_papers < 0:
        raise ValueError("max_papers must be >= 0")
    plan = pmc.plan_inputs(inputs)
    if file_list is None:
        lists = plan.file_lists
    else:
        lists = [Path(p) for p in ([file_list] if isinstance(file_list, (str, Path)) else file_list)]
        for path in lists:
            if not path.is_file():
                raise FileNotFoundError(f"file list not found: {path}")
    paper_ids = {item.paper_id for item in plan.items}
    licenses: dict[str, str] = {}
    for path in lists:
        licenses.update(pmc.read_file_list(path, paper_ids))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan_file = out / pmc.PLAN_NAME
    atomic_write(plan_file, json.dumps({"licenses": licenses, "skips": plan.skips}, sort_keys=True).encode())
    options = pmc.Options(str(plan_file.resolve()), pmc.LICENSE_FILTERS[license], license, wanted_language)
    return run_extraction(
        plan.items,
        functools.partial(pmc.process_article, options=options),
        out,
        source=pmc.SOURCE,
        workers=workers,
        scheduler=scheduler,
        max_items=max_papers,
        samples_per_shard=samples_per_shard,
        progress=progress,
        limits=limits,
    )
