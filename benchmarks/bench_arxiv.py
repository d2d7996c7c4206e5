"""arXiv extraction: pairs/s per worker and its split by phase, the obvious one-process baseline, each
image kind next to its rasterization floor, and 1 -> 2 Dask workers; every ratio measured in this run.

Inputs: the real fixture papers (``../shared/fixtures/arxiv``), else the generated sample corpus's papers.
The baseline reads each package with ``tarfile``, finds figures and captions with regular expressions,
renders PDFs with ``pdftoppm`` and EPS with Ghostscript at 150 dpi, and gives every image to Pillow (full
decode, ``thumbnail``, JPEG); it writes a tar. An image's floor is rasterizing the same file at the output
size (pypdfium2 for PDF, Ghostscript for EPS, a raster decoded at 1/8 scale for JPEG, in full otherwise
and then, when larger, reduced to the output size by OpenCV's area averaging: a PNG has no reduced
decoding) plus encoding the output JPEG. A PDF page that is one raster image is not rendered but read
directly (``sciclip_utils.pdf_image``), so PDFs can cost less than their pdfium floor. Rounds are
interleaved for ``--seconds``; the best round counts.

Run: ``.venv/bin/python benchmarks/bench_arxiv.py [--json OUT] [--seconds S] [--copies N] [--scaling-seconds S]``
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import cv2
from benchlib import (
    FIXTURES,
    Report,
    arguments,
    interleaved,
    report_whole_path,
    sample_corpus,
    shown,
    timed,
    whole_path,
)
from extraction import (
    encode_floor,
    output_pixels,
    pillow_thumbnail_jpeg,
    raster_decode_floor,
    replicated,
    report_scaling,
    report_split,
    scaling,
    split_round,
    write_baseline_tar,
)

from sciclip_utils.arxiv import build_work_items, process_item
from sciclip_utils.arxiv import paper as arxiv_paper
from sciclip_utils.extract import extract_arxiv
from sciclip_utils.images import MAX_SIDE, image_kind, load_image, prepare_image, shrink, shrunk_size, to_rgb

GROUP = "arXiv"
TARGETS = {
    "reading": [(arxiv_paper, "_read_package")],
    "captions": [(arxiv_paper, "_clean")],
    "images": [(arxiv_paper._FigureContext, "load"), (arxiv_paper._FigureContext, "record")],
}
FIGURE_RE = re.compile(r"\\begin\{figure\*?\}(.*?)\\end\{figure\*?\}", re.S)
INCLUDE_RE = re.compile(r"\\includegraphics\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}")
CAPTION_RE = re.compile(r"\\caption\s*(?:\[[^\]]*\])?\s*\{")
BBOX_RE = re.compile(rb"%%BoundingBox:\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)")


# ---------------------------------------------------------------------------------- the obvious baseline
def braced(text: str, start: int) -> str:
    """The text up to the brace that closes the one opened just before ``start``."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    return text[start:]


