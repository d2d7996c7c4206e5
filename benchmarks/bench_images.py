"""Image preparation speed per worker (one core): shrinking to 512 px and a whole ``prepare_image``.

Prints, for photo-like RGB images shrunk by several factors, the milliseconds of ``images.resample`` next
to OpenCV's area averaging (img2dataset's, so DataComp's) and Pillow's antialiased bilinear filter, and the
PSNR of each against area averaging; then ``prepare_image`` on a JPEG of a line plot of each size (decode,
shrink, encode; a large JPEG is decoded at a reduced scale) next to decoding that JPEG at 1/8 scale (little
more than reading its entropy-coded data, which any decoder at any scale or setting must), and on the PMC
fixtures' stand-in JPEGs (what ``bench_pmc.py`` pays for images) when ``../shared/fixtures`` is there.
Allocator settings as in the sandbox process that runs extraction items.

Run: ``.venv/bin/python benchmarks/bench_images.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from benchlib import photo
from PIL import Image

from sciclip_utils.extract.sandbox import keep_freed_memory
from sciclip_utils.images import prepare_image, resample
from sciclip_utils.pmc import open_article, plan_inputs

TARGET = (512, 384)


def plot_jpeg(size: tuple[int, int]) -> bytes:
    """A line plot with a grid and text as a quality-95 JPEG, ``size`` = (width, height)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig = plt.figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    axes = fig.add_subplot()
    for _ in range(4):
        axes.plot(np.cumsum(rng.normal(size=200)), lw=0.8)
    axes.set(title="Response to the stimulus", xlabel="time (s)")
    axes.grid(True, lw=0.5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", pil_kwargs={"quality": 95})
    plt.close(fig)
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


PMC_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pmc"


def best_ms(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed runs per measurement; the fastest counts"
    )
    args = parser.parse_args()
    keep_freed_memory()
    print(f"shrinking to {TARGET[0]}x{TARGET[1]}: ms (PSNR against area averaging), best of {args.repeats}")
    columns = ("resample", "area (OpenCV)", "Pillow bilinear")
    print(
        f"{'source':>11} {'factor':>6}  "
        + "  ".join(f"{c:>15}" for c in columns)
        + "  prepare_image (JPEG decode at 1/8)"
    )
    for factor in (1.25, 1.5, 1.75, 1.95, 2.5, 4.0):
        size = (round(TARGET[0] * factor), round(TARGET[1] * factor))
        pixels = photo(size)
        pil = Image.fromarray(pixels)
        area = cv2.resize(pixels, TARGET, interpolation=cv2.INTER_AREA)
        ours_ms = best_ms(partial(resample, pixels, TARGET), args.repeats)
        area_ms = best_ms(partial(cv2.resize, pixels, TARGET, interpolation=cv2.INTER_AREA), args.repeats)
        pil_ms = best_ms(partial(pil.resize, TARGET, Image.Resampling.BILINEAR), args.repeats)
        ours_db = psnr(resample(pixels, TARGET), area)
        pil_db = psnr(np.asarray(pil.resize(TARGET, Image.Resampling.BILINEAR)), area)
        data = plot_jpeg(size)
        prepare_ms = best_ms(partial(prepare_image, data, "figure.jpg"), args.repeats)
        eighth_ms = best_ms(
            partial(cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8), args.repeats
        )
        ours = f"{ours_ms:5.2f} ({ours_db:5.1f} dB)" if ours_db < 99 else f"{ours_ms:5.2f} (= area)"
        print(f"{size[0]:>5}x{size[1]:<5} {factor:6.2f}  {ours:>15}  {area_ms:15.2f}  "
              f"{pil_ms:5.2f} ({pil_db:5.1f} dB)  {prepare_ms:5.2f} ({eighth_ms:4.2f}; plot JPEG, {len(data) // 1000} KB)")  # fmt: skip
    if PMC_FIXTURES.is_dir():  # their pixels are stand-ins: small, smooth JPEGs, cheaper than real figures
        jpegs = []
        for item in plan_inputs([PMC_FIXTURES]).items:
            files, _ = open_article(item)
            jpegs += [files.read(name) for name in files.names if name.lower().endswith(".jpg")]
        sizes = Counter(Image.open(io.BytesIO(data)).size for data in jpegs)
        prepare_ms = best_ms(
            lambda: [prepare_image(data) for data in jpegs], max(1, args.repeats // 10)
        ) / len(jpegs)
        print(
            f"prepare_image on the PMC fixtures' {len(jpegs)} stand-in JPEGs (sizes {dict(sizes)}, "
            f"{sum(map(len, jpegs)) // len(jpegs) // 1000} KB on average): {prepare_ms:.2f} ms each"
        )


if __name__ == "__main__":
    main()
