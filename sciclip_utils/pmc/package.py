"""PMC inputs and article files: finding articles (legacy packages, 2026 folders, bare XML) and planning
one work item per article, reading an article's files, and mapping graphic hrefs to media files.

When several versions of an article are given, only the highest is extracted (a legacy package counts as
version 0). A graphic href maps to a file by exact stem with extension probing (full images before ``.gif``
thumbnails; never by prefix).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sciclip_utils.archives import (
    MAX_MEMBER_BYTES,
    ArchiveError,
    read_file_capped,
    read_package,
    read_regular_file,
)
from sciclip_utils.extract.items import ExtractionError, WorkItem

from .licenses import FILE_LIST_NAME

# File extensions probed for a graphic, best first: PMC ships a full image plus a ``.gif`` thumbnail.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".pdf", ".eps", ".ps", ".gif")
_STRIPPABLE_EXTENSIONS = {*IMAGE_EXTENSIONS, ".svg"}

_PMC_NAME = re.compile(r"^(PMC\d+)(?:\.(\d+))?$", re.IGNORECASE)
_PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_XML_SUFFIXES = (".nxml", ".xml")
_PMC_ID_IN_XML = re.compile(rb'<article-id[^>]*pub-id-type="pmc(?:id)?"[^>]*>\s*(?:PMC)?(\d+)\s*<')


# ---------------------------------------------------------------------------------------------- media files
def href_stem(href: str) -> str:
    """The file stem a graphic href names: its last path part without a known image extension.

    Only image extensions are stripped: ``pnas.2314795121fig01`` keeps its dots; ``fig-1.png`` -> ``fig-1``.
    """
    name = PurePosixPath(href.split("?")[0].split("#")[0].replace("\\", "/")).name
    suffix = PurePosixPath(name).suffix.lower()
    return name[: -len(suffix)] if suffix in _STRIPPABLE_EXTENSIONS else name


@dataclass(frozen=True)
class MediaIndex:
    """Image files by exact stem and by lower-cased stem, each list best first."""

    exact: dict[str, list[str]]
    folded: dict[str, list[str]]


def index_media(names: Iterable[str], prefer_dir: str = ".") -> MediaIndex:
    """Index image files by stem, best first: full images before ``.gif`` thumbnails, then files in
    ``prefer_dir`` (the XML's folder) before files elsewhere."""
    index = MediaIndex({}, {})
    for name in names:
        path = PurePosixPath(name)
        suffix = path.suffix.lower()
        if suffix not in IMAGE_EXTENSIONS or path.name.startswith("._"):
            continue
        stem = path.name[: -len(suffix)]
        index.exact.setdefault(stem, []).append(name)
        index.folded.setdefault(stem.lower(), []).append(name)

    def rank(name: str) -> tuple[int, bool, str]:
        path = PurePosixPath(name)
        return IMAGE_EXTENSIONS.index(path.suffix.lower()), str(path.parent) != prefer_dir, name

    for files in (*index.exact.values(), *index.folded.values()):
        files.sort(key=rank)
    return index


def find_image(href: str, index: MediaIndex) -> str | None:
    """The file for a graphic href: exact stem first, then the same stem case-insensitively; no prefixes."""
    stem = href_stem(href)
    found = index.exact.get(stem) or index.folded.get(stem.lower())
    return found[0] if found else None


# ------------------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class _Candidate:
    path: Path
    paper_id: str
    version: int  # 0 for unversioned names (legacy packages)


@dataclass
class Plan:
    """The work items, the items to skip (older versions, duplicates) with reasons, and the file lists."""

    items: list[WorkItem] = field(default_factory=list)
    skips: dict[str, str] = field(default_factory=dict)
    file_lists: list[Path] = field(default_factory=list)


def _name_id(name: str) -> tuple[str | None, int]:
    """``PMC123.2.xml`` -> ("PMC123", 2); ``PMC123.tar.gz`` -> ("PMC123", 0); other names -> (None, 0)."""
    match = _PMC_NAME.match(_strip_suffix(name))
    if not match:
        return None, 0
    return "PMC" + match.group(1)[3:], int(match.group(2) or 0)


def _is_article_xml_name(name: str) -> bool:
    return name.lower().endswith(".xml") and _name_id(name)[0] is not None


def _regular_files(folder: Path) -> list[os.DirEntry]:
    """Regular files directly in ``folder`` (symlinks never followed), sorted by name."""
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if e.is_file(follow_symlinks=False)), key=lambda e: e.name)


def _article_folder_id(folder: Path) -> tuple[str, int] | None:
    """(paper id, version) if ``folder`` is one article (2026 layout or an unpacked legacy package)."""
    files = _regular_files(folder)
    folder_id, folder_version = _name_id(folder.name)
    if folder_id and any(e.name.lower().endswith(_XML_SUFFIXES) for e in files):
        return folder_id, folder_version
    for entry in files:
        xml_id, xml_version = _name_id(entry.name)
        if xml_id and xml_version > 0 and entry.name.lower().endswith(".xml"):
            return xml_id, xml_version
    return None