def external_render(command: list[str], data: bytes, output: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in"
        source.write_bytes(data)
        subprocess.run([*command, str(source), str(Path(folder) / "out")] if output == "prefix" else
                       [*command, f"-sOutputFile={Path(folder) / 'out.png'}", str(source)],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        return next(Path(folder).glob("out*.png")).read_bytes()


def baseline_image(data: bytes, name: str) -> bytes:
    lower = name.lower()
    if lower.endswith(".pdf"):
        data = external_render(
            ["pdftoppm", "-png", "-r", "150", "-f", "1", "-l", "1", "-singlefile"], data, "prefix"
        )
    elif lower.endswith((".eps", ".ps")):
        gs = ["gs", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dQUIET", "-dEPSCrop", "-sDEVICE=png16m", "-r150"]
        data = external_render(gs, data, "gs")
    return pillow_thumbnail_jpeg(data)


def baseline_paper(path: Path) -> list[tuple[bytes, str]]:
    """Pairs of one paper the obvious way: every file read, every included image converted."""
    data = gzip.decompress(path.read_bytes())
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            files = {
                m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
            }
    except tarfile.ReadError:
        files = {"main.tex": data}
    tex = "\n".join(v.decode("utf-8", "replace") for k, v in files.items() if k.endswith(".tex"))
    tex = re.sub(r"(?<!\\)%.*", "", tex)
    pairs = []
    for figure in FIGURE_RE.finditer(tex):
        body = figure.group(1)
        caption_at = CAPTION_RE.search(body)
        images = []
        for include in INCLUDE_RE.findall(body):
            stem = include.strip().removeprefix("./")
            for candidate in (stem, *(stem + ext for ext in (".pdf", ".png", ".jpg", ".eps"))):
                if candidate in files:
                    with contextlib.suppress(Exception):  # the obvious code skips what it cannot convert
                        images.append(baseline_image(files[candidate], candidate))
                    break
        if caption_at and images:
            caption = braced(body, caption_at.end())
            caption = re.sub(r"\\[a-zA-Z]+\*?|[{}~]", " ", caption)
            pairs.append((images[0], " ".join(caption.split())))
    return pairs


def baseline_run(papers: list[Path], folder: Path) -> int:
    pairs = [pair for paper in papers for pair in baseline_paper(paper)]
    write_baseline_tar(pairs, folder / "baseline.tar")
    return len(pairs)


# ------------------------------------------------------------------------------------ images and floors
def collect_images(items: list) -> list[tuple[bytes, str]]:
    """The image files our extraction loads for these items (by wrapping ``load_image`` where the paper
    code calls it)."""
    seen: list[tuple[bytes, str]] = []

    def recording(data: bytes, name: str = "", **kwargs: object) -> object:
        seen.append((data, name))
        return load_image(data, name, **kwargs)

    arxiv_paper.load_image = recording
    try:
        for item in items:
            process_item(item)
    finally:
        arxiv_paper.load_image = load_image
    return seen


def ours(data: bytes, name: str) -> bytes:
    """A single-image figure's path in ``arxiv.paper``: load (render), shrink, RGB, prepare (shrink, JPEG)."""
    image = load_image(data, name, max_side=MAX_SIDE)
    return prepare_image(to_rgb(shrink(image, shrunk_size(*image.size)))).jpeg


def rasterize_floor(data: bytes, kind: str, size: tuple[int, int]) -> object:
    """The file rasterized at the output size, nothing else."""
    if kind == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        page = pdf[0]
        scale = MAX_SIDE / max(page.get_size())
        pixels = page.render(scale=scale, prefer_bgrx=True).to_numpy()  # pdfium's fastest layout
        pdf.close()
        return pixels
    if kind == "postscript":
        found = BBOX_RE.search(data[: 64 * 1024])
        longest = (
            max(abs(float(found[3]) - float(found[1])), abs(float(found[4]) - float(found[2])))
            if found
            else 0
        )
        dpi = 72 * max(size) / longest if longest else 72
        command = ["gs", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dQUIET", "-dEPSCrop", "-dFirstPage=1",
                   "-dLastPage=1", "-sDEVICE=ppmraw", f"-r{dpi:.3f}", "-sOutputFile=-", "-"]  # fmt: skip
        return subprocess.run(command, input=data, capture_output=True, check=True, timeout=120).stdout
    pixels = raster_decode_floor(data)
    if pixels is not None and (pixels.shape[1] > size[0] or pixels.shape[0] > size[1]):
        # a PNG has no reduced decoding: bringing it to the output size is part of rasterizing it at that
        # size (as pdfium and Ghostscript render at it), by area averaging (OpenCV's, DataComp's)
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels


def main() -> None:
    args = arguments(
        __doc__,
        copies=(int, 10, "copies of the papers for the worker scaling"),
        scaling_seconds=(float, 40, "time for the alternated 1- and 2-worker runs"),
    )
    report = Report("bench_arxiv")
    inputs = FIXTURES / "arxiv"
    if not inputs.is_dir():
        report.note(f"fixtures not found at {shown(inputs)}: the sample corpus's papers are used")
        inputs = sample_corpus(None) / "arxiv"
    items = build_work_items([inputs])
    papers = sorted(inputs.glob("*.gz"))
    corpus = sample_corpus(args.corpus) / "arxiv"  # its papers have every image kind, EPS too
    images = collect_images(items + build_work_items([corpus]))  # also the warm-up (imports, Ghostscript)
    kinds = [image_kind(data, name) for data, name in images]
    outputs = [output_pixels(ours(data, name)) for data, name in images]
    sizes = [(pixels.shape[1], pixels.shape[0]) for pixels in outputs]

    with tempfile.TemporaryDirectory() as tmp:
        counts: dict[str, int] = {}
        end_to_end = whole_path(
            lambda out: extract_arxiv([inputs], out, workers=0, progress=False).pairs,
            lambda folder: baseline_run(papers, folder) if papers else 0,
            Path(tmp),
            counts,
        )

        def floor(n: int) -> None:
            rasterize_floor(images[n][0], kinds[n], sizes[n])
            encode_floor(outputs[n])

        splits: list[dict] = []
        measurements = {
            "split": lambda: splits.append(split_round(items, process_item, TARGETS)) or splits[-1]["item"],
            **end_to_end,
            **{f"ours {n}": (lambda n=n: timed(lambda: ours(*images[n]))) for n in range(len(images))},
            **{f"floor {n}": (lambda n=n: timed(lambda: floor(n))) for n in range(len(images))},
        }
        times = interleaved(measurements, args.seconds)

    best = min(splits, key=lambda split: split["item"] + split["writing"])
    report_split(report, GROUP, best)
    name = "whole path, 1 process (extract_arxiv workers=0)"
    report_whole_path(report, GROUP, name, counts, times, target=">= 10")
    if not counts.get("baseline"):
        report.note("the baseline reads single .gz papers only: no baseline for bulk tars")
    labels = {"pdf": "PDF", "postscript": "EPS", "raster": "raster"}
    total_ours = total_floor = 0.0
    for kind, label in labels.items():
        numbers = [n for n, k in enumerate(kinds) if k == kind]
        if not numbers:
            report.note(f"no {label} figures in these inputs")
            continue
        cost = sum(times[f"ours {n}"]["best"] for n in numbers)
        floor = sum(times[f"floor {n}"]["best"] for n in numbers)
        total_ours, total_floor = total_ours + cost, total_floor + floor
        report.add(
            GROUP, f"images, {label} ({len(numbers)} files)", 1000 * cost / len(numbers), "ms/figure",
            baseline=1000 * floor / len(numbers), baseline_name="rasterize+encode floor", target="<= 1.3",
        )  # fmt: skip
    if images:
        report.add(
            GROUP, f"images, all kinds ({len(images)} files)", 1000 * total_ours / len(images), "ms/figure",
            baseline=1000 * total_floor / len(images), baseline_name="rasterize+encode floor", target="<= 1.3",
        )  # fmt: skip
    report_scaling(
        report, GROUP, scaling(replicated(items, args.copies), process_item, "arxiv", args.scaling_seconds)
    )
    report.note(f"inputs: {shown(inputs)} ({len(items)} papers; images also from {shown(corpus)}), "
                f"best of {times['ours']['rounds']} interleaved rounds")  # fmt: skip
    report.write(args.json)


if __name__ == "__main__":
    main()
