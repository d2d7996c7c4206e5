"""PDF figures that are one raster image, read directly instead of rendered.

Many figures in arXiv packages are a single raster image wrapped in a PDF page (a screenshot saved as PDF,
an ``imshow`` plot exported without axes, a photograph). pdfium renders such a page by decoding,
converting and stretching the whole image, which costs several times more than inflating it (or decoding
a JPEG at a reduced scale) and shrinking it by area averaging (OpenCV's ``INTER_AREA``, as for every other
raster here). :func:`single_image_page` does the latter for the plain case and returns None for anything
else, which pdfium then renders: a page with more than one object, an image in a form, clipping,
transparency, annotations, marked content or encryption; an image that is not 8-bit grey or RGB (ICC-based
RGB is converted to sRGB as pdfium does) compressed with Flate (no predictor) or as a JPEG, or that has a
``Decode`` array, a colour-key ``Mask`` or a soft mask that is not opaque everywhere."""

from __future__ import annotations

import ctypes
import functools
import io
import re

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageCms
from zlib_ng import zlib_ng

from .images import decode_with_opencv, resample

# Keys an image dictionary may have for its pixels to be read directly; any other (Decode, DecodeParms,
# Mask, ImageMask, OC, Alternates, SMaskInData, Matte, ...) changes how the samples are read or drawn, so
# pdfium renders the page. (PNG predictors in DecodeParms, as matplotlib writes, were tried: decoding them
# here, through pdfium or libpng, costs about as much as pdfium's whole rendering.)
_PLAIN_IMAGE_KEYS = {
    b"/Type", b"/Subtype", b"/Width", b"/Height", b"/ColorSpace", b"/BitsPerComponent", b"/Filter",
    b"/Length", b"/Name", b"/Interpolate", b"/Intent", b"/Metadata", b"/StructParent", b"/ID",
}  # fmt: skip
_IMAGE_KEYS = _PLAIN_IMAGE_KEYS | {b"/SMask"}  # see _opaque
_SPACE, _DELIMITER = rb" \t\r\n\f\0", rb"/<>\[\]()%{}"
_TOKEN = re.compile(  # one token of a dictionary: delimiters, a name, a literal or hex string, anything else
    rb"[%s]*(<<|>>|\[|\]|/[^%s%s]*|\([^()\\]*\)|<[0-9A-Fa-f%s]*>|[^%s%s]+)"
    % (_SPACE, _SPACE, _DELIMITER, _SPACE, _SPACE, _DELIMITER)
)
_WHITESPACE = re.compile(rb"[%s]*\Z" % _SPACE)
_STREAM_DICTIONARY = re.compile(rb"\s*(<<.{0,4000}?>>)\s*stream\r?\n", re.S)
_REFERENCE = re.compile(rb"(\d+) (\d+) R")
_DICTIONARY_WINDOW = 4096  # bytes searched before an image's data for its dictionary
_FILTERS = (["FlateDecode"], ["DCTDecode"])
_CHANNELS = {  # (pdfium's colour space, bits per pixel) -> channels
    (pdfium_c.FPDF_COLORSPACE_DEVICEGRAY, 8): 1,
    (pdfium_c.FPDF_COLORSPACE_DEVICERGB, 24): 3,
}
if hasattr(pdfium_c, "FPDFImageObj_GetIccProfileDataDecoded"):  # pdfium of 2025 on (pypdfium2 5.x)
    _CHANNELS[(pdfium_c.FPDF_COLORSPACE_ICCBASED, 24)] = 3


