"""PDF pages that are one raster image are read directly (sciclip_utils.pdf_image): the result must be what
pdfium renders (placement, rotation, opaque soft masks, JPEG scales and ICC colour included), and every page
the direct path does not fully understand (a predictor, a Decode array, clipping, ...) must go to pdfium."""

from __future__ import annotations

import math
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import ImageCms

from sciclip_utils.images import MAX_PIXELS, MAX_SIDE, ImageError, render_pdf
from sciclip_utils.pdf_image import single_image_page
from sciclip_utils.sample_corpus.io import pdf_document


def _pixels(width: int = 600, height: int = 400, channels: int = 3) -> np.ndarray:
    """A figure-like image: a gradient, blocks of colour and thin lines."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=2)
    image = image.astype(np.uint8)
    image[height // 4 : height // 2, width // 5 : width // 2] = (200, 30, 30)
    image[::40] = 0
    return image if channels == 3 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n" % (dictionary, len(data)) + data + b"\nendstream"


def _single_image_pdf(
    pixels: np.ndarray,
    *,
    page: tuple[float, float] = (300, 200),
    matrix: str | None = None,
    rotate: int = 0,
    extra: bytes = b"",
    mask: np.ndarray | None = None,
    icc: bytes | None = None,
    predictor: bool = False,
    content_before: bytes = b"",
    content_after: bytes = b"",
    resources: bytes = b"",
    compressed: bytes | None = None,
    jpeg: bool = False,
) -> bytes:
    """A one-page PDF drawing ``pixels`` as one Flate image XObject (objects: catalog, pages, page, content,
    image, then its soft mask and ICC profile when given), as a JPEG with ``jpeg``; ``compressed`` replaces
    the image's stream."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    matrix = matrix or f"{page[0]} 0 0 {page[1]} 0 0"
    content = content_before + f"q {matrix} cm /Im0 Do Q".encode() + content_after
    samples = pixels.reshape(height, width * channels)
    if predictor:  # PNG "Up" filter on every row
        rows = np.diff(samples.astype(np.int16), axis=0, prepend=0).astype(np.uint8)
        samples = np.concatenate([np.full((height, 1), 2, np.uint8), rows], axis=1)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Rotate %d /Contents 4 0 R"
        b" /Resources << /XObject << /Im0 5 0 R >> %s >> >>" % (*page, rotate, resources),
        _stream(b"", content),
        b"",
    ]
    colour_space = b"/DeviceGray" if channels == 1 else b"/DeviceRGB"
    dictionary = b"/Type /XObject /Subtype /Image /Width %d /Height %d /BitsPerComponent 8" % (width, height)
    if mask is not None:
        objects.append(
            _stream(dictionary + b" /ColorSpace /DeviceGray /Filter /FlateDecode", zlib.compress(mask))
        )
        dictionary += b" /SMask %d 0 R" % len(objects)
    if icc is not None:
        objects.append(_stream(b"/N 3", icc))
        colour_space = b"[/ICCBased %d 0 R]" % len(objects)
    if predictor:
        dictionary += b" /DecodeParms << /Predictor 15 /Colors %d /Columns %d >>" % (channels, width)
    if jpeg:
        bgr = pixels if channels == 1 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        compressed = compressed or cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    compressed = compressed or zlib.compress(samples.tobytes())
    dictionary += b" /ColorSpace %s /Filter /%s %s" % (
        colour_space,
        b"DCTDecode" if jpeg else b"FlateDecode",
        extra,
    )
    objects[4] = _stream(dictionary, compressed)
    return pdf_document(objects)


def _pdfium_render(data: bytes) -> np.ndarray:
    page = pdfium.PdfDocument(data)[0]
    scale = MAX_SIDE / max(page.get_size())
    return np.asarray(page.render(scale=scale, fill_color=(255, 255, 255, 255)).to_pil().convert("RGB"))


def _direct(data: bytes) -> np.ndarray | None:
    pdf = pdfium.PdfDocument(data)
    page = pdf[0]
    width, height = page.get_size()
    scale = MAX_SIDE / max(width, height)
    return single_image_page(
        data, pdf, page, (math.ceil(width * scale), math.ceil(height * scale)), MAX_PIXELS
    )


