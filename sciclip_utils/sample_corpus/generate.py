"""The generated sample corpus: the whole study on a CPU in minutes, on data in the real formats.

``generate_sample_corpus(out_dir, seed=0, size="tiny")`` writes, deterministically for a seed (same seed,
byte-identical files):

- ``arxiv/``: arXiv bulk tars ``arXiv_src_YYMM_NNN.tar`` of ``YYMM/<id>.gz`` LaTeX projects (plus PDF-only
  and single-file submissions) and ``arXiv_src_manifest.xml``;
- ``pmc/``: PMC OA articles as legacy ``PMCnnn.tar.gz`` packages and 2026 ``PMCnnn.V/`` folders, with
  ``oa_file_list.csv``;
- ``commonpool/``: a web-style pool in CommonPool format (short, partly noisy alt texts);
- ``evalsets/<task>/``: clip_benchmark webdataset eval sets (natural: shapes, colors, digits; scientific:
  plot_types, tissue_textures; retrieval: figure_retrieval);
- ``corpus_summary.json``: what was planted (papers, figures, expected pairs, planted skips, near-duplicates,
  formats), so extraction and decontamination can be checked against it.

The modules ``sample_corpus.{figures,natural,text,arxiv,pmc,eval,io}`` hold the generators.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sciclip_utils.files import atomic_write
from sciclip_utils.files import progress as show_progress
from sciclip_utils.profiles import add_profile_option, apply_profile, paths

SIZES: dict[str, dict[str, Any]] = {
    # the smallest corpus with every near-duplicate and most constructs: for tests of determinism and layout
    "micro": {
        "arxiv_papers": 8, "arxiv_per_month": 4, "arxiv_per_tar": 3, "pmc_articles": 8,
        "web_images": 210, "web_samples_per_shard": 100,
        "eval": {"shapes": 12, "colors": 8, "digits": 10, "plot_types": 12, "tissue_textures": 8,
                 "figure_retrieval": 12},
    },
    "tiny": {
        "arxiv_papers": 84, "arxiv_per_month": 42, "arxiv_per_tar": 21, "pmc_articles": 80,
        "web_images": 2400, "web_samples_per_shard": 1000,
        "eval": {"shapes": 150, "colors": 160, "digits": 200, "plot_types": 150, "tissue_textures": 150,
                 "figure_retrieval": 100},
    },
    "small": {
        "arxiv_papers": 900, "arxiv_per_month": 150, "arxiv_per_tar": 100, "pmc_articles": 800,
        "web_images": 24000, "web_samples_per_shard": 10000,
        "eval": {"shapes": 1500, "colors": 1600, "digits": 1797, "plot_types": 1800, "tissue_textures": 1500,
                 "figure_retrieval": 1200},
    },
}  # fmt: skip
# (eval task, eval index, target source, item index in that source, transform): the planted near-duplicates.
# The summary names each copy as the extractors will (paper_id, figure_id); web-pool copies also by uid
# (arXiv/PMC uids exist only after extraction, as they hash the extracted image).
PLANTS: tuple[tuple[str, int, str, int, str], ...] = (
    ("plot_types", 7, "arxiv", 1, "resize125+png"),
    ("tissue_textures", 3, "arxiv", 5, "resize80+jpeg85"),  # a crop of a stationary texture is a new texture
    ("figure_retrieval", 5, "pmc", 2, "resize90+jpeg80"),
    ("shapes", 11, "commonpool", 100, "crop12+flip+jpeg75"),
    ("colors", 4, "commonpool", 200, "colour+jpeg80"),
)
PARTS = ("arxiv", "pmc", "commonpool", "evalsets", "corpus_summary.json")
GENERATOR_VERSION = 4  # bump when the generator's output changes, so stale corpora are not reused


@dataclass
class CorpusSummary:
    """What the generator planted; also written as ``corpus_summary.json``."""

    seed: int
    size: str
    version: int = 0  # GENERATOR_VERSION of the code that wrote it
    arxiv: dict[str, Any] = field(default_factory=dict)
    pmc: dict[str, Any] = field(default_factory=dict)
    commonpool: dict[str, Any] = field(default_factory=dict)
    evalsets: dict[str, Any] = field(default_factory=dict)
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    formats: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> CorpusSummary:
        """Read a ``corpus_summary.json`` (a file, or the corpus folder holding it)."""
        path = Path(path)
        return cls(**json.loads((path / "corpus_summary.json" if path.is_dir() else path).read_text()))

    def overview(self) -> Any:
        """One row per source: items, expected ok items, planted skips, figures, figures without a pair and
        expected pairs (a pandas DataFrame)."""
        import pandas as pd

        def row(part: dict[str, Any], items: str) -> dict[str, int]:
            return {"items": part[items], "expected ok": part["expected_ok"], "planted skips": len(part["skipped"]),
                    "figures": part["figures"], "figures without a pair": len(part["figure_skips"]),
                    "expected pairs": part["expected_pairs"]}  # fmt: skip

        pool = self.commonpool
        web = {"items": pool["images"], "expected ok": pool["written"], "planted skips": 0,
               "figures": pool["images"], "figures without a pair": 0, "expected pairs": pool["written"]}  # fmt: skip
        rows = {"arXiv": row(self.arxiv, "papers"), "PMC": row(self.pmc, "inputs"), "web pool": web}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def generate_sample_corpus(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: str = "tiny",
    workers: int | None = None,
    progress: bool = False,
    reuse: bool = False,
) -> CorpusSummary:
    """Generate the sample corpus under ``out_dir`` (its corpus parts are replaced) and return the summary.

    ``workers`` processes draw the figures (default: up to 2); the output does not depend on it. With
    ``reuse``, a complete corpus already there from the same seed, size and generator version is kept.
    """
    from sciclip_utils.sample_corpus.eval import EVAL_TASKS, eval_key

    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r}; known sizes: {', '.join(SIZES)}")
    existing = Path(out_dir) / "corpus_summary.json"  # written last: its presence means complete
    if reuse and existing.is_file():
        summary = CorpusSummary.load(existing)
        if (summary.seed, summary.size, summary.version) == (seed, size, GENERATOR_VERSION):
            return summary
    preset = SIZES[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        target = out / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    summary = CorpusSummary(seed=seed, size=size, version=GENERATOR_VERSION)
    plants = [
        {"eval_task": task, "eval_index": index, "eval_key": eval_key(index), "target": target, "item": item,
         "transform": transform, "uid": None}
        for task, index, target, item, transform in PLANTS
    ]  # fmt: skip
    with _Pool(workers, progress) as pool:
        summary.evalsets = _write_evalsets(pool, out / "evalsets", seed, preset["eval"])
        summary.arxiv = _write_arxiv(pool, out / "arxiv", seed, preset, plants)
        summary.pmc = _write_pmc(pool, out / "pmc", seed, preset, plants)
        summary.commonpool = _write_commonpool(pool, out / "commonpool", seed, preset, plants)
    summary.near_duplicates = [
        {key: value for key, value in plant.items() if key != "item"} for plant in plants
    ]
    summary.formats = {
        "arxiv": summary.arxiv.pop("formats"),
        "pmc": summary.pmc.pop("formats"),
        "commonpool": {"jpg": summary.commonpool["images"]},
        "evalsets": dict(sum((Counter({EVAL_TASKS[t].ext: i["samples"]}) for t, i in summary.evalsets.items()), Counter())),
    }  # fmt: skip
    text = json.dumps(asdict(summary), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write(out / "corpus_summary.json", text.encode("utf-8"))
    return summary


class _Pool:
    """``map`` over worker processes (fork) or in-process, in input order, with an optional progress bar."""

    def __init__(self, workers: int | None, progress: bool) -> None:

        self.workers = max(1, min(2, os.cpu_count() or 1) if workers is None else workers)
        self.progress = progress
        self.executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Pool:
        if self.workers > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self.executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self

    def __exit__(self, *_: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)

    def map(self, function: Callable[..., Any], jobs: list[tuple], label: str) -> Iterator[Any]:
        if self.executor is None:
            results: Iterable[Any] = (function(*job) for job in jobs)
        else:
            results = self.executor.map(
                _star, [function] * len(jobs), jobs, chunksize=max(1, len(jobs) // 64)
            )
        return iter(show_progress(results, self.progress, label, total=len(jobs)))


def _star(function: Callable[..., Any], job: tuple) -> Any:
    return function(*job)


def _write_evalsets(pool: _Pool, out: Path, seed: int, sizes: dict[str, int]) -> dict[str, Any]:
    from sciclip_utils.sample_corpus.eval import eval_sample_bytes, write_eval_task

    infos = {}
    for task, count in sizes.items():
        samples = list(
            pool.map(eval_sample_bytes, [(seed, task, index) for index in range(count)], f"eval {task}")
        )
        infos[task] = write_eval_task(out, task, samples)
    return infos


def _write_arxiv(pool: _Pool, out: Path, seed: int, preset: dict, plants: list[dict]) -> dict[str, Any]:
    from sciclip_utils.sample_corpus.arxiv import arxiv_ids, build_paper, write_bulk

    ids = arxiv_ids(seed, preset["arxiv_papers"], preset["arxiv_per_month"])
    planted = {plant["item"]: plant for plant in plants if plant["target"] == "arxiv"}
    jobs = [(seed, index, paper_id, planted.get(index)) for index, paper_id in enumerate(ids)]
    members, papers = [], []
    for name, data, info in pool.map(build_paper, jobs, "arXiv papers"):
        members.append((name, data))
        info["member"] = name
        papers.append(info)
    tars = write_bulk(out, members, preset["arxiv_per_tar"])
    for index, plant in planted.items():
        plant.update(paper_id=ids[index], figure_id="fig1")
    constructs: Counter[str] = Counter()
    for info in papers:
        constructs.update(info.pop("constructs"))
    return {
        "papers": len(papers),
        "tars": [entry["filename"].removeprefix("src/") for entry in tars],
        "figures": sum(info["figures"] for info in papers),
        "expected_pairs": sum(info["pairs"] for info in papers),
        "expected_ok": sum(1 for info in papers if info["skip"] is None),
        "pairs_by_paper": {info["id"]: info["pairs"] for info in papers if info["skip"] is None},
        "skipped": [
            {"id": info["id"], "member": info["member"], "kind": info["kind"], "reason": info["skip"]}
            for info in papers
            if info["skip"]
        ],  # fmt: skip
        "figure_skips": [
            {"id": info["id"], "figure": f"fig{number}", "reason": reason}
            for info in papers
            for number, reason in info["figure_skips"]
            if info["skip"] is None
        ],  # fmt: skip
        "constructs": dict(sorted(constructs.items())),
        "layouts": dict(Counter(info.get("layout", info["kind"]) for info in papers)),
        "formats": dict(sum((Counter(info["formats"]) for info in papers), Counter())),
        "papers_detail": papers,
    }


def _write_pmc(pool: _Pool, out: Path, seed: int, preset: dict, plants: list[dict]) -> dict[str, Any]:
    from sciclip_utils.sample_corpus.pmc import build_article, file_list_rows, pmc_ids, write_file_list

    out.mkdir(parents=True, exist_ok=True)
    ids = pmc_ids(seed, preset["pmc_articles"])
    planted = {plant["item"]: plant for plant in plants if plant["target"] == "pmc"}
    jobs = [(seed, index, pmcid, planted.get(index)) for index, pmcid in enumerate(ids)]
    items: dict[str, dict] = {}
    for outputs in pool.map(build_article, jobs, "PMC articles"):
        for name, data, info in outputs:
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            items.setdefault(info["input"], info)
    for index, plant in planted.items():
        first = next(info for info in items.values() if info["id"] == ids[index])
        plant.update(paper_id=ids[index], figure_id=next(iter(first["pairs_by_figure"])))
    write_file_list(out / "oa_file_list.csv", file_list_rows(list(items.values())))
    inputs = list(items.values())
    places: Counter[str] = Counter()
    for info in inputs:
        if info["skip"] is None:
            places.update(info["places"])
    return {
        "articles": len(ids),
        "inputs": len(inputs),
        "layouts": dict(Counter(info["layout"] for info in inputs)),
        "figures": sum(info["figures"] for info in inputs),
        "expected_pairs": sum(info["pairs"] for info in inputs),
        "expected_ok": sum(1 for info in inputs if info["skip"] is None),
        "pairs_by_article": {info["id"]: info["pairs"] for info in inputs if info["skip"] is None},
        "kinds_by_figure": {info["id"]: info["kinds_by_figure"] for info in inputs if info["skip"] is None},
        "skipped": [
            {"id": info["id"], "input": info["input"], "reason": info["skip"]}
            for info in inputs
            if info["skip"]
        ],
        "figure_skips": [
            {"id": info["id"], "figure": fig, "reason": reason}
            for info in inputs
            if info["skip"] is None
            for fig, reason in info["figure_skips"]
        ],  # fmt: skip
        "licenses": dict(Counter(info["license"] for info in inputs)),
        "places": dict(sorted(places.items())),
        "math_styles": dict(Counter(info["math"] for info in inputs)),
        "extras": dict(Counter(extra for info in inputs for extra in info["extras"])),
        "formats": dict(sorted(sum((Counter(info["formats"]) for info in inputs), Counter()).items())),
    }


def _write_commonpool(pool: _Pool, out: Path, seed: int, preset: dict, plants: list[dict]) -> dict[str, Any]:
    from sciclip_utils.commonpool import Record, read_metadata, write_dataset
    from sciclip_utils.sample_corpus.eval import web_sample

    planted = {plant["item"]: plant for plant in plants if plant["target"] == "commonpool"}
    for index, plant in planted.items():
        plant.update(paper_id="web", figure_id=str(index))
    jobs = [(seed, index, planted.get(index)) for index in range(preset["web_images"])]
    kinds: Counter[str] = Counter()
    kind_by_index: list[str] = []
    noisy = 0

    def records() -> Iterator[Record]:
        nonlocal noisy
        for index, (data, text, kind, is_noisy) in enumerate(pool.map(web_sample, jobs, "web pool")):
            kinds[kind] += 1
            kind_by_index.append(kind)
            noisy += is_noisy
            yield Record(image=data, text=text, source="commonpool", paper_id="web", figure_id=str(index),
                         url=f"http://example.com/img/{index}.jpg")  # fmt: skip

    stats = write_dataset(records(), out, samples_per_shard=preset["web_samples_per_shard"])
    uids = read_metadata(out).set_index("figure_id")["uid"]
    for plant in planted.values():
        plant["uid"] = str(uids[plant["figure_id"]])
    return {"images": preset["web_images"], "written": stats.written, "duplicates": stats.duplicates,
            "shards": stats.shards, "kinds": dict(sorted(kinds.items())), "kind_by_index": kind_by_index,
            "noisy_captions": noisy}  # fmt: skip


# ---- CLI --------------------------------------------------------------------------------------------


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip sample-corpus [OUT] [--profile P] [--seed N] [--size SIZE] [--workers N]``."""
    parser.add_argument("out", nargs="?", default=None,
                        help="output folder (its arxiv/, pmc/, commonpool/, evalsets/ are replaced; default: "
                             "the profile's sample_corpus/)")  # fmt: skip
    add_profile_option(parser)
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (same seed, identical files; default: the profile's)")  # fmt: skip
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="size preset (micro: for tests; default: the profile's)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the profile's)")


def cli_run(args: argparse.Namespace) -> int:
    """Generate the corpus and print what was planted."""
    apply_profile(args, "corpus")
    args.out = args.out or paths(args.profile).sample_corpus
    summary = generate_sample_corpus(
        args.out, seed=args.seed, size=args.size, workers=args.workers, progress=True
    )
    print(f"arXiv: {summary.arxiv['papers']} papers in {len(summary.arxiv['tars'])} bulk tars, "
          f"{summary.arxiv['expected_pairs']} expected pairs, {len(summary.arxiv['skipped'])} planted skips")  # fmt: skip
    print(f"PMC: {summary.pmc['articles']} articles ({summary.pmc['layouts']}), "
          f"{summary.pmc['expected_pairs']} expected pairs, {len(summary.pmc['skipped'])} superseded versions")  # fmt: skip
    print(f"web pool: {summary.commonpool['written']} images in {summary.commonpool['shards']} shards")
    print("eval sets: " + ", ".join(f"{task} ({info['samples']})" for task, info in summary.evalsets.items()))
    print(
        f"near-duplicates planted: {len(summary.near_duplicates)}; summary in {Path(args.out) / 'corpus_summary.json'}"
    )
    return 0