def single_image_page(
    data: bytes, pdf: pdfium.PdfDocument, page: pdfium.PdfPage, size: tuple[int, int], max_pixels: int
) -> np.ndarray | None:
    """The page as pdfium renders it at ``size`` (width, height), its image shrunk by area averaging, when
    it is one plain raster image (see the module's docstring): grey or RGB pixels on white; else None."""
    image = _only_image(pdf, page)
    if image is None:
        return None
    metadata = image.get_metadata()
    width, height = metadata.width, metadata.height
    channels = _CHANNELS.get((metadata.colorspace, metadata.bits_per_pixel))
    filters = image.get_filters()
    if channels is None or not 0 < width * height <= max_pixels or filters not in _FILTERS:
        return None
    compressed = _raw_data(image)
    entries = _image_dictionary(data, compressed)
    if entries is None or not entries.keys() <= _IMAGE_KEYS or entries.get(b"/BitsPerComponent") != b"8":
        return None
    if b"/SMask" in entries and not _opaque(data, entries[b"/SMask"], width, height):
        return None
    placed = _placement(page, image, size)
    if placed is None:
        return None
    (left, top, right, bottom), transposed, mirrored, flipped = placed
    if filters == ["DCTDecode"]:  # decoded at the least libjpeg scale that keeps the size it is drawn at
        target = (bottom - top, right - left) if transposed else (right - left, bottom - top)
        pixels = _jpeg_pixels(compressed, width, height, channels, target)
    else:
        pixels = _inflate(compressed, width * height * channels)
        shape = (height, width, 3) if channels == 3 else (height, width)
        pixels = None if pixels is None else pixels.reshape(shape)
    if pixels is None:
        return None
    pixels = pixels.swapaxes(0, 1) if transposed else pixels
    pixels = pixels[:, ::-1] if mirrored else pixels
    small = _shrink(pixels[::-1] if flipped else pixels, (right - left, bottom - top))
    if metadata.colorspace == pdfium_c.FPDF_COLORSPACE_ICCBASED:
        small = _to_srgb(small, _icc_profile(image, page))
        if small is None:
            return None
    canvas = np.full((size[1], size[0], *small.shape[2:]), 255, np.uint8)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, size[0]), min(bottom, size[1])
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1] = small[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def _only_image(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> pdfium.PdfImage | None:
    """The page's one object when it is an image drawn as is (no clipping, transparency, marks or
    annotations over it) in an unencrypted document."""
    if pdfium_c.FPDF_GetSecurityHandlerRevision(pdf.raw) != -1 or pdfium_c.FPDFPage_GetAnnotCount(page.raw):
        return None
    if pdfium_c.FPDFPage_CountObjects(page.raw) != 1:
        return None
    handle = pdfium_c.FPDFPage_GetObject(page.raw, 0)
    if pdfium_c.FPDFPageObj_GetType(handle) != pdfium_c.FPDF_PAGEOBJ_IMAGE:
        return None
    if pdfium_c.FPDFPageObj_HasTransparency(handle) or pdfium_c.FPDFPageObj_CountMarks(handle):
        return None
    clip = pdfium_c.FPDFPageObj_GetClipPath(handle)
    if clip and pdfium_c.FPDFClipPath_CountPaths(clip) != -1:  # -1: no clipping at all
        return None
    return pdfium.PdfImage(handle, page=page, pdf=pdf)


def _raw_data(image: pdfium.PdfImage) -> bytes:
    """The image's stream data as stored in the file (still compressed)."""
    length = pdfium_c.FPDFImageObj_GetImageDataRaw(image.raw, None, 0)
    buffer = ctypes.create_string_buffer(length)
    pdfium_c.FPDFImageObj_GetImageDataRaw(image.raw, buffer, length)
    return buffer.raw


def _image_dictionary(data: bytes, compressed: bytes) -> dict[bytes, bytes] | None:
    """The dictionary of the one stream in ``data`` that holds ``compressed``; None if that is not certain."""
    head = compressed[:512]
    start = data.find(head)
    if (
        not head
        or start < 0
        or data.find(head, start + 1) >= 0
        or data[start : start + len(compressed)] != compressed
    ):
        return None
    before = data.rfind(b"obj", max(0, start - _DICTIONARY_WINDOW), start)
    found = _STREAM_DICTIONARY.fullmatch(data, before + 3, start) if before >= 0 else None
    return _dictionary(found.group(1)) if found else None


def _dictionary(text: bytes) -> dict[bytes, bytes] | None:
    """The top-level entries of a PDF dictionary ``<< ... >>``: key -> its value's tokens joined by
    spaces (``/FlateDecode``, ``[ /FlateDecode ]``, ``12 0 R``); None if ``text`` is not one."""
    tokens, position = [], 0
    while not _WHITESPACE.match(text, position):
        token = _TOKEN.match(text, position)
        if token is None:
            return None
        tokens.append(token.group(1))
        position = token.end()
    if len(tokens) < 2 or tokens[0] != b"<<" or tokens[-1] != b">>":
        return None
    entries, index, end = {}, 1, len(tokens) - 1
    while index < end:
        key, index = tokens[index], index + 1
        if not key.startswith(b"/") or index >= end:
            return None
        start, depth = index, 0
        while True:  # one value: a token, or a balanced array or dictionary
            depth += {b"<<": 1, b"[": 1, b">>": -1, b"]": -1}.get(tokens[index], 0)
            index += 1
            if depth <= 0 or index >= end:
                break
        if depth != 0:
            return None
        if index == start + 1 and index + 1 < end and tokens[index + 1] == b"R":  # number, generation, R
            index += 2
        entries[key] = b" ".join(tokens[start:index])
    return entries


def _opaque(data: bytes, reference: bytes, width: int, height: int) -> bool:
    """Whether the soft mask ``reference`` (``N G R``) is a plain 8-bit grey image of the image's size with
    every value 255, so that drawing the image with it is drawing the image alone."""
    found = _REFERENCE.fullmatch(reference)
    if found is None:
        return False
    number, generation = found.groups()
    definitions = [
        definition.end()
        for definition in re.finditer(rb"%s\s+%s\s+obj" % (number, generation), data)
        if not data[definition.start() - 1 : definition.start()].isdigit()
    ]
    if not definitions:
        return False
    dictionary = _STREAM_DICTIONARY.match(data, definitions[-1])  # the last one is in force
    entries = _dictionary(dictionary.group(1)) if dictionary else None
    plain = {b"/Width": str(width).encode(), b"/Height": str(height).encode(), b"/BitsPerComponent": b"8"}
    if entries is None or not entries.keys() <= _PLAIN_IMAGE_KEYS:
        return False
    if any(entries.get(key) != value for key, value in plain.items()):
        return False
    colour_space, filters = entries.get(b"/ColorSpace"), _filters(entries.get(b"/Filter"))
    if colour_space != b"/DeviceGray" or filters != [b"/FlateDecode"]:
        return False
    alpha = _inflate(memoryview(data)[dictionary.end() :], width * height)
    return alpha is not None and int(alpha.min()) == 255


def _filters(value: bytes | None) -> list[bytes]:
    """``/F`` or ``[ /F /G ]`` as a list of names."""
    return value.strip(b"[] ").split() if value else []


def _inflate(compressed: bytes | memoryview, length: int) -> np.ndarray | None:
    """Exactly ``length`` bytes inflated from the start of ``compressed``, or None (corrupt or too short)."""
    try:
        inflated = zlib_ng.decompressobj().decompress(compressed, length)
    except zlib_ng.error:
        return None
    return np.frombuffer(inflated, np.uint8) if len(inflated) == length else None


def _jpeg_pixels(
    jpeg: bytes, width: int, height: int, channels: int, target: tuple[int, int]
) -> np.ndarray | None:
    """A JPEG's grey or RGB samples, decoded at the least libjpeg scale (1/8, 1/4, 1/2, 1) that keeps
    ``target`` (width, height); None unless it is a ``width`` x ``height`` JPEG of ``channels`` channels
    (MemoryError when OpenCV runs out of memory: the item's memory failure, not pdfium's to retry)."""
    try:
        header = Image.open(io.BytesIO(jpeg), formats=("JPEG",))
    except Exception:  # Pillow raises many types for junk; pdfium then renders the page
        return None
    if header.size != (width, height) or header.mode != ("L" if channels == 1 else "RGB"):
        return None
    pixels = decode_with_opencv(jpeg, header, target)
    return pixels if pixels is None or channels == 1 else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _placement(page: pdfium.PdfPage, image: pdfium.PdfImage, size: tuple[int, int]) -> tuple | None:
    """Where the image lands on the ``size`` bitmap pdfium would render (page rotation included): its box
    (left, top, right, bottom), and whether its samples are to be transposed (rows running down), then
    mirrored and flipped to be drawn upright into the box; None unless the image is axis-aligned."""
    a, b, c, d, e, f = image.get_matrix().get()

    def device(u: float, v: float) -> tuple[int, int]:
        x, y = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, *size, 0, a * u + c * v + e, b * u + d * v + f, x, y)
        return x.value, y.value

    origin, row_end, last_row = device(0, 1), device(1, 1), device(0, 0)  # image space: row 0 at the top
    along_row = (row_end[0] - origin[0], row_end[1] - origin[1])
    down = (last_row[0] - origin[0], last_row[1] - origin[1])
    if (along_row[1] or down[0]) and (along_row[0] or down[1]):
        return None
    transposed = along_row[0] == 0
    if transposed:  # rows run vertically: once transposed, the columns are the rows
        along_row, down = down, along_row
    left, right = sorted((origin[0], origin[0] + along_row[0]))
    top, bottom = sorted((origin[1], origin[1] + down[1]))
    box = (left, top, max(right, left + 1), max(bottom, top + 1))
    return box, transposed, along_row[0] < 0, down[1] < 0


def _shrink(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` at ``size`` by area averaging (OpenCV's ``INTER_AREA``, as :func:`resample` for 2x and
    more), in two steps when over 4x: whole blocks of half the factor first (OpenCV's fast integer case),
    then the rest. On text screenshots this is within 1 grey level (mean) of one step, at half the cost."""
    block = int(min(pixels.shape[1] / size[0], pixels.shape[0] / size[1]) / 2)
    if block >= 2:
        pixels = cv2.resize(pixels, None, fx=1 / block, fy=1 / block, interpolation=cv2.INTER_AREA)
    return resample(np.ascontiguousarray(pixels), size)


def _icc_profile(image: pdfium.PdfImage, page: pdfium.PdfPage) -> bytes:
    """The image's embedded ICC profile (its ICCBased colour space's stream)."""
    length = ctypes.c_ulong()
    pdfium_c.FPDFImageObj_GetIccProfileDataDecoded(image.raw, page.raw, None, 0, length)
    buffer = (ctypes.c_ubyte * length.value)()
    pdfium_c.FPDFImageObj_GetIccProfileDataDecoded(image.raw, page.raw, buffer, length.value, length)
    return bytes(buffer)


def _to_srgb(pixels: np.ndarray, profile: bytes) -> np.ndarray | None:
    """RGB ``pixels`` converted from the embedded ICC ``profile`` to sRGB (None if it is unusable)."""
    transform = _srgb_transform(profile)
    if transform is None:
        return None
    return np.asarray(ImageCms.applyTransform(Image.fromarray(pixels), transform))


@functools.lru_cache(maxsize=16)
def _srgb_transform(profile: bytes) -> ImageCms.ImageCmsTransform | None:
    """A transform from an RGB ICC profile to sRGB (perceptual intent, as pdfium), built once per profile."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.buildTransform(source, _srgb(), "RGB", "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
