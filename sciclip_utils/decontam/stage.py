"""The decontamination stage: score every training sample by its closest evaluation image, drop those
above the threshold, write the kept samples in CommonPool format with their scores and a report.

DataComp's recipe (used by the paper): embed every image with the ISC21 copy-detection descriptor, score
each training sample by the maximum cosine similarity against all evaluation images, and drop samples
scoring above 0.604169. :func:`decontamination_plan` resolves a profile's sources, eval sets, output folders
and parameters for the notebook and ``sciclip decontaminate`` alike.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sciclip_utils import commonpool
from sciclip_utils.cluster import dask_client
from sciclip_utils.decontam.descriptors import Descriptor, decode_image, get_descriptor
from sciclip_utils.decontam.search import build_search
from sciclip_utils.evalsets import EvalSet, find_eval_sets
from sciclip_utils.files import atomic_write
from sciclip_utils.files import progress as show_progress
from sciclip_utils.profiles import paths, stage_params

SCORE_COLUMNS = (
    "uid",
    "key",
    "shard",
    "source",
    "dedup_score",
    "dedup_eval_set",
    "dedup_eval_image",
    "removed",
)


@dataclass(frozen=True)
class DecontaminationPlan:
    """What a decontamination run reads and writes, and its ``decontaminate`` stage parameters."""

    sources: dict[str, Path]  # source name -> CommonPool folder
    against: list[Path]  # eval set folders
    out_dirs: dict[str, Path]  # source name -> output folder
    params: dict[str, Any] = field(default_factory=dict)  # descriptor, threshold, batch_size, workers...
    eval_cache: Path | None = None  # the eval sets' embeddings, shared by the sources


def decontamination_plan(
    profile: str,
    data_dirs: str | Path | dict[str, str | Path] | None = None,
    eval_dirs: str | Path | Sequence[str | Path] | None = None,
    out_dir: str | Path | None = None,
    **params: Any,
) -> DecontaminationPlan:
    """The sources, eval sets, output folders and parameters of decontaminating under ``profile``.

    ``data_dirs``: ``None`` (every source of ``paths(profile).sources()``), ``{source: folder}``, or one
    folder (named after itself). Each source goes to ``<out_dir>/<source>``, where ``out_dir`` defaults to
    ``paths(profile).decontaminated``; one folder given with ``out_dir`` goes to ``out_dir`` itself.
    ``eval_dirs`` defaults to the folder of the profile's evaluation suite (the sample corpus's eval sets,
    or DataComp's fetched ones), what the trained models are scored on; ``params`` override
    ``stage_params(profile, "decontaminate")``. The sources share one cache of the eval sets' embeddings,
    ``<out_dir>/.eval-cache`` (pass it to :func:`decontaminate` as ``eval_cache``), so that the eval sets
    are embedded once for all of them. Missing inputs are an error here, before anything runs.
    """
    run = paths(profile)
    root = Path(out_dir) if out_dir is not None else run.decontaminated
    if isinstance(data_dirs, (str, Path)):
        folder = Path(data_dirs)
        sources = {folder.name: folder}
        out_dirs = {folder.name: root if out_dir is not None else root / folder.name}
    else:
        sources = {name: Path(p) for name, p in (run.sources() if data_dirs is None else data_dirs).items()}
        out_dirs = {name: root / name for name in sources}
    if eval_dirs is None:
        eval_dirs = [run.suite_evalsets(stage_params(profile, "evaluate")["suite"])]
    against = [Path(eval_dirs)] if isinstance(eval_dirs, (str, Path)) else [Path(p) for p in eval_dirs]
    missing = [str(p) for p in [*sources.values(), *against] if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"missing inputs: {', '.join(missing)} (generate the sample corpus and extract it first: notebooks "
            "01-03, or `sciclip sample-corpus`, `sciclip extract arxiv`, `sciclip extract pmc`)"
        )
    params = stage_params(profile, "decontaminate", **params)
    return DecontaminationPlan(sources, against, out_dirs, params, root / ".eval-cache")


@dataclass
class DecontaminationReport:
    """What :func:`decontaminate` did; ``scores`` has one row per input sample."""

    out_dir: Path
    descriptor: str
    threshold: float
    samples: int
    removed: int
    removed_per_source: dict[str, dict[str, int]]
    removed_per_eval_set: dict[str, int]
    eval_images: dict[str, int]
    search: str
    seconds: float
    search_index: str = "exact (matrix products)"
    search_recall: float = 1.0  # share of sampled samples whose exact best score the search found
    search_agreement: float = 1.0  # share of sampled samples whose removed/kept verdict it got right
    search_recall_sample: int = 0  # samples checked against exact search (0: the search is exact)
    device: str = "cpu"
    workers: int | str = 0  # Dask workers (0: this process) or the scheduler address
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    scores: Any = field(repr=False, default=None)

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` content."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "scores"}


def decontaminate(
    data_dir: str | Path,
    against: Sequence[str | Path],
    out_dir: str | Path,
    *,
    descriptor: str = "dct",
    threshold: float | None = None,
    weights: str | Path | None = None,
    batch_size: int = 256,
    faiss_min_rows: int = 200_000,
    samples_per_shard: int | None = None,
    closest_pairs: int = 8,
    workers: int | None = 0,
    scheduler: str | None = None,
    device: str | None = None,
    eval_cache: str | Path | None = None,
    progress: bool = True,
) -> DecontaminationReport:
    """Score every sample of the CommonPool dataset ``data_dir`` against the eval sets ``against`` and write
    the kept samples to ``out_dir``.

    Writes ``shards/`` and ``sizes.json`` (kept samples, CommonPool format), ``scores.parquet`` (every
    sample: ``dedup_score``, ``dedup_eval_set``, ``dedup_eval_image``, ``removed``), ``kept_uids.npy``
    (DataComp subset), ``report.json`` and ``closest_pairs.png``. A sample is removed when its score
    exceeds ``threshold`` (default: the descriptor's). Embeddings are cached per eval set and per shard under
    ``out_dir/.cache`` so an interrupted run resumes (with any worker count); the eval sets' go to
    ``eval_cache`` instead when given, which runs against the same eval sets may share. The search is exact
    below ``faiss_min_rows`` eval rows, FAISS above (:func:`~sciclip_utils.decontam.search.build_search`;
    its recall is measured and reported).

    The eval sets are embedded once, here; the training shards without a cache file are embedded here
    (``workers=0``) or spread over Dask workers: an embedded ``LocalCluster`` of ``workers`` processes
    (``None``: CPU count) or the cluster at ``scheduler``, whose workers must see ``data_dir`` and
    ``out_dir``. Each shard is embedded the same way wherever it runs, so the outputs are identical.
    ``device`` (``isc`` only): ``cpu``, ``cuda`` or ``None`` (cuda when available).
    """
    import pandas as pd

    started = time.time()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not commonpool.shard_paths(data_dir):
        raise FileNotFoundError(f"no CommonPool shards (*.tar) in {data_dir}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    eval_sets = find_eval_sets(against)
    spec = _DescriptorSpec(descriptor, None if weights is None else str(Path(weights).absolute()), device)
    model = spec.build()
    threshold = model.default_threshold if threshold is None else float(threshold)
    cache = out_dir.absolute() / ".cache" / model.cache_id
    timings: dict[str, float] = {}
    clock = time.time()
    eval_root = cache if eval_cache is None else Path(eval_cache).absolute() / model.cache_id
    reference, ref_set, ref_image, eval_counts = _embed_eval_sets(
        model, eval_sets, eval_root, batch_size, progress
    )
    timings["embed_eval"], clock = round(time.time() - clock, 2), time.time()
    metadata = commonpool.read_metadata(data_dir)
    shards = _embed_shards(spec, model, data_dir, metadata, cache, batch_size, workers, scheduler, progress)
    timings["embed_train"], clock = round(time.time() - clock, 2), time.time()
    searcher = build_search(reference, faiss_min_rows)
    stride = max(1, len(metadata) // 2000)  # the recall sample: about 2000 samples spread over all shards
    frames, sampled = [], []
    for shard, uids, keys, vectors in shards:
        scores, rows = searcher.search(vectors)
        sampled.append(vectors[::stride])
        matched = rows >= 0
        frames.append(pd.DataFrame({
            "uid": uids, "key": keys, "shard": shard,
            "dedup_score": scores.astype(np.float32),
            "dedup_eval_set": np.where(matched, ref_set[np.maximum(rows, 0)], None),
            "dedup_eval_image": np.where(matched, ref_image[np.maximum(rows, 0)], None),
        }))  # fmt: skip
    table = pd.concat(frames, ignore_index=True)
    recall, agreement, recall_sample = searcher.recall(np.concatenate(sampled), threshold)
    timings["search"], clock = round(time.time() - clock, 2), time.time()
    sources = dict(zip(metadata["uid"], metadata["source"], strict=True)) if "source" in metadata else {}
    table.insert(3, "source", [sources.get(uid) or "unknown" for uid in table["uid"]])
    table["removed"] = table["dedup_score"] > threshold
    table = table[list(SCORE_COLUMNS)]

    out_dir.mkdir(parents=True, exist_ok=True)
    kept = table.loc[~table["removed"], "uid"].tolist()
    per_shard = metadata.groupby("shard").size().max() if len(metadata) else 10_000
    _write_filtered(data_dir, kept, out_dir, samples_per_shard or int(per_shard))
    _atomic_parquet(table, out_dir / "scores.parquet")
    commonpool.save_uid_subset(kept, out_dir / "kept_uids.npy")
    save_closest_pairs(table, data_dir, eval_sets, out_dir / "closest_pairs.png", threshold, closest_pairs)
    timings["write"] = round(time.time() - clock, 2)

    removed = table[table["removed"]]
    report = DecontaminationReport(
        out_dir=out_dir,
        descriptor=descriptor,
        threshold=threshold,
        samples=len(table),
        removed=len(removed),
        removed_per_source={
            source: {"samples": int(len(group)), "removed": int(group["removed"].sum())}
            for source, group in table.groupby("source")
        },
        removed_per_eval_set={str(k): int(v) for k, v in removed["dedup_eval_set"].value_counts().items()},
        eval_images=eval_counts,
        search=searcher.method,
        seconds=round(time.time() - started, 2),
        search_index=searcher.description,
        search_recall=round(recall, 4),
        search_agreement=round(agreement, 4),
        search_recall_sample=recall_sample,
        device=getattr(model, "device", "cpu"),
        workers=scheduler if scheduler is not None else (os.cpu_count() or 1) if workers is None else workers,
        timings=timings,
        scores=table,
    )
    report_text = json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    atomic_write(out_dir / "report.json", report_text.encode())
    return report


def _embed_eval_sets(
    model: Descriptor, eval_sets: Sequence[EvalSet], cache: Path, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """All eval sets' reference rows with, per row, the set name and image id (cached per set)."""
    vectors, set_names, image_ids, counts = [], [], [], {}
    for eval_set in eval_sets:
        digest = hashlib.sha256(
            json.dumps([[str(p.resolve()), p.stat().st_size] for p in eval_set.files()]).encode()
        ).hexdigest()[:16]
        path = cache / "eval" / f"{eval_set.name.replace('/', '__')}-{digest}.npz"
        if not path.is_file():
            ids, rows, owners = [], [], []
            for chunk in _batches(
                show_progress(eval_set.images(), progress, f"embed eval {eval_set.name}", "img"), batch_size
            ):
                embedded, owner = model.embed_reference([decode_image(data) for _, data in chunk])
                rows.append(embedded)
                owners.append(owner + len(ids))
                ids.extend(image_id for image_id, _ in chunk)
            empty = np.zeros((0, model.dim), dtype=np.float32)
            _atomic_npz(path, vectors=np.concatenate(rows) if rows else empty,
                        owner=np.concatenate(owners) if owners else np.zeros(0, np.int64), ids=np.array(ids, dtype=str))  # fmt: skip
        with np.load(path) as stored:
            vectors.append(stored["vectors"])
            image_ids.append(stored["ids"][stored["owner"]])
            set_names.append(np.full(len(stored["vectors"]), eval_set.name, dtype=object))
            counts[eval_set.name] = int(len(stored["ids"]))
    return (
        np.concatenate(vectors).astype(np.float32),
        np.concatenate(set_names),
        np.concatenate(image_ids).astype(object),
        counts,
    )


@dataclass(frozen=True)
class _DescriptorSpec:
    """What a Dask worker needs to build the descriptor (the model itself is not shipped)."""

    name: str
    weights: str | None
    device: str | None

    def build(self) -> Descriptor:
        options = {"device": self.device} if self.name == "isc" else {}
        return get_descriptor(self.name, self.weights, **options)


_WORKER_MODELS: dict[_DescriptorSpec, Descriptor] = {}  # one model per worker process and spec


def _embed_shard_on_worker(
    spec: _DescriptorSpec, shard: str, npz: str, known: frozenset[str], batch_size: int
) -> str:
    """Dask task: embed one shard with this worker's model (built on its first shard; with several GPUs
    visible, ``cuda`` means GPU ``worker number % GPUs`` so the workers of a LocalCluster spread out)."""
    if spec not in _WORKER_MODELS:
        built = spec
        if spec.name == "isc" and spec.device in (None, "auto", "cuda"):
            import torch
            from distributed import get_worker

            gpus, name = torch.cuda.device_count(), get_worker().name
            if gpus > 1 and isinstance(name, int):
                built = replace(spec, device=f"cuda:{name % gpus}")
        _WORKER_MODELS[spec] = built.build()
    return embed_shard(_WORKER_MODELS[spec], Path(shard), Path(npz), known, batch_size)


def embed_shard(model: Descriptor, shard: Path, npz: Path, known: frozenset[str], batch_size: int) -> str:
    """Embed the images of CommonPool ``shard`` into the cache file ``npz`` (uids, keys, vectors; written
    atomically); every sample's uid must be in ``known`` (the shard's parquet metadata). Returns ``shard``."""
    samples = list(commonpool.iter_shard(shard))
    for sample in samples:
        if sample.uid not in known:
            raise ValueError(
                f"{shard}: sample {sample.key} (uid {sample.uid}) is not in the parquet metadata"
            )
    _atomic_npz(npz, uids=np.array([s.uid for s in samples], dtype=str),
                keys=np.array([s.key for s in samples], dtype=str),
                vectors=model.embed_jpegs([s.jpg for s in samples], batch_size))  # fmt: skip
    return str(shard)


def _embed_shards(
    spec: _DescriptorSpec,
    model: Descriptor,
    data_dir: Path,
    metadata: Any,
    cache: Path,
    batch_size: int,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
) -> Iterator[tuple[str, list[str], list[str], np.ndarray]]:
    """Embed the shards without a cache file (here, or on Dask workers), then ``(shard, uids, keys,
    vectors)`` per shard from the cache, in shard order."""
    cached = {
        path.absolute(): cache / "train" / f"{path.stem}-{path.stat().st_size}.npz"
        for path in commonpool.shard_paths(data_dir)
    }
    todo = [path for path, npz in cached.items() if not npz.is_file()]
    uids_by_shard = metadata.groupby("shard")["uid"].agg(frozenset).to_dict() if len(metadata) else {}
    tasks = [(path, cached[path], uids_by_shard.get(path.stem, frozenset())) for path in todo]
    if tasks and workers == 0 and scheduler is None:
        for path, npz, known in show_progress(tasks, progress, "embed training shards", "shard"):
            embed_shard(model, path, npz, known, batch_size)
    elif tasks:
        _embed_on_dask(spec, tasks, cache, batch_size, workers, scheduler, progress)
    return _read_cached(cached)


def _read_cached(cached: dict[Path, Path]) -> Iterator[tuple[str, list[str], list[str], np.ndarray]]:
    """``(shard, uids, keys, vectors)`` per shard from its cache file, one shard in memory at a time."""
    for path, npz in cached.items():
        with np.load(npz) as stored:
            yield path.stem, stored["uids"].tolist(), stored["keys"].tolist(), stored["vectors"]


def _embed_on_dask(
    spec: _DescriptorSpec,
    tasks: list[tuple[Path, Path, frozenset[str]]],
    cache: Path,
    batch_size: int,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
) -> None:
    """One Dask task per shard; the first error (a bad shard, a worker lost twice) is raised here."""
    from distributed import as_completed

    settings = {"distributed.scheduler.worker-saturation": 1.0}  # a shard per worker at a time
    with dask_client(workers, scheduler, cache / "dask", settings) as client:
        futures = [
            client.submit(_embed_shard_on_worker, spec, str(path), str(npz), known, batch_size, pure=False)
            for path, npz, known in tasks
        ]
        for future in show_progress(
            as_completed(futures), progress, "embed training shards", "shard", len(tasks)
        ):
            future.result()  # raises the task's error
            future.release()
    shutil.rmtree(cache / "dask", ignore_errors=True)


def _write_filtered(data_dir: Path, kept: list[str], out_dir: Path, samples_per_shard: int) -> None:
    """Write the kept samples to ``out_dir/shards`` + ``sizes.json``, replacing old outputs only when done."""
    staging = out_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    commonpool.apply_uid_subset(data_dir, commonpool.uids_to_array(kept), staging, samples_per_shard)
    shutil.rmtree(out_dir / "shards", ignore_errors=True)
    os.replace(staging / "shards", out_dir / "shards")
    os.replace(staging / "sizes.json", out_dir / "sizes.json")
    shutil.rmtree(staging)


def save_closest_pairs(
    scores: Any, data_dir: Path, eval_sets: Sequence[EvalSet], path: Path, threshold: float, count: int = 8
) -> None:
    """A grid of the ``count`` highest-scoring training images next to their closest eval images."""
    from matplotlib.figure import Figure

    top = scores.dropna(subset=["dedup_eval_image"]).nlargest(count, "dedup_score")
    wanted_train = set(top["uid"])
    train = (
        {s.uid: s.jpg for s in commonpool.iter_samples(data_dir) if s.uid in wanted_train} if count else {}
    )
    wanted_eval = set(zip(top["dedup_eval_set"], top["dedup_eval_image"], strict=True))
    evals: dict[tuple[str, str], bytes] = {}
    for eval_set in eval_sets:
        if any(name == eval_set.name for name, _ in wanted_eval):
            evals.update(
                {(eval_set.name, i): d for i, d in eval_set.images() if (eval_set.name, i) in wanted_eval}
            )
    rows = max(1, len(top))
    fig = Figure(figsize=(4.4, 2.2 * rows), dpi=100)
    axes = fig.subplots(rows, 2, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (_, row), (left, right) in zip(top.iterrows(), axes, strict=False):
        left.imshow(decode_image(train[row["uid"]]))
        verdict = "removed" if row["removed"] else "kept"
        left.set_title(f"{row['source']} {row['key']}\n{row['dedup_score']:.3f} ({verdict})", fontsize=7)
        right.imshow(decode_image(evals[(row["dedup_eval_set"], row["dedup_eval_image"])]))
        right.set_title(f"{row['dedup_eval_set']}\n{Path(row['dedup_eval_image']).name}", fontsize=7)
    if len(top) == 0:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center")
    fig.suptitle(f"closest train/eval pairs (threshold {threshold:.3f})", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _atomic_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def _atomic_parquet(frame: Any, path: Path) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write(path, buffer.getvalue())
