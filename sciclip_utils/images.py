"""Image loading (raster, PDF, EPS/PS) and normalisation to CommonPool JPEGs.

Hostile input is expected: raster decoding is limited to figure formats with a pixel cap (decompression
bombs), PDFs are size-capped and only their first page is rendered, and Ghostscript runs with ``-dSAFER``
in a private temporary folder (its only writable place: with ``-dSAFER`` Ghostscript still permits the
temporary folder, so a shared ``/tmp`` would be writable), with limits on time, CPU, memory and output size.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

MAX_SIDE = 512
JPEG_QUALITY = 95
MAX_PIXELS = 100_000_000
MAX_PDF_BYTES = 64 * 2**20
GHOSTSCRIPT_TIMEOUT_S = 30.0
GHOSTSCRIPT_DPI = 150
GHOSTSCRIPT_MAX_SIDE = 2048  # rendered pixels on the longest side (then reduced to MAX_SIDE)
GHOSTSCRIPT_MEMORY_BYTES = 2 * 2**30
GHOSTSCRIPT_OUTPUT_BYTES = 64 * 2**20  # its PNG and its messages
# Pillow formats a paper's figure can be in. Others stay closed: some have no magic bytes (TGA), so junk would
# decode as an "image", and Pillow's own EPS plugin would run Ghostscript without the limits below.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP", "PPM", "JPEG2000")

# Resampling under 2x (see resample): the prefilter's sigma is PREFILTER_WIDTH * sqrt(factor**2 - 1), fitted
# on plots and photos (the best worst case against area averaging); it is skipped under MIN_PREFILTER_SIGMA,
# where the taps beside the centre weigh under 1/256 (factors under 1.2).
PREFILTER_WIDTH = 0.45
MIN_PREFILTER_SIGMA = 0.3
_REDUCED_DECODING = (  # JPEG decoding at 1/scale (combined with IMREAD_COLOR or IMREAD_GRAYSCALE)
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)
# Items are the unit of parallelism (one per Dask worker thread): OpenCV's own threads would only
# oversubscribe the cores.
cv2.setNumThreads(1)

PDF_EXTENSIONS = {".pdf"}
POSTSCRIPT_EXTENSIONS = {".eps", ".ps", ".epsi", ".epsf"}


class ImageError(Exception):
    """An image could not be loaded; the message says why."""


@dataclass(frozen=True)
class PreparedImage:
    """A CommonPool-ready JPEG, its size, and the size of the image it came from."""

    jpeg: bytes
    width: int
    height: int
    original_width: int
    original_height: int


def image_kind(data: bytes, name: str = "") -> str:
    """Classify bytes as ``pdf``, ``postscript`` or ``raster`` by magic bytes, then by extension."""
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"%!") or data[:4] == b"\xc5\xd0\xd3\xc6":  # PostScript, DOS EPS binary header
        return "postscript"
    suffix = Path(name).suffix.lower()
    if suffix in PDF_EXTENSIONS:
        return "pdf"
    if suffix in POSTSCRIPT_EXTENSIONS:
        return "postscript"
    return "raster"


def load_image(data: bytes, name: str = "", *, max_side: int | None = None) -> Image.Image:
    """Decode ``data`` (raster, first PDF page, or EPS/PS) into a loaded PIL image, or raise ImageError.

    ``max_side``: the image is to be shrunk to this longest side, so a larger JPEG is decoded at 1/2, 1/4
    or 1/8 scale (libjpeg's DCT scaling), as small as keeps it at least that size.
    """
    return _load(data, name, max_side)[0]


def _load(data: bytes, name: str, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """The loaded image and the size of the image in the file."""
    if not data:
        raise ImageError("empty file")
    kind = image_kind(data, name)
    if kind == "pdf":
        img = render_pdf(data)
    elif kind == "postscript":
        img = render_postscript(data)
    else:
        return open_raster(data, max_side)
    return img, img.size


def open_raster(data: bytes, max_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode a raster image with a pixel cap (decompression-bomb safe); also its size in the file, which a
    JPEG decoded at a reduced scale for ``max_side`` (see :func:`load_image`) no longer has."""
    return _decode_raster(_open_header(data), max_side)


def _decode_raster(img: Image.Image, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode the raster whose header :func:`_open_header` read (see :func:`open_raster`)."""
    size = width, height = img.size
    with _pillow_errors():
        if max_side is not None and img.format == "JPEG" and max(width, height) > max_side:
            img.draft(None, shrunk_size(width, height, max_side))
        img.load()
    return img, size


def _open_header(data: bytes) -> Image.Image:
    """The raster image in ``data``, its header read but its pixels not yet decoded; ImageError for a
    format outside :data:`RASTER_FORMATS`, a zero size, or more than :data:`MAX_PIXELS` pixels."""
    with _pillow_errors():
        img = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"image too large: {width}x{height} pixels")
    if width == 0 or height == 0:
        raise ImageError("image has zero size")
    return img


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many exception types for bad data (and its bomb warning) as ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (ImageError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"decompression bomb: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageError(f"unreadable raster image: {type(exc).__name__}: {exc}") from exc


def render_pdf(data: bytes, size: int = MAX_SIDE) -> Image.Image:
    """Render the first page of a PDF so that its longest side is ``size`` pixels (a page that is one plain
    raster image is read directly: :mod:`sciclip_utils.pdf_image`)."""
    import pypdfium2 as pdfium

    from .pdf_image import single_image_page

    if len(data) > MAX_PDF_BYTES:
        raise ImageError(f"PDF too large: {len(data)} bytes")
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise ImageError(f"unreadable PDF: {exc}") from exc
    try:
        if len(pdf) == 0:
            raise ImageError("PDF has no pages")
        page = pdf[0]
        width, height = page.get_size()
        if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
            raise ImageError(f"PDF page has no usable size ({width} x {height})")
        scale = size / max(width, height)
        if min(width, height) * scale < 1:
            raise ImageError(f"PDF page is degenerate ({width:g} x {height:g} pt)")
        pixels = single_image_page(
            data, pdf, page, (math.ceil(width * scale), math.ceil(height * scale)), MAX_PIXELS
        )  # the size pypdfium2 renders
        if pixels is not None:  # RGB, as pdfium's rendering below
            return Image.fromarray(pixels if pixels.ndim == 3 else cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB))
        # four bytes a pixel (pdfium's own layout): the same pixels as three, in about a tenth less time
        bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255), prefer_bgrx=True)
        return bitmap.to_pil().convert("RGB")
    except (ImageError, MemoryError):
        raise
    except Exception as exc:  # pdfium raises PdfiumError, and others for malformed pages
        raise ImageError(f"PDF render failed: {type(exc).__name__}: {exc}") from exc
    finally:
        pdf.close()


_NUMBER = rb"(-?\d+(?:\.\d*)?|-?\.\d+)"
_BOUNDING_BOX = re.compile(rb"^%%BoundingBox:[ \t]*" + rb"[ \t]+".join([_NUMBER] * 4), re.M)


def _postscript_dpi(data: bytes) -> float:
    """Ghostscript's resolution: 150 dpi, lowered so that the bounding box is at most 2048 px wide/high."""
    found = _BOUNDING_BOX.search(data[: 64 * 1024])
    if found is None:
        return GHOSTSCRIPT_DPI
    llx, lly, urx, ury = (float(value) for value in found.groups())
    longest = max(abs(urx - llx), abs(ury - lly))
    if not math.isfinite(longest) or longest <= 0:
        return GHOSTSCRIPT_DPI
    return min(GHOSTSCRIPT_DPI, 72.0 * GHOSTSCRIPT_MAX_SIDE / longest)


def render_postscript(
    data: bytes, size: int = MAX_SIDE, timeout: float = GHOSTSCRIPT_TIMEOUT_S
) -> Image.Image:
    """Render EPS/PS with Ghostscript (``-dSAFER -dEPSCrop``, first page, killed after ``timeout`` s).

    Ghostscript works in a private temporary folder (also its ``TMPDIR``, the one place ``-dSAFER`` lets
    it write), with limits on CPU time, memory and file size.
    """
    gs = shutil.which("gs")
    if gs is None:
        raise ImageError("Ghostscript (gs) is not installed; EPS/PS figures need it")
    with tempfile.TemporaryDirectory(prefix="sciclip-gs-") as tmp:
        source, target, log = Path(tmp) / "in.eps", Path(tmp) / "out.png", Path(tmp) / "gs.log"
        source.write_bytes(data)
        command = [
            gs, "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dQUIET", "-dEPSCrop", "-dFirstPage=1", "-dLastPage=1",
            "-sDEVICE=png16m", f"-r{_postscript_dpi(data):.3f}", "-dTextAlphaBits=4", "-dGraphicsAlphaBits=4",
            f"-sOutputFile={target}", str(source),
        ]  # fmt: skip
        with open(log, "wb") as output:
            returncode = _run_limited(command, Path(tmp), output, timeout)
        if returncode != 0 or not target.is_file():
            raise ImageError(f"Ghostscript failed: {_gs_failure(returncode, log)}")
        img, _ = open_raster(target.read_bytes())
    return shrink(img, shrunk_size(*img.size, size))


def _run_limited(command: list[str], folder: Path, log: io.BufferedWriter, timeout: float) -> int:
    """Run ``command`` in ``folder`` (also its TMPDIR), its output to ``log``, with resource limits."""
    env = {**os.environ, "TMPDIR": str(folder), "TEMP": str(folder), "TMP": str(folder)}
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _limit_process(process.pid, timeout)
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"Ghostscript timed out after {timeout:g} s") from exc
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _limit_process(pid: int, timeout: float) -> None:
    """CPU, memory and file-size limits on a child (Linux ``prlimit``; a backstop if we die first)."""
    import resource

    if not hasattr(resource, "prlimit"):
        return
    cpu = math.ceil(timeout) + 2
    for limit, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, GHOSTSCRIPT_MEMORY_BYTES),
        (resource.RLIMIT_FSIZE, GHOSTSCRIPT_OUTPUT_BYTES),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            _, hard = resource.prlimit(pid, limit)
            soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.prlimit(pid, limit, (soft, hard))
        except (ProcessLookupError, PermissionError, ValueError):
            return  # already gone, or not allowed: the timeout still holds