def _difference(ours: np.ndarray, pdfium_pixels: np.ndarray, reduction: int = 4) -> float:
    """Mean absolute difference at 1/``reduction`` of the size: placement and colour, not the resampling
    filters (area averaging here; pdfium's stretching, which darkens thin text strokes, there)."""
    ours = ours if ours.ndim == 3 else cv2.cvtColor(ours, cv2.COLOR_GRAY2RGB)
    assert ours.shape == pdfium_pixels.shape
    size = (ours.shape[1] // reduction, ours.shape[0] // reduction)
    reduce = lambda pixels: cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(float)  # noqa: E731
    return float(np.abs(reduce(ours) - reduce(pdfium_pixels)).mean())


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


needs_icc = pytest.mark.skipif(
    not hasattr(pdfium_c, "FPDFImageObj_GetIccProfileDataDecoded"),
    reason="this pypdfium2's pdfium cannot give an image's ICC profile (5.x can): ICC-based images go to pdfium",
)
ICC_CASES = {"icc-based rgb", "icc-based jpeg"}

DIRECT = {
    "rgb, whole page": dict(pixels=_pixels()),
    "grey": dict(pixels=_pixels(channels=1)),
    "opaque soft mask": dict(pixels=_pixels(channels=1), mask=np.full((400, 600), 255, np.uint8)),
    "icc-based rgb": dict(pixels=_pixels(), icc=_srgb_profile()),
    "inside margins": dict(pixels=_pixels(), page=(400, 300), matrix="300 0 0 200 50 60"),
    "flipped upside down": dict(pixels=_pixels(), matrix="300 0 0 -200 0 200"),
    "turned by its matrix": dict(pixels=_pixels(), page=(200, 300), matrix="0 300 -200 0 200 0"),
    "page rotated": dict(pixels=_pixels(), rotate=90),
    "small image, enlarged": dict(pixels=_pixels(60, 40)),
    "wider than the page": dict(pixels=_pixels(), matrix="450 0 0 200 -75 0"),
    "jpeg": dict(pixels=_pixels(), jpeg=True),
    "grey jpeg": dict(pixels=_pixels(channels=1), jpeg=True),
    "large jpeg, decoded at 1/2": dict(pixels=_pixels(1600, 1000), page=(480, 300), jpeg=True),
    "large jpeg in a corner, at 1/8": dict(
        pixels=_pixels(2400, 1600), page=(600, 400), matrix="150 0 0 100 0 0", jpeg=True
    ),
    "jpeg, turned, on a rotated page": dict(
        pixels=_pixels(), page=(200, 300), matrix="0 300 -200 0 200 0", rotate=270, jpeg=True
    ),
    "icc-based jpeg": dict(pixels=_pixels(), icc=_srgb_profile(), jpeg=True),
}


@pytest.mark.parametrize(
    "case", [pytest.param(case, marks=[needs_icc] if case in ICC_CASES else []) for case in DIRECT]
)
def test_a_plain_single_image_page_is_read_directly_as_pdfium_renders_it(case: str) -> None:
    data = _single_image_pdf(**DIRECT[case])
    ours = _direct(data)
    assert ours is not None, "the direct path should take this page"
    assert _difference(ours, _pdfium_render(data)) < 2.0
    rgb = ours if ours.ndim == 3 else cv2.cvtColor(ours, cv2.COLOR_GRAY2RGB)
    assert np.array_equal(np.asarray(render_pdf(data)), rgb)  # render_pdf takes the direct path, gives RGB


PDFIUM = {
    "decode array": dict(pixels=_pixels(), extra=b"/Decode [1 0 1 0 1 0]"),
    "colour-key mask": dict(pixels=_pixels(), extra=b"/Mask [0 10 0 10 0 10]"),
    "translucent soft mask": dict(pixels=_pixels(channels=1), mask=np.full((400, 600), 128, np.uint8)),
    "clipped": dict(pixels=_pixels(), content_before=b"0 0 100 100 re W n "),
    "a second object": dict(pixels=_pixels(), content_after=b" 0 0 1 rg 10 10 50 50 re f"),
    "rotated by 30 degrees": dict(pixels=_pixels(), matrix="260 150 -100 173 100 0"),
    "png predictor": dict(pixels=_pixels(), predictor=True),
    "jpeg with a colour transform": dict(
        pixels=_pixels(), jpeg=True, extra=b"/DecodeParms << /ColorTransform 0 >>"
    ),
    "jpeg of another size": dict(
        pixels=_pixels(), jpeg=True, compressed=cv2.imencode(".jpg", _pixels(300, 200))[1].tobytes()
    ),
    "transparent graphics state": dict(
        pixels=_pixels(), content_before=b"/GS0 gs ", resources=b"/ExtGState << /GS0 << /ca 0.5 >> >>"
    ),
}


@pytest.mark.parametrize("case", list(PDFIUM))
def test_anything_else_is_rendered_by_pdfium(case: str) -> None:
    data = _single_image_pdf(**PDFIUM[case])
    assert _direct(data) is None
    assert np.array_equal(np.asarray(render_pdf(data).convert("RGB")), _pdfium_render(data))


def test_broken_image_data_goes_to_pdfium() -> None:
    pixels = _pixels()
    broken = _single_image_pdf(pixels, compressed=bytes(64) + zlib.compress(pixels.tobytes())[64:])
    assert _direct(broken) is None
    assert render_pdf(broken).size == (512, 342)  # pdfium's rendering, whatever it makes of the data


SINGLE_IMAGE_FIGURES = {  # real arXiv figures that are one image in a PDF page
    "kepler-flares1.gz": ["fig3.pdf", "fig7a.pdf", "fig7c.pdf"],  # grey, opaque soft mask
    "2004.14974.gz": [
        "./figures/claim-interface-fig.pdf",
        "./figures/evidence-interface-fig.pdf",
    ],  # ICC, /Rotate
}


@pytest.mark.parametrize(
    "paper",
    [pytest.param(paper, marks=[needs_icc] if "2004" in paper else []) for paper in SINGLE_IMAGE_FIGURES],
)
def test_real_single_image_figures_match_pdfium(fixtures_dir: Path, paper: str) -> None:
    with tarfile.open(fixtures_dir / "arxiv" / paper) as package:
        for name in SINGLE_IMAGE_FIGURES[paper]:
            data = package.extractfile(name).read()
            ours = _direct(data)
            assert ours is not None, name
            assert _difference(ours, _pdfium_render(data), reduction=8) < 2.0, name  # text screenshots


@needs_icc
def test_icc_colours_are_converted_as_pdfium_converts_them(fixtures_dir: Path) -> None:
    """A screenshot with a display's ICC profile: flat areas (buttons, panels) have pdfium's colours."""
    with tarfile.open(fixtures_dir / "arxiv" / "2004.14974.gz") as package:
        data = package.extractfile("./figures/claim-interface-fig.pdf").read()
    ours, reference = _direct(data).astype(int), _pdfium_render(data).astype(int)
    grey = cv2.cvtColor(reference.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    kernel = np.ones((5, 5), np.uint8)
    flat = (cv2.dilate(grey, kernel).astype(int) - cv2.erode(grey, kernel) <= 3) & (grey < 235)
    assert flat.sum() > 50
    assert np.abs(ours[flat] - reference[flat]).mean() < 1.0


def test_the_direct_path_reads_no_more_than_the_image_declares() -> None:
    """A Flate stream that inflates far beyond width x height x channels is read only that far."""
    pixels = _pixels()
    bomb = zlib.compress(pixels.tobytes() + bytes(64 * 2**20))
    ours = _direct(_single_image_pdf(pixels, compressed=bomb))
    assert ours is not None and np.array_equal(ours, _direct(_single_image_pdf(pixels)))


def test_mutated_single_image_pages_give_an_image_or_an_image_error() -> None:
    """Random damage to the dictionaries and data of single-image PDFs (the cases above): every file ends
    as an image or an ImageError, never another exception (or a crash of the process: pdfium aborts on
    some misuse, such as a buffer shorter than the data it decodes)."""
    seeds = [_single_image_pdf(**DIRECT[case]) for case in ("icc-based rgb", "opaque soft mask", "jpeg")]
    seeds.append(_single_image_pdf(**PDFIUM["png predictor"]))
    rng = np.random.default_rng(0)
    outcomes = {"image": 0, "error": 0}
    for _ in range(400):
        data = bytearray(seeds[rng.integers(len(seeds))])
        for _ in range(rng.integers(1, 6)):
            at = int(rng.integers(min(len(data), 1500)))  # mostly the objects' dictionaries
            if rng.random() < 0.7:
                data[at] = int(rng.integers(256))
            else:
                del data[at : at + int(rng.integers(1, 20))]
        try:
            render_pdf(bytes(data))
            outcomes["image"] += 1
        except ImageError:
            outcomes["error"] += 1
    assert outcomes["image"] > 100 and outcomes["error"] > 10, outcomes
