"""PMC extraction: pairs/s per worker and its split by phase, the obvious one-process baseline, the image
cost per pair next to its floor, and 1 -> 2 Dask workers; every ratio measured in this run.

Inputs: the real fixture articles (``../shared/fixtures/pmc``), else the generated sample corpus's. The
baseline reads each package with ``tarfile``, parses the XML with ``xml.etree``, takes captions with
``itertext`` and gives each figure's image to Pillow (full decode, ``thumbnail``, JPEG); it writes a tar.
The floor of a pair's image is decoding the same JPEGs at 1/8 scale (little more than reading their
entropy-coded data, which any decoder must; other rasters in full) plus encoding the output JPEG: it
depends on the figures' file sizes, so the ratio, not a time, is the target. Beside it, without a target:
the same JPEGs decoded at the least scale that keeps the output size (what any decoder must produce before
resampling) plus the encoding. The fixtures' images are 640x480 stand-ins, so the image cost is measured
again on print-size figures: the sample corpus's charts and diagrams drawn at 300 dpi (what PMC asks of
halftones), half of them at double-column width, as JPEGs: about 800 to 2200 px on the longest side.
Charts are sparse JPEGs (about 0.4 bits per pixel), where the 1/8 decode is cheap next to the rest; so the
image cost is measured once more on photograph-like figures (smooth colour regions with sensor-like noise,
:func:`benchlib.photo`) at the first 12 charts' sizes, at four levels of noise from 1.7 to 4.5 bits per
pixel. Every image row names its inputs' bits per pixel. Rounds are interleaved for ``--seconds``; the best
round counts.

Run: ``.venv/bin/python benchmarks/bench_pmc.py [--json OUT] [--seconds S] [--copies N] [--scaling-seconds S] [--print-figures N]``
"""

from __future__ import annotations

import functools
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from benchlib import (
    FIXTURES,
    Report,
    arguments,
    interleaved,
    photo,
    report_whole_path,
    sample_corpus,
    shown,
    timed,
    whole_path,
)
from extraction import (
    encode_floor,
    output_pixels,
    output_scale_flag,
    pillow_thumbnail_jpeg,
    raster_decode_floor,
    replicated,
    report_scaling,
    report_split,
    scaling,
    split_round,
    write_baseline_tar,
)

from sciclip_utils import images as image_module
from sciclip_utils.extract import extract_pmc
from sciclip_utils.extract.sandbox import keep_freed_memory
from sciclip_utils.pmc import Options, plan_inputs, process_article
from sciclip_utils.pmc import article as pmc_article
from sciclip_utils.pmc import jats as pmc_jats
from sciclip_utils.sample_corpus.figures import plot_figure, sample_figure
from sciclip_utils.sample_corpus.io import figure_bytes

GROUP = "PMC"
TARGETS = {
    "reading": [(pmc_article, "open_article")],
    "captions": [(pmc_jats, "caption_text"), (pmc_article, "detect_language")],
    "images": [(image_module, "prepare_image"), (image_module, "load_image"), (image_module, "composite")],
}
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
PRINT_DPI = 300  # PMC's file specifications: halftones at 300 dpi, line art at more
PRINT_KINDS = ("bar", "line", "scatter", "histogram", "heatmap", "schematic")
PHOTO_NOISE = (0.0, 0.02, 0.04, 0.08)  # the photographs' noise levels (standard deviation, of the full range)
PHOTO_COUNT = 12


def baseline_article(path: Path) -> list[tuple[bytes, str]]:
    """Pairs of one article the obvious way: the package read in full, ``xml.etree``, Pillow."""
    if path.is_dir():
        files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
    elif path.suffix.lower() in (".xml", ".nxml"):
        files = {p.name: p.read_bytes() for p in path.parent.iterdir() if p.is_file()}
    else:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    xml_name = next(n for n in sorted(files) if n.endswith((".nxml", ".xml")))
    images = [n for n in files if not n.endswith((".nxml", ".xml", ".pdf"))]
    # the figure, not its GIF thumbnail: PMC packages hold both under the same stem
    by_stem = {PurePosixPath(n).stem: n for n in sorted(images, key=lambda n: not n.endswith(".gif"))}
    pairs = []
    for fig in ElementTree.fromstring(files[xml_name]).iter("fig"):
        caption, graphic = fig.find("caption"), fig.find(".//graphic")
        if caption is None or graphic is None:
            continue
        name = by_stem.get(PurePosixPath(graphic.get(XLINK_HREF, "")).stem.removesuffix(".jpg"))
        if name is None:
            continue
        pairs.append((pillow_thumbnail_jpeg(files[name]), " ".join("".join(caption.itertext()).split())))
    return pairs