def _gs_failure(returncode: int, log: Path) -> str:
    """Why Ghostscript failed: its last error line, or the signal that stopped it."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        why = {"SIGXFSZ": "output over the file size limit", "SIGXCPU": "over the CPU time limit"}
        return f"killed by {name}" + (f" ({why[name]})" if name in why else "")
    lines = [
        line for line in log.read_bytes()[-4096:].decode("utf-8", "replace").splitlines() if line.strip()
    ]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or [f"exit {returncode}"])[0].strip()


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, flattening transparency onto white."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA")
    elif img.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        img = _scale_to_8bit(img)
    elif img.mode == "CMYK":
        img = ImageOps.invert(img.convert("RGB")) if _is_adobe_inverted(img) else img.convert("RGB")
    if img.mode in {"RGBA", "LA", "RGBa", "La", "PA"}:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba)  # alpha_composite onto white to the same rounding, a fourth of the cost
        return canvas
    return img.convert("RGB")


def rgb_or_grey_pixels(img: Image.Image) -> np.ndarray:
    """The pixels of ``img`` as an L or RGB array: other modes as :func:`to_rgb` converts them, an RGBA
    image whose alpha is opaque everywhere (plots are often saved so) by dropping its alpha channel."""
    if img.mode == "RGBA":
        pixels = np.asarray(img)
        if pixels[:, :, 3].min() == 255:
            return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)
    elif img.mode in ("L", "RGB"):
        return np.asarray(img)
    return np.asarray(to_rgb(img))


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """Map 16/32-bit integer images onto 0..255 using their value range."""
    array = np.asarray(img, dtype=np.float64)
    top = 65535.0 if array.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def _is_adobe_inverted(img: Image.Image) -> bool:
    """Adobe CMYK JPEGs store inverted values (APP14 marker); Pillow leaves them inverted."""
    return getattr(img, "format", None) == "JPEG" and "adobe" in getattr(img, "info", {})


def shrunk_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image with its longest side at most ``max_side``."""
    if max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` resized down to ``size`` (itself if already that size) by :func:`resample`; L and RGB keep
    their mode, other modes become RGB first (transparency onto white: the same as resampling with
    premultiplied alpha, then flattening)."""
    if img.size == size:
        return img
    pixels = rgb_or_grey_pixels(img)
    with _opencv_errors():
        return Image.fromarray(resample(pixels, size))


def resample(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit image array (any channel order) shrunk to ``size`` (width, height).

    DataComp's images were shrunk by img2dataset with area averaging (OpenCV's ``INTER_AREA``); so are
    these when at least twice too large. Under that, where OpenCV's area averaging is slow (it costs more
    than decoding the image), a Gaussian low-pass that widens with the factor and bilinear interpolation
    come about as close to it as Pillow's antialiased bilinear filter (``tests/test_images.py``) at a
    third to a half of the cost of either.
    """
    width, height = size
    if pixels.shape[:2] == (height, width):
        return pixels
    factor = max(pixels.shape[1] / width, pixels.shape[0] / height)
    if factor >= 2:
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    sigma = PREFILTER_WIDTH * math.sqrt(max(factor * factor - 1, 0.0))
    if sigma >= MIN_PREFILTER_SIGMA:
        taps = 2 * math.ceil(2 * sigma) + 1  # +-2 sigma (OpenCV's default, +-3, costs half as much again)
        kernel = cv2.getGaussianKernel(taps, sigma)
        pixels = cv2.sepFilter2D(pixels, -1, kernel, kernel)  # a fifth faster than GaussianBlur on 8 bits
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)


def prepare_image(image: bytes | Image.Image, name: str = "") -> PreparedImage:
    """Normalise an image to DataComp's format: RGB JPEG (quality 95), longest side <= 512 (only shrinking).

    From bytes, the original width and height are those of the file, and an RGB or grey JPEG or PNG (most
    figures) is decoded by OpenCV, a large JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) as long
    as that stays at least the output size; Pillow checks its header first (format, pixel cap) and
    decodes everything else (see :func:`load_image`).
    """
    bgr = None
    if isinstance(image, bytes):
        if not image:
            raise ImageError("empty file")
        if image_kind(image, name) == "raster":
            header = _open_header(image)
            bgr = decode_with_opencv(image, header, shrunk_size(*header.size))
            if bgr is None:
                img, (width, height) = _decode_raster(header, MAX_SIDE)
            else:
                width, height = header.size
        else:
            img, (width, height) = _load(image, name, MAX_SIDE)
    else:
        img, (width, height) = image, image.size
    size = shrunk_size(width, height)
    with _opencv_errors():
        if bgr is not None:
            pixels = resample(bgr, size)
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR) if pixels.ndim == 2 else pixels
        else:  # grey stays grey until resized: a third of the work
            pixels = resample(rgb_or_grey_pixels(img), size)
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR if pixels.ndim == 2 else cv2.COLOR_RGB2BGR)
        ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ImageError("JPEG encoding failed")
    return PreparedImage(jpeg.tobytes(), *size, width, height)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """Width and height in a JPEG's header."""
    with _pillow_errors():
        return Image.open(io.BytesIO(jpeg), formats=("JPEG",)).size


def decode_with_opencv(data: bytes, header: Image.Image, target: tuple[int, int]) -> np.ndarray | None:
    """BGR or grey pixels of an RGB or grey JPEG or PNG whose header Pillow read, a JPEG decoded at the least
    libjpeg scale that still covers ``target`` (width, height: see :func:`reduced_decoding`). None for
    anything else, or if OpenCV fails on it (the caller then decodes it another way or says why not);
    MemoryError when OpenCV runs out of memory. EXIF orientation is ignored, as by Pillow and img2dataset."""
    if header.format not in ("JPEG", "PNG") or header.mode not in ("RGB", "L"):
        return None
    grey = header.mode == "L"
    width, height = header.size
    scale, reduced = reduced_decoding(width, height, target) if header.format == "JPEG" else (1, 0)
    flags = (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION | reduced
    try:
        with _opencv_errors():
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except ImageError:
        return None
    if pixels is None or pixels.ndim != (2 if grey else 3):
        return None
    return pixels if pixels.shape[:2] == (-(-height // scale), -(-width // scale)) else None


def reduced_decoding(width: int, height: int, target: tuple[int, int]) -> tuple[int, int]:
    """The least of libjpeg's scales (1/8, 1/4, 1/2, 1) at which a ``width`` x ``height`` JPEG still
    covers ``target`` (width, height): its divisor and the OpenCV flag to add to ``IMREAD_COLOR`` or
    ``IMREAD_GRAYSCALE`` (0 in full). Decoded sizes round up."""
    for scale, flag in _REDUCED_DECODING:
        if -(-width // scale) >= target[0] and -(-height // scale) >= target[1]:
            return scale, flag
    return 1, 0


@contextlib.contextmanager
def _opencv_errors() -> Iterator[None]:
    """OpenCV's errors as MemoryError (out of memory, e.g. at the item memory cap) or ImageError."""
    try:
        yield
    except cv2.error as exc:
        if exc.code == cv2.Error.StsNoMem:
            raise MemoryError(f"OpenCV: {exc.err}") from exc
        raise ImageError(f"OpenCV failed: {exc.err}") from exc


def composite(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """Lay panels out in reading order (rows of up to ``ceil(sqrt(n))``) on a white canvas."""
    if not images:
        raise ValueError("composite needs at least one image")
    panels = [shrink(panel, shrunk_size(*panel.size)) for panel in map(to_rgb, images)]
    per_row = max(1, round(len(panels) ** 0.5 + 0.499))
    rows = [panels[i : i + per_row] for i in range(0, len(panels), per_row)]
    row_height = max(p.height for p in panels)
    scaled_rows = [
        [p.resize((max(1, round(p.width * row_height / p.height)), row_height)) for p in row] for row in rows
    ]
    width = max(sum(p.width for p in row) + gap * (len(row) - 1) for row in scaled_rows)
    height = row_height * len(rows) + gap * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in scaled_rows:
        x = 0
        for panel in row:
            canvas.paste(panel, (x, y))
            x += panel.width + gap
        y += row_height + gap
    return canvas