def _bare_xml_id(path: Path) -> str:
    paper_id, _ = _name_id(path.name)
    if paper_id:
        return paper_id
    with open(path, "rb") as handle:
        found = _PMC_ID_IN_XML.search(handle.read(256 * 1024))
    return f"PMC{found.group(1).decode()}" if found else path.name.rsplit(".", 1)[0]


def _discover(path: Path, found: list[_Candidate], file_lists: list[Path], explicit: bool) -> None:
    if path.is_dir():
        article = _article_folder_id(path)
        if article is not None:
            found.append(_Candidate(path, *article))
            return
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:  # symlinks are never followed
            if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
                _discover(Path(entry.path), found, file_lists, explicit=False)
        return
    low = path.name.lower()
    if low == FILE_LIST_NAME:
        file_lists.append(path)
    elif low.endswith(_PACKAGE_SUFFIXES):
        paper_id, version = _name_id(path.name)
        found.append(_Candidate(path, paper_id or _strip_suffix(path.name), version))
    elif low.endswith(".nxml") or (low.endswith(".xml") and (explicit or _is_article_xml_name(path.name))):
        found.append(_Candidate(path, _bare_xml_id(path), _name_id(path.name)[1]))
    elif explicit:
        raise ValueError(
            f"not a PMC input: {path} (expected a .tar.gz/.tgz/.tar package, an .nxml/.xml file or a folder;"
            f" pass {FILE_LIST_NAME} with --file-list)"
        )


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suffix in (*_PACKAGE_SUFFIXES, *_XML_SUFFIXES):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan_inputs(inputs: Sequence[str | Path]) -> Plan:
    """Find every article under ``inputs``; keep the highest version of each, skip the rest with a reason."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no inputs given")
    found: list[_Candidate] = []
    plan = Plan()
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        _discover(path, found, plan.file_lists, explicit=True)
    if not found:
        raise ValueError(f"no PMC articles found in {', '.join(map(str, inputs))}")
    unique = sorted({c.path.resolve(): c for c in found}.values(), key=lambda c: str(c.path))
    by_paper: dict[str, list[_Candidate]] = {}
    for candidate in unique:
        by_paper.setdefault(candidate.paper_id, []).append(candidate)
    used_keys: set[str] = set()
    for paper_id in sorted(by_paper):
        group = by_paper[paper_id]
        best = max(group, key=lambda c: c.version)  # first of the highest version (paths sorted)
        best_name = paper_id + (f".{best.version}" if best.version else "")
        for candidate in [best, *(c for c in group if c is not best)]:
            key = paper_id + (f".{candidate.version}" if candidate.version else "")
            base, n = key, 1
            while key in used_keys:
                n += 1
                key = f"{base}~{n}"
            used_keys.add(key)
            plan.items.append(WorkItem(key=key, input=str(candidate.path), paper_id=paper_id))
            if candidate is not best:
                plan.skips[key] = (
                    f"superseded by {best_name}"
                    if candidate.version < best.version
                    else f"duplicate of {best.path}"
                )
    plan.file_lists = sorted(set(plan.file_lists))
    return plan


@dataclass
class ArticleFiles:
    """The files of one article: names, and bytes on demand (folders are read lazily, packages in full)."""

    names: list[str]
    read: Callable[[str], bytes]
    problems: list[str]


def open_article(item: WorkItem) -> tuple[ArticleFiles, str]:
    """The article's files and the name of its XML file."""
    path = Path(item.input)
    if path.is_dir():
        files = _folder_files(path)
    elif path.name.lower().endswith(_XML_SUFFIXES):
        files = _folder_files(path.parent)
        return files, path.name
    else:
        try:
            package = read_package(read_file_capped(path), path.name)
        except ArchiveError as exc:
            raise ExtractionError("package", str(exc)) from exc
        problems = [f"package: skipped {name}: {reason}" for name, reason in package.skipped]
        files = ArticleFiles(sorted(package.files), package.files.__getitem__, problems)
    return files, _choose_xml(files.names, item.paper_id)


def _folder_files(folder: Path) -> ArticleFiles:
    """Regular files directly in ``folder``, read on demand by :func:`read_regular_file` (no symlinks,
    FIFOs or devices; the archive member size cap)."""

    def read(name: str) -> bytes:
        try:
            return read_regular_file(folder / name, MAX_MEMBER_BYTES)
        except ArchiveError as exc:
            raise ArchiveError(f"{name}: {exc}") from exc

    return ArticleFiles([entry.name for entry in _regular_files(folder)], read, [])


def _choose_xml(names: list[str], paper_id: str) -> str:
    """The article XML: ``.nxml`` before ``.xml``, a name carrying the PMC id first, then the shallowest."""
    candidates = [n for n in names if n.lower().endswith(".nxml")] or [
        n for n in names if n.lower().endswith(".xml") and not PurePosixPath(n).name.startswith("._")
    ]
    if not candidates:
        raise ExtractionError("package", "no .nxml or .xml article file")
    return min(candidates, key=lambda n: (_name_id(PurePosixPath(n).name)[0] != paper_id, n.count("/"), n))