def baseline_run(paths: list[Path], folder: Path) -> int:
    pairs = [pair for path in paths for pair in baseline_article(path)]
    write_baseline_tar(pairs, folder / "baseline.tar")
    return len(pairs)


def print_size_figures(count: int) -> list[bytes]:
    """``count`` charts and diagrams of the sample corpus drawn at :data:`PRINT_DPI`, every other one at
    double-column width, as JPEGs (quality 90, as the sample corpus writes them)."""
    rng = np.random.default_rng(0)
    jpegs = []
    for n in range(count):
        fig = plot_figure(sample_figure(rng, PRINT_KINDS[n % len(PRINT_KINDS)], "bio"))
        fig.set_size_inches(fig.get_size_inches() * (2 if n % 2 else 1))
        fig.set_dpi(PRINT_DPI)
        jpegs.append(figure_bytes(fig, "jpg"))
    return jpegs


def print_size_photographs(sizes: list[tuple[int, int]], noise: float) -> list[bytes]:
    """Photograph-like figures of these ``sizes`` (width, height) with sensor-like ``noise``, as quality-90
    JPEGs (as the sample corpus writes its figures)."""
    return [
        cv2.imencode(".jpg", photo(size, seed, noise), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        for seed, size in enumerate(sizes)
    ]


def bits_per_pixel(jpegs: list[bytes]) -> float:
    """How dense the JPEGs are: their bits over their pixels."""
    return (
        8 * sum(map(len, jpegs)) / sum(width * height for width, height in map(image_module.jpeg_size, jpegs))
    )


def image_floors(files: list[list[bytes]], outputs: list[np.ndarray]) -> dict[str, Callable[[], float]]:
    """The two floors of the pairs whose image ``files`` gave ``outputs``: 1/8 decode and decode at the
    output scale, each plus the encoding of the output."""
    flags = [[output_scale_flag(data) for data in pair] for pair in files]

    def floor() -> None:
        for pair, pixels in zip(files, outputs, strict=True):
            for data in pair:
                raster_decode_floor(data)
            encode_floor(pixels)

    def output_scale_floor() -> None:
        for pair, pixels, pair_flags in zip(files, outputs, flags, strict=True):
            for data, flag in zip(pair, pair_flags, strict=True):
                cv2.imdecode(np.frombuffer(data, np.uint8), flag)
            encode_floor(pixels)

    return {"floor": lambda: timed(floor), "output-scale floor": lambda: timed(output_scale_floor)}


def figure_floors(jpegs: list[bytes]) -> dict[str, Callable[[], float]]:
    """:func:`image_floors` of figures that are one JPEG each, their outputs made by our path."""
    outputs = [output_pixels(image_module.prepare_image(data).jpeg) for data in jpegs]
    return image_floors([[data] for data in jpegs], outputs)


def report_images(
    report: Report, name: str, ours: float, floor: float, output_scale_floor: float | None = None
) -> None:
    """Our image cost per pair next to the 1/8 floor and, if given, the output-scale one (seconds per pair)."""
    report.add(
        GROUP, name, 1000 * ours, "ms/pair", baseline=1000 * floor, baseline_name="1/8 decode+encode floor",
        target="<= 1.5",
    )  # fmt: skip
    if output_scale_floor is None:
        return
    report.add(
        GROUP, "  next to decoding at the output scale", 1000 * ours, "ms/pair",
        baseline=1000 * output_scale_floor, baseline_name="output-scale decode+encode",
        note="each JPEG decoded at the least libjpeg scale that keeps the output size (in full when the "
        "output is over half the file's size), plus the encoding",
    )  # fmt: skip


def prepare_all(jpegs: list[bytes]) -> Callable[[], float]:
    """The measurement of our image path on ``jpegs``: seconds to prepare them all."""

    def run() -> None:
        for data in jpegs:
            image_module.prepare_image(data)

    return lambda: timed(run)


def collect_pairs(items: list, process: functools.partial) -> list[tuple[list[bytes], bytes]]:
    """For every pair our extraction writes: the image files it decoded and its output JPEG."""
    pairs: list[tuple[list[bytes], bytes]] = []
    pending: list[bytes] = []
    prepare, load = image_module.prepare_image, image_module.load_image

    def loading(data: bytes, *args: object, **kwargs: object) -> object:
        pending.append(data)
        return load(data, *args, **kwargs)

    def preparing(image: object, *args: object) -> object:
        prepared = prepare(image, *args)
        pairs.append(([image] if isinstance(image, bytes) else list(pending), prepared.jpeg))
        pending.clear()
        return prepared

    image_module.prepare_image, image_module.load_image = preparing, loading
    try:
        for item in items:
            process(item)
    finally:
        image_module.prepare_image, image_module.load_image = prepare, load
    return pairs


def main() -> None:
    args = arguments(
        __doc__,
        copies=(int, 7, "copies of the articles for the worker scaling"),
        scaling_seconds=(float, 40, "time for the alternated 1- and 2-worker runs"),
        print_figures=(int, 24, "print-size figures for the image cost"),
    )
    report = Report("bench_pmc")
    keep_freed_memory()  # as in the sandbox process that runs the items of an extraction
    inputs = FIXTURES / "pmc"
    if not inputs.is_dir():
        report.note(f"fixtures not found at {shown(inputs)}: the sample corpus's articles are used")
        inputs = sample_corpus(args.corpus) / "pmc"
    items = plan_inputs([inputs]).items
    process = functools.partial(process_article, options=Options())
    pairs = collect_pairs(items, process)  # also the warm-up
    outputs = [output_pixels(jpeg) for _, jpeg in pairs]
    print_jpegs = print_size_figures(args.print_figures)
    print_sizes = [image_module.jpeg_size(data) for data in print_jpegs]
    print_sides = sorted(map(max, print_sizes))
    photographs = {noise: print_size_photographs(print_sizes[:PHOTO_COUNT], noise) for noise in PHOTO_NOISE}
    photo_measurements = {}
    for noise, jpegs in photographs.items():
        photo_measurements[f"photo {noise} ours"] = prepare_all(jpegs)
        photo_measurements[f"photo {noise} floor"] = figure_floors(jpegs)["floor"]

    with tempfile.TemporaryDirectory() as tmp:
        counts: dict[str, int] = {}
        end_to_end = whole_path(
            lambda out: extract_pmc([inputs], out, workers=0, progress=False).pairs,
            lambda folder: baseline_run([Path(item.input) for item in items], folder),
            Path(tmp),
            counts,
        )
        splits: list[dict] = []
        measurements = {
            "split": lambda: splits.append(split_round(items, process, TARGETS)) or splits[-1]["item"],
            **image_floors([files for files, _ in pairs], outputs),
            "print-size ours": prepare_all(print_jpegs),
            **{f"print-size {name}": run for name, run in figure_floors(print_jpegs).items()},
            **photo_measurements,
            **end_to_end,
        }
        times = interleaved(measurements, args.seconds, min_rounds=3)

    best = min(splits, key=lambda split: split["images"])
    report_split(report, GROUP, min(splits, key=lambda split: split["item"] + split["writing"]))
    per_pair = {name: times[name]["best"] / len(pairs) for name in ("floor", "output-scale floor")}
    stand_ins = ", the fixtures' stand-ins" if inputs.is_relative_to(FIXTURES) else ""
    stand_in_jpegs = [data for files, _ in pairs for data in files if data[:3] == b"\xff\xd8\xff"]
    density = f", {bits_per_pixel(stand_in_jpegs):.2f} bits/px" if stand_in_jpegs else ""
    name = f"images per pair{density} ({len(pairs)} pairs{stand_ins})"
    report_images(
        report, name, best["images"] / best["pairs"], per_pair["floor"], per_pair["output-scale floor"]
    )
    per_pair = {
        name: times[f"print-size {name}"]["best"] / len(print_jpegs)
        for name in ("ours", "floor", "output-scale floor")
    }
    name = (
        f"images per pair, {bits_per_pixel(print_jpegs):.2f} bits/px (print-size charts: {len(print_jpegs)}, "
        f"{print_sides[0]}-{print_sides[-1]} px)"
    )
    report_images(report, name, per_pair["ours"], per_pair["floor"], per_pair["output-scale floor"])
    for noise, jpegs in photographs.items():
        name = f"images per pair, {bits_per_pixel(jpegs):.2f} bits/px (print-size photographs: {len(jpegs)})"
        ours, floor = (times[f"photo {noise} {which}"]["best"] / len(jpegs) for which in ("ours", "floor"))
        report_images(report, name, ours, floor)
    report_whole_path(report, GROUP, "whole path, 1 process (extract_pmc workers=0)", counts, times)
    report_scaling(
        report, GROUP, scaling(replicated(items, args.copies), process, "pmc", args.scaling_seconds)
    )
    report.note(
        f"inputs: {shown(inputs)} ({len(items)} articles), best of {times['ours']['rounds']} interleaved rounds"
    )
    report.write(args.json)


if __name__ == "__main__":
    main()
