"""Decontamination speed and calibration on this machine.

Prints images/s of each descriptor (``dct`` on 512-px JPEGs as stored in CommonPool shards, its reference
side with 10 views per eval image, and ``isc`` with random weights on CPU for a few images), the time to
score 100k training descriptors against 10k eval images (random unit vectors: exact batched matrix
products and FAISS IndexFlatIP), and the calibration of ``dct`` (ROC points, chosen threshold).

Run: ``.venv/bin/python benchmarks/bench_decontaminate.py [--isc-images N] [--no-calibration]``
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sciclip_utils import decontam as dc
from sciclip_utils.decontam import descriptors


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


def bench_descriptors(isc_images: int) -> None:
    jpegs = commonpool_jpegs(120)
    model = dc.DCTDescriptor()
    model.embed([dc.decode_image(jpegs[0], draft=256)])
    seconds = timed(lambda: model.embed([dc.decode_image(data, draft=256) for data in jpegs]))
    print(
        f"dct  (dim {model.dim}): {len(jpegs) / seconds:7.1f} training images/s (decode + embed, 1 process)"
    )
    seconds = timed(lambda: model.embed_reference([dc.decode_image(data) for data in jpegs]))
    print(f"dct  reference side (10 views each): {len(jpegs) / seconds:7.1f} eval images/s")

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / dc.ISC_CHECKPOINT
        torch.save(
            {"state_dict": {f"module.{k}": v for k, v in dc.build_isc_network().state_dict().items()}}, path
        )
        isc = dc.ISCDescriptor(path, batch_size=isc_images)
        images = [dc.decode_image(data) for data in jpegs[:isc_images]]
        isc.embed(images[:1])
        seconds = timed(lambda: isc.embed(images))
    print(f"isc  (dim 256, 512x512, random weights, CPU, {torch.get_num_threads()} threads): "
          f"{len(images) / seconds:7.2f} images/s")  # fmt: skip


def bench_search(train: int = 100_000, evals: int = 10_000) -> None:
    rng = np.random.default_rng(0)
    for dim in (256, dc.DCTDescriptor().dim):
        queries = descriptors._unit_rows(rng.standard_normal((train, dim), dtype=np.float32))
        reference = descriptors._unit_rows(rng.standard_normal((evals, dim), dtype=np.float32))
        if dim == 256:
            exact = timed(lambda q=queries, r=reference: dc.nearest(q, r))
            faiss = timed(lambda q=queries, r=reference: dc.nearest(q, r, use_faiss=True))
            print(
                f"search {train:,} x {evals:,} eval images, dim {dim}: exact {exact:6.1f} s, FAISS {faiss:6.1f} s"
            )
        else:  # dct: 10 reference rows per eval image; time a tenth of the queries and scale up
            part = queries[: train // 10]
            exact = timed(lambda q=part, r=reference: dc.nearest(q, r)) * 10 * 10
            print(
                f"search {train:,} x {evals:,} eval images (x10 views), dim {dim}: exact ~{exact:6.0f} s (extrapolated)"
            )


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isc-images", type=int, default=4, help="images for the ISC timing")
    parser.add_argument("--no-calibration", action="store_true", help="skip the calibration (about 1 min)")
    args = parser.parse_args()
    bench_descriptors(args.isc_images)
    bench_search()
    if not args.no_calibration:
        bench_calibration()


if __name__ == "__main__":
    main()
