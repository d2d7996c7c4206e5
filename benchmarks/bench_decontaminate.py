"""Decontamination speed on this machine, and the calibration of ``dct`` on request.

Figures: images/s of each descriptor (``dct`` on 512-px JPEGs as stored in CommonPool shards, its reference
side with 10 views per eval image, and ``isc`` with random weights on CPU for ``--isc-images`` images),
and the time to score a pool of 1k, 10k and 100k training descriptors against 10k eval images (random
unit vectors, 256-d as ``isc``: exact batched matrix products) with the fitted growth ``time ~ n^k``.
``--calibration`` also prints the ROC of ``dct`` (about a minute).

Run: ``.venv/bin/python benchmarks/bench_decontaminate.py [--json OUT] [--isc-images N] [--calibration]``
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import Report, arguments
from PIL import Image

from sciclip_utils import commonpool
from sciclip_utils import decontam as dc
from sciclip_utils.decontam import descriptors

GROUP = "decontam"


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def commonpool_jpegs(count: int) -> list[bytes]:
    """Calibration images re-encoded like CommonPool samples (JPEG, longest side 512)."""
    population = dc.calibration_images(0, plots=count, textures=0, digits=0, shapes=0, stock_plots=0)
    jpegs = []
    for _, img in population[:count]:
        scale = 512 / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=95)
        jpegs.append(buffer.getvalue())
    return jpegs


def bench_descriptors(report: Report, isc_images: int) -> None:
    jpegs = commonpool_jpegs(120)
    model = dc.DCTDescriptor()
    model.embed([dc.decode_image(jpegs[0], draft=256)])
    seconds = timed(lambda: model.embed([dc.decode_image(data, draft=256) for data in jpegs]))
    report.add(GROUP, f"dct descriptors (dim {model.dim}, decode + embed)", len(jpegs) / seconds, "images/s")
    seconds = timed(lambda: model.embed_reference([dc.decode_image(data) for data in jpegs]))
    report.add(GROUP, "dct reference side (10 views each)", len(jpegs) / seconds, "images/s")
    if not isc_images:
        report.note("isc descriptors not timed (--isc-images 0)")
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        isc = dc.ISCDescriptor(_isc_checkpoint(Path(tmp)), batch_size=isc_images)
        images = [dc.decode_image(data) for data in jpegs[:isc_images]]
        isc.embed(images[:1])
        seconds = timed(lambda: isc.embed(images))
    threads = torch.get_num_threads()
    report.add(GROUP, f"isc descriptors (512x512, random weights, CPU, {threads} threads)", len(images) / seconds, "images/s")  # fmt: skip


def _isc_checkpoint(folder: Path) -> Path:
    """A checkpoint of the ISC21 network with random weights (speed only)."""
    import torch

    path = folder / dc.ISC_CHECKPOINT
    state = {f"module.{k}": v for k, v in dc.build_isc_network().state_dict().items()}
    torch.save({"state_dict": state}, path)
    return path


def _embedding_rate(
    data: Path, evalsets: Path, out: Path, images: int, workers: int, **options: object
) -> tuple[float, float]:
    """``(images/s, cluster start s)`` of embedding the training shards of ``data`` with ``workers`` Dask
    workers (0: this process). The rate is the steady one: the eval set is embedded beforehand, and on Dask
    a first pass over the same shards builds each worker's model, so neither the cluster start nor the
    model builds are in it."""
    from sciclip_utils.cluster import dask_client

    def embed_seconds(scheduler: str | None = None) -> float:
        for cache in out.glob(".cache/*/train"):
            shutil.rmtree(cache)
        run = dc.decontaminate(data, [evalsets], out, workers=workers, scheduler=scheduler, progress=False,
                               **options)  # fmt: skip
        return run.timings["embed_train"]

    if not workers:
        embed_seconds()  # the eval set's embeddings
        return images / max(embed_seconds(), 1e-9), 0.0
    start = time.perf_counter()
    with dask_client(workers, None, out / "scratch") as client:
        start = time.perf_counter() - start
        embed_seconds(client.scheduler.address)  # warm-up: models built on every worker
        return images / max(embed_seconds(client.scheduler.address), 1e-9), start


def measure_scaling(
    images: int = 96, isc_images: int = 8, worker_counts: tuple[int, ...] = (0, 1, 2), pairs: int = 1_900_000
) -> dict[str, object]:
    """Training images/s of ``dct`` and ``isc`` (random weights, CPU) in this process and on 1 and 2 Dask
    workers, the 2-worker scaling efficiency, the projected hours for ``pairs`` pairs on N workers (the
    1-worker rate times N: N free cores assumed),
    and, where torch sees a GPU, ISC images/s on one GPU (float16) and its projection."""
    import os

    import torch

    figures: dict[str, object] = {"cpu_cores": os.cpu_count(), "pairs": pairs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jpegs = commonpool_jpegs(max(images, isc_images))
        (root / "evalsets" / "set" / "a").mkdir(parents=True)
        for index, data in enumerate(jpegs[:4]):
            (root / "evalsets" / "set" / "a" / f"{index}.jpg").write_bytes(data)
        checkpoint = _isc_checkpoint(root)
        runs = {
            "dct": (images, {"descriptor": "dct"}),
            "isc_cpu": (isc_images, {"descriptor": "isc", "weights": checkpoint, "device": "cpu"}),
        }
        if torch.cuda.is_available():
            gpu = {"descriptor": "isc", "weights": checkpoint, "device": "cuda", "batch_size": 256}
            runs["isc_gpu"] = (max(images, 2048), gpu)
        for name, (count, options) in runs.items():
            data = root / f"pool-{name}"
            pool = (jpegs * (count // len(jpegs) + 1))[:count]
            records = (_record(jpeg, index) for index, jpeg in enumerate(pool))
            commonpool.write_dataset(records, data, samples_per_shard=max(1, count // 8))
            counts = (0,) if name == "isc_gpu" else worker_counts
            for workers in counts:
                out = root / f"out-{name}"
                rate, start = _embedding_rate(data, root / "evalsets", out, count, workers, **options)
                figures[f"{name}_images_per_s_workers{workers}"] = round(rate, 2)
                if workers:
                    figures[f"cluster_start_s_workers{workers}"] = round(start, 2)
    widest = max(worker_counts)
    for name in ("dct", "isc_cpu"):
        per_worker = figures[f"{name}_images_per_s_workers1"]
        figures[f"{name}_efficiency_workers{widest}"] = round(
            figures[f"{name}_images_per_s_workers{widest}"] / (widest * per_worker), 2
        )
        for n in (1, 2, 16, 64):  # N workers on N free cores, each at the measured 1-worker rate
            figures[f"{name}_projected_hours_{n}_workers"] = round(pairs / (per_worker * n) / 3600, 1)
    if "isc_gpu_images_per_s_workers0" in figures:
        figures["gpu"] = torch.cuda.get_device_name(0)
        figures["isc_gpu_projected_hours_1_gpu"] = round(
            pairs / figures["isc_gpu_images_per_s_workers0"] / 3600, 2
        )
    else:
        figures["gpu"] = "no GPU"
    return figures


def _record(jpeg: bytes, index: int) -> commonpool.Record:
    return commonpool.Record(jpeg, f"figure {index}", "bench", f"p{index}", "fig1")


def bench_scaling(report: Report, images: int, isc_images: int) -> None:
    """The figures of :func:`measure_scaling` in the report (text figures as notes)."""
    for name, value in measure_scaling(images, isc_images).items():
        if isinstance(value, int | float):
            report.add(GROUP, f"scaling: {name}", float(value), "")
        else:
            report.note(f"scaling: {name} = {value}")


def bench_search(report: Report, evals: int = 10_000, dim: int = 256) -> None:
    """Exact search time for pools of 1k, 10k and 100k descriptors; the exponent of a log-log fit."""
    rng = np.random.default_rng(0)
    reference = descriptors._unit_rows(rng.standard_normal((evals, dim), dtype=np.float32))
    pools = (1_000, 10_000, 100_000)
    seconds = []
    for size in pools:
        queries = descriptors._unit_rows(rng.standard_normal((size, dim), dtype=np.float32))
        dc.nearest(queries[:100], reference)
        seconds.append(
            min(timed(lambda q=queries: dc.nearest(q, reference)) for _ in range(2 if size < 100_000 else 1))
        )
        report.add(GROUP, f"search {size:,} x {evals:,} eval, dim {dim}", seconds[-1], "s")
    slope, _ = np.polyfit(np.log(pools), np.log(seconds), 1)
    report.add(GROUP, "search growth: time ~ pool^k, k =", float(slope), "", note="1 is linear")


def bench_calibration() -> None:
    start = time.perf_counter()
    result = dc.calibrate("dct", seed=0)
    print(f"\ncalibration of dct (seed 0): {result.images} images, {result.positives} near-duplicates, "
          f"{result.negatives:,} distinct pairs, {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"chosen threshold {result.threshold:.4f}: TPR {result.tpr:.3f}, FPR {result.fpr:.4f}; "
          f"set level (vs {result.images // 2 + result.images % 2} images): TPR {result.set_tpr:.3f}, "
          f"FPR {result.set_fpr:.3f}; set-level FPR <= 1% needs {result.set_threshold:.3f}")  # fmt: skip
    roc = result.roc
    points = [roc.iloc[(roc["threshold"] - t).abs().argmin()] for t in np.arange(0.5, 1.0, 0.05)]
    print("threshold    TPR      FPR   set TPR  set FPR")
    for row in points:
        print(
            f"{row['threshold']:9.2f}  {row['tpr']:.3f}  {row['fpr']:.5f}   {row['set_tpr']:.3f}   {row['set_fpr']:.3f}"
        )
    print("TPR per transform alone:", ", ".join(f"{k} {v:.3f}" for k, v in result.per_transform.items()))
    print(
        "per category:",
        ", ".join(f"{k} TPR {v['tpr']:.3f} FPR {v['fpr']:.4f}" for k, v in result.per_category.items()),
    )


def main() -> None:
    args = arguments(
        __doc__,
        isc_images=(int, 0, "images for the ISC timing (0: not timed)"),
        calibration=(bool, False, "also print the calibration of dct (about 1 min)"),
        scaling_images=(int, 0, "dct images per worker count for the Dask scaling figures (0: not measured)"),
        scaling_isc_images=(int, 0, "isc (CPU) images per worker count in the scaling figures"),
    )
    report = Report("bench_decontaminate")
    bench_descriptors(report, args.isc_images)
    if args.scaling_images:
        bench_scaling(report, args.scaling_images, args.scaling_isc_images)
    bench_search(report)
    if args.calibration:
        bench_calibration()
    report.write(args.json)


if __name__ == "__main__":
    main()
