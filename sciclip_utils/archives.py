"""Safe reading of source packages: tar/gzip archives and folders, in memory, never unpacked to disk.

Unsafe members (absolute or ``..`` paths, links, devices, FIFOs) and members over the size caps are skipped
and reported; reading stops at the member-count and total-size caps. Nothing is ever written to disk.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
MAX_MEMBERS = 5_000
MAX_COMPRESSED_BYTES = 1024 * 2**20


class ArchiveError(Exception):
    """A package cannot be read at all (corrupt, truncated, unknown format); the message says why."""


@dataclass
class Package:
    """The readable files of one source package, with what was skipped and why."""

    files: dict[str, bytes] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    kind: str = "tar"


def safe_member_name(name: str) -> str | None:
    """Normalised relative POSIX path, or None if the name is absolute or escapes the package root."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    normal = posixpath.normpath(name)
    if normal in {".", ""} or normal == ".." or normal.startswith("../") or "\x00" in normal:
        return None
    return normal


def _bounded_gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing output beyond ``limit`` bytes (decompression bombs)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ArchiveError(f"corrupt gzip data: {exc}") from exc
    if len(out) > limit:
        raise ArchiveError(f"gzip data expands beyond {limit} bytes")
    if not decompressor.eof:
        raise ArchiveError("truncated gzip data")
    return out


def read_package(
    data: bytes,
    name: str = "",
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
) -> Package:
    """Read a gzip'd tar, plain tar, gzip'd single file or PDF held in memory."""
    if data[:4] == b"%PDF":
        return Package({f"{_stem(name)}.pdf": data}, kind="pdf")
    if data[:2] == b"\x1f\x8b":
        inner = _bounded_gunzip(data, max_total_bytes)
        if _is_tar(inner):
            return _read_tar(inner, max_member_bytes, max_total_bytes, max_members)
        if inner[:4] == b"%PDF":
            return Package({f"{_stem(name)}.pdf": inner}, kind="pdf")
        if len(inner) > max_member_bytes:
            return Package(skipped=[(name, f"file over {max_member_bytes} bytes")], kind="tex")
        return Package({f"{_stem(name)}.tex": inner}, kind="tex")
    if _is_tar(data):
        return _read_tar(data, max_member_bytes, max_total_bytes, max_members)
    raise ArchiveError("not a gzip, tar or PDF file")


def _stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".tar.gz", ".tgz", ".gz", ".tar"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base or "main"


def _is_tar(data: bytes) -> bool:
    return len(data) >= 512 and data[257:262] == b"ustar"


def _read_tar(data: bytes, max_member_bytes: int, max_total_bytes: int, max_members: int) -> Package:
    package = Package(kind="tar")
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for count, member in enumerate(tar):
                if count >= max_members:
                    package.skipped.append(("*", f"more than {max_members} members; rest not read"))
                    break
                reason = _member_problem(member, max_member_bytes)
                safe = safe_member_name(member.name)
                if member.isdir():
                    continue
                if reason is None and safe is None:
                    reason = "unsafe path"
                if reason is None and total + member.size > max_total_bytes:
                    reason = f"total unpacked size over {max_total_bytes} bytes"
                if reason is not None:
                    package.skipped.append((member.name, reason))
                    continue
                handle = tar.extractfile(member)
                package.files[safe] = handle.read() if handle else b""
                total += member.size
    except (tarfile.TarError, EOFError, OSError) as exc:
        if not package.files:
            raise ArchiveError(f"corrupt tar: {exc}") from exc
        package.skipped.append(("*", f"tar truncated or corrupt after {len(package.files)} files: {exc}"))
    return package


def _member_problem(member: tarfile.TarInfo, max_member_bytes: int) -> str | None:
    if member.issym() or member.islnk():
        return "link member"
    if member.isdev() or member.isfifo():
        return "device or fifo member"
    if not member.isfile() and not member.isdir():
        return "unsupported member type"
    if member.size > max_member_bytes:
        return f"member over {max_member_bytes} bytes"
    return None


def read_directory(
    path: str | Path,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
) -> Package:
    """Read the regular files under ``path`` (symlinks are skipped, never followed)."""
    root = Path(path)
    if not root.is_dir():
        raise ArchiveError(f"not a directory: {root}")
    package = Package(kind="dir")
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            name = full.relative_to(root).as_posix()
            info = full.lstat()
            if len(package.files) >= max_members:
                package.skipped.append(("*", f"more than {max_members} files; rest not read"))
                return package
            if stat.S_ISLNK(info.st_mode):
                package.skipped.append((name, "symbolic link"))
            elif not stat.S_ISREG(info.st_mode):
                package.skipped.append((name, "not a regular file"))
            elif info.st_size > max_member_bytes:
                package.skipped.append((name, f"member over {max_member_bytes} bytes"))
            elif total + info.st_size > max_total_bytes:
                package.skipped.append((name, f"total size over {max_total_bytes} bytes"))
            else:
                package.files[name] = full.read_bytes()
                total += info.st_size
    return package


def read_file_capped(path: str | Path, limit: int = MAX_COMPRESSED_BYTES) -> bytes:
    """Read a whole input file, refusing files over ``limit`` bytes."""
    size = Path(path).stat().st_size
    if size > limit:
        raise ArchiveError(f"file over {limit} bytes: {path}")
    return Path(path).read_bytes()


def iter_tar_members(path: str | Path) -> Iterator[tuple[str, int, int]]:
    """Yield ``(name, data offset, size)`` of each regular member of a (bulk, uncompressed) tar."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, member.offset_data, member.size
    except tarfile.ReadError as exc:
        raise ArchiveError(f"{path}: not a readable tar: {exc}") from exc


def read_member(path: str | Path, offset: int, size: int, limit: int = MAX_COMPRESSED_BYTES) -> bytes:
    """Read one member of a bulk tar by its data offset, without reading the rest."""
    if size > limit:
        raise ArchiveError(f"member over {limit} bytes")
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise ArchiveError("truncated tar member")
    return data
