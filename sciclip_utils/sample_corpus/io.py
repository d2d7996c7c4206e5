"""Byte-deterministic packing helpers of the sample corpus: tar, gzip, matplotlib and Pillow encoders."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from typing import Any

import numpy as np
from PIL import Image

from sciclip_utils.plots import figure_image

# 2023-01-01 00:00:00 UTC: every archive member gets this mtime, so archives depend on content only.
FIXED_MTIME = 1_672_531_200
FIXED_PS_DATE = b"%%CreationDate: Sun Jan  1 00:00:00 2023\n"

# Stream ids keep the random draws of the corpus parts independent (and eval draws apart from training).
STREAMS = {
    "arxiv": 1, "pmc": 2, "web": 3, "eval": 4, "plant": 5, "ids": 6,
}  # fmt: skip


def rng_for(seed: int, stream: str, *index: int) -> np.random.Generator:
    """An independent generator for one item, so items can be drawn in any order or process."""
    return np.random.default_rng([seed, STREAMS[stream], *index])


def gzip_bytes(data: bytes) -> bytes:
    """gzip with ``mtime=0`` and no file name in the header (like ``gzip -n``)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as stream:
        stream.write(data)
    return buffer.getvalue()


def tar_bytes(files: dict[str, bytes], *, directories: bool = True, owner: str = "") -> bytes:
    """A tar of ``files`` in the given order, with fixed metadata; parent directory entries first."""
    buffer = io.BytesIO()
    written: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth]) + "/"
                if directories and folder not in written:
                    written.add(folder)
                    tar.addfile(_info(folder, 0, tarfile.DIRTYPE, 0o755, owner))
            tar.addfile(_info(name, len(data), tarfile.REGTYPE, 0o644, owner), io.BytesIO(data))
    return buffer.getvalue()


def _info(name: str, size: int, kind: bytes, mode: int, owner: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, mode, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = owner
    return info


def figure_bytes(fig: Any, fmt: str) -> bytes:
    """Save a matplotlib Figure deterministically as pdf, eps, png or jpg."""
    buffer = io.BytesIO()
    if fmt == "pdf":
        fig.savefig(
            buffer, format="pdf", metadata={"CreationDate": None, "Producer": "sciclip sample corpus"}
        )
    elif fmt == "eps":
        import logging

        logger = logging.getLogger("matplotlib.backends.backend_ps")
        level = logger.level
        logger.setLevel(logging.ERROR)  # "does not support transparency": expected, EPS figures are opaque
        try:
            fig.savefig(buffer, format="eps")
        finally:
            logger.setLevel(level)
        return re.sub(rb"%%CreationDate: [^\n]*\n", lambda _: FIXED_PS_DATE, buffer.getvalue(), count=1)
    elif fmt == "png":
        fig.savefig(buffer, format="png", metadata={"Software": None})
    else:
        return image_bytes(figure_image(fig), fmt)
    return buffer.getvalue()


def image_bytes(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """Encode a Pillow image as jpg, png, gif or webp, without timestamps."""
    buffer = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    elif fmt == "png":
        image.save(buffer, format="PNG", optimize=False)
    elif fmt == "gif":
        image.convert("RGB").quantize(64).save(buffer, format="GIF")
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unsupported image format {fmt!r}")
    return buffer.getvalue()


def minimal_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF showing ``lines`` of text (an article PDF or a PDF-only submission)."""
    text = "".join(
        f"BT /F1 11 Tf 56 {760 - 16 * index} Td ({_pdf_escape(line)}) Tj ET\n"
        for index, line in enumerate(lines)
    ).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_document(objects)


def pdf_document(objects: list[bytes], trailer: str = "") -> bytes:
    """A PDF file of ``objects`` (numbered from 1, the first the catalog) with its cross-reference table;
    ``trailer`` adds entries to the trailer dictionary."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{trailer} >>\n".encode()
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
