"""arXiv extraction: figure-caption pairs from LaTeX source packages.

Inputs are arXiv bulk tars (``arXiv_src_YYMM_NNN.tar`` holding ``YYMM/<id>.gz``, optionally selected by
date range through ``arXiv_src_manifest.xml``), single per-paper packages (``.gz``, ``.tar.gz``, ``.tgz``,
``.tar``), unpacked source directories, and folders of any of these. Each paper is one work item (the
contract of :mod:`sciclip_utils.extract.items`); :func:`process_item` does the per-paper work: choose the
main file, flatten its includes, find figure floats, resolve and render their images, clean their captions.
The entry point is :func:`sciclip_utils.extract.extract_arxiv`.
"""

from __future__ import annotations

import bisect
import posixpath
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from . import latex
from .archives import (
    ArchiveError,
    Package,
    iter_tar_members,
    read_directory,
    read_file_capped,
    read_member,
    read_package,
)
from .commonpool import Record
from .extract.items import ExtractionError, ItemResult, WorkItem
from .images import MAX_SIDE, ImageError, composite, load_image, prepare_image, shrink, shrunk_size, to_rgb

if TYPE_CHECKING:
    from PIL import Image

SOURCE = "arxiv"
TEX_SUFFIXES = (".tex", ".ltx", ".latex")
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".gz", ".tar")
# Probed in this order for a graphic written without a known extension (pdfLaTeX's order, then DVI's).
IMAGE_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg", ".eps", ".ps", ".mps")
EPS_CONVERTED_SUFFIX = "-eps-converted-to.pdf"
MAX_INCLUDE_DEPTH = 12
MAX_FLAT_CHARS = 16_000_000
MANIFEST_NAME = "arXiv_src_manifest.xml"
UNREADABLE = "<unreadable tar>"  # member name of the item standing for the unlisted rest of a broken bulk tar

BULK_TAR_RE = re.compile(r"^arXiv_src_(\d{4})_(\d{3})\.tar$")
BULK_MEMBER_RE = re.compile(r"^(?:[^/]+/)*[^/]+\.(?:gz|pdf)$")
NEW_ID_RE = re.compile(r"^(\d{4})\.\d{4,5}(?:v\d+)?$")
OLD_ID_RE = re.compile(r"^([a-z][a-z-]*(?:\.[A-Z]{2})?)(\d{2})(\d{2})(\d{3})(v\d+)?$")
YYMM_RE = re.compile(r"^\d{2}(0[1-9]|1[0-2])$")
BEGIN_DOCUMENT_RE = re.compile(r"\\begin\s*\{document\}")
END_DOCUMENT_RE = re.compile(r"\\end\s*\{document\}")
DOCUMENTCLASS_RE = re.compile(r"\\document(?:class|style)\b\s*(?:\[[^\]]*\])?\s*\{\s*([^}]*)\}")
# Name tokens of files that are not the paper: old drafts, referee replies, journal templates.
DISTRACTOR_TOKENS = frozenset(
    {
        "old",
        "draft",
        "response",
        "responses",
        "reply",
        "rebuttal",
        "template",
        "templates",
        "sample",
        "samples",
        "example",
        "backup",
        "bak",
        "copy",
        "cover",
        "letter",
        "referee",
        "guide",
        "instructions",
    }
)
SUPPLEMENT_TOKENS = frozenset({"supp", "supplement", "supplementary", "supplemental", "si", "appendix"})


# ----------------------------------------------------------------------------------------------------------
# Names, ids and dates
# ----------------------------------------------------------------------------------------------------------


def paper_id_from_name(name: str) -> str:
    """arXiv id from a package file name: ``2004.14974.gz`` -> ``2004.14974``, ``hep-th9901001.gz`` ->
    ``hep-th/9901001``; other names lose their package suffix (``paper.tar.gz`` -> ``paper``)."""
    base = posixpath.basename(name.rstrip("/"))
    for suffix in (*PACKAGE_SUFFIXES, ".pdf", *TEX_SUFFIXES):
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    old = OLD_ID_RE.match(base)
    if old:
        archive, yy, mm, number, version = old.groups()
        return f"{archive}/{yy}{mm}{number}{version or ''}"
    return base


def paper_yymm(paper_id: str) -> str | None:
    """The ``YYMM`` an arXiv id was issued in, or None for names that are not arXiv ids."""
    new = NEW_ID_RE.match(paper_id)
    if new:
        return new.group(1)
    old = OLD_ID_RE.match(paper_id.replace("/", ""))
    return old.group(2) + old.group(3) if old else None


def yymm_key(yymm: str) -> int:
    """Sortable ``YYYYMM`` for an arXiv ``YYMM`` (arXiv began in 1991: ``91``-``99`` are 19xx)."""
    if not YYMM_RE.match(yymm):
        raise ValueError(f"not a YYMM month: {yymm!r} (expected e.g. 2301 for January 2023)")
    year = int(yymm[:2])
    return ((1900 if year >= 91 else 2000) + year) * 100 + int(yymm[2:])


def _in_range(yymm: str | None, start: str | None, end: str | None) -> bool:
    if yymm is None:
        return True
    key = yymm_key(yymm)
    return (start is None or key >= yymm_key(start)) and (end is None or key <= yymm_key(end))


def select_bulk_tars(
    manifest_xml: str | Path | bytes, start: str | None = None, end: str | None = None
) -> list[str]:
    """File names (``arXiv_src_YYMM_NNN.tar``) that the bulk manifest lists for months ``start..end``
    (inclusive ``YYMM`` bounds; None = open), in manifest order."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    if isinstance(manifest_xml, bytes):
        root = etree.fromstring(manifest_xml, parser)
    else:
        root = etree.parse(str(manifest_xml), parser).getroot()
    selected = []
    for entry in root.iter("file"):
        filename = (entry.findtext("filename") or "").strip()
        yymm = (entry.findtext("yymm") or "").strip()
        if not filename:
            continue
        name = posixpath.basename(filename)
        if not yymm:
            bulk = BULK_TAR_RE.match(name)
            yymm = bulk.group(1) if bulk else ""
        if yymm and _in_range(yymm, start, end):
            selected.append(name)
    return selected


# ----------------------------------------------------------------------------------------------------------
# Inputs -> work items
# ----------------------------------------------------------------------------------------------------------


def _is_package_file(path: Path) -> bool:
    return path.name.lower().endswith(PACKAGE_SUFFIXES) and not path.name.startswith(".")


def _is_source_dir(path: Path) -> bool:
    return any(
        child.is_file() and child.name.lower().endswith(TEX_SUFFIXES) and not child.name.startswith(".")
        for child in path.iterdir()
    )


def _is_bulk_tar(path: Path) -> bool:
    if BULK_TAR_RE.match(path.name):
        return True
    if path.suffix.lower() != ".tar":
        return False
    names = []
    try:
        for name, _offset, _size in iter_tar_members(path):
            names.append(name)
            if len(names) >= 20:
                break
    except ArchiveError:
        return False
    return bool(names) and all(BULK_MEMBER_RE.match(name) and "/" in name for name in names)


def _bulk_items(tar: Path) -> Iterator[WorkItem]:
    """One item per paper of a bulk tar; an unreadable (e.g. truncated) tar adds one item that fails."""
    resolved = tar.resolve()
    try:
        for member, offset, size in iter_tar_members(tar):
            if BULK_MEMBER_RE.match(member) and not posixpath.basename(member).startswith("."):
                yield WorkItem(
                    key=f"{resolved}::{member}",
                    input=str(tar),
                    paper_id=paper_id_from_name(member),
                    member=member,
                    offset=offset,
                    size=size,
                )
    except ArchiveError as error:
        yield WorkItem(
            key=f"{resolved}::{UNREADABLE}", input=str(tar), paper_id=tar.name, member=f"{UNREADABLE} {error}"
        )


def _single_item(path: Path) -> WorkItem:
    return WorkItem(key=str(path.resolve()), input=str(path), paper_id=paper_id_from_name(path.name))


def _manifest_months(manifest: Path) -> dict[str, str]:
    """Bulk tar file name -> YYMM, as listed in a bulk manifest."""
    months = {}
    for name in select_bulk_tars(manifest):
        bulk = BULK_TAR_RE.match(name)
        if bulk:
            months[name] = bulk.group(1)
    return months


@dataclass
class _Collector:
    start: str | None
    end: str | None
    items: list[WorkItem] = field(default_factory=list)
    packages_seen: int = 0  # bulk tars, manifests, package files and source folders, in the date range or not

    def add_bulk(self, tar: Path, yymm: str | None) -> None:
        self.packages_seen += 1
        bulk = BULK_TAR_RE.match(tar.name)
        if _in_range(yymm or (bulk.group(1) if bulk else None), self.start, self.end):
            self.items.extend(_bulk_items(tar))

    def add_file(self, path: Path) -> None:
        if _is_bulk_tar(path):
            self.add_bulk(path, None)
        else:
            self.packages_seen += 1
            item = _single_item(path)
            if _in_range(paper_yymm(item.paper_id), self.start, self.end):
                self.items.append(item)

    def add_manifest(self, manifest: Path) -> None:
        self.packages_seen += 1
        names = select_bulk_tars(manifest, self.start, self.end)
        missing = [name for name in names if not (manifest.parent / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{manifest} selects {len(missing)} bulk tar(s) not present beside it, e.g. {missing[:3]}"
            )
        for name in names:
            self.items.extend(_bulk_items(manifest.parent / name))

    def add_folder(self, folder: Path) -> None:
        if _is_source_dir(folder):
            self.packages_seen += 1
            item = WorkItem(key=str(folder.resolve()), input=str(folder), paper_id=folder.resolve().name)
            if _in_range(paper_yymm(item.paper_id), self.start, self.end):
                self.items.append(item)
            return
        manifest = folder / MANIFEST_NAME
        months = _manifest_months(manifest) if manifest.is_file() else {}
        for child in sorted(folder.iterdir()):
            if child.name.startswith(".") or child.is_symlink():
                continue
            if child.is_dir():
                self.add_folder(child)
            elif child.is_file() and _is_package_file(child):
                if child.name in months:
                    self.add_bulk(child, months[child.name])
                else:
                    self.add_file(child)


def build_work_items(
    inputs: Sequence[str | Path], *, start: str | None = None, end: str | None = None
) -> list[WorkItem]:
    """One work item per paper found in ``inputs`` (files, source dirs, folders, bulk tars, a bulk
    manifest), keeping bulk tars and arXiv-id papers of months ``start..end``; sorted by key. Raises
    ValueError when the inputs hold no arXiv package at all (an empty folder, one of ``.txt`` files)."""
    bounds = [yymm_key(bound) for bound in (start, end) if bound is not None]
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        raise ValueError(f"date range is empty: {start} is after {end}")
    collector = _Collector(start, end)
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"input(s) not found: {', '.join(missing)}")
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            collector.add_folder(path)
        elif path.name == MANIFEST_NAME or path.suffix.lower() == ".xml":
            collector.add_manifest(path)
        else:
            collector.add_file(path)
    if not collector.packages_seen:
        raise ValueError(
            f"no arXiv packages found in {', '.join(map(str, inputs))} (expected bulk tars, "
            f"{MANIFEST_NAME}, per-paper .gz/.tar.gz/.tar files or source folders holding a .tex file)"
        )
    unique = {item.key: item for item in collector.items}
    return [unique[key] for key in sorted(unique)]


# ----------------------------------------------------------------------------------------------------------
# One paper: main file, includes, figures, images
# ----------------------------------------------------------------------------------------------------------


def _name_tokens(name: str) -> set[str]:
    stem = name.rsplit(".", 1)[0] if "." in posixpath.basename(name) else name
    return {token for token in re.split(r"[^a-z]+", stem.lower()) if token}


def _is_junk(name: str) -> bool:
    """macOS resource forks and metadata folders."""
    return name.startswith("__MACOSX/") or "/__MACOSX/" in name or posixpath.basename(name).startswith("._")


@dataclass
class _Flat:
    """A main file with its includes inlined, and which file each stretch of text came from."""

    text: str
    span_starts: list[int]
    span_files: list[str]

    def file_at(self, offset: int) -> str:
        return self.span_files[max(0, bisect.bisect_right(self.span_starts, offset) - 1)]


class Project:
    """The files of one paper's source package, with main-file choice and path resolution."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = {name: data for name, data in files.items() if not _is_junk(name)}
        self.problems: list[str] = []
        self._exact = {posixpath.normpath(name): name for name in self.files}
        self._folded = {key.lower(): name for key, name in sorted(self._exact.items(), reverse=True)}
        self._sources: dict[str, str] = {}
        self._include_cache: dict[tuple[str, str], list[str]] = {}

    # -- text files --------------------------------------------------------------------------------------
    def source(self, name: str) -> str:
        """Decoded, comment-stripped text of a TeX file (cached)."""
        if name not in self._sources:
            self._sources[name] = latex.strip_comments(latex.decode_tex(self.files[name]))
        return self._sources[name]

    @cached_property
    def tex_files(self) -> list[str]:
        return sorted(name for name in self.files if name.lower().endswith(TEX_SUFFIXES))

    def lookup(self, path: str) -> str | None:
        """The package member for a relative path (exact, then case-insensitive), or None."""
        key = posixpath.normpath(path.replace("\\", "/")) if path else ""
        if not key or key == "." or key.startswith(("../", "/")):
            return None
        return self._exact.get(key) or self._folded.get(key.lower())

    def resolve_include(self, target: str, command: str, including: str, main: str) -> str | None:
        """The TeX file an ``\\input``/``\\include``/``\\subfile``/``\\import`` refers to."""
        target = target.strip().strip('"').strip()
        if not target:
            return None
        bases = dict.fromkeys((posixpath.dirname(main), posixpath.dirname(including)))
        has_tex = target.lower().endswith(TEX_SUFFIXES)
        for base in bases:
            path = posixpath.join(base, target)
            candidates = [path] if has_tex else [path + ".tex", path]
            for candidate in candidates:
                found = self.lookup(candidate)
                if found and not found.lower().endswith(IMAGE_EXTENSIONS):
                    return found
        return None

    # -- main file ---------------------------------------------------------------------------------------
    def _includes(self, name: str, main: str) -> list[str]:
        """TeX files that ``name`` includes, resolved as when compiling ``main``."""
        key = (name, main)
        if key not in self._include_cache:
            found = []
            for _start, _end, command, target in latex.find_includes(self.source(name)):
                resolved = self.resolve_include(target, command, name, main)
                if resolved and resolved != name:
                    found.append(resolved)
            self._include_cache[key] = found
        return self._include_cache[key]

    def reachable(self, main: str) -> set[str]:
        """``main`` and every TeX file its includes reach."""
        seen, stack = {main}, [main]
        while stack:
            for child in self._includes(stack.pop(), main):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def main_file_ranking(self) -> list[tuple[float, int, str]]:
        """Candidates as ``(score, reachable bytes, name)``, best first. A root document has
        ``\\documentclass`` and ``\\begin{document}`` (itself or through its includes), a same-named
        ``.bbl``, is included by no other file, and is not named like a draft, template or reply."""
        included_by_others = {child for name in self.tex_files for child in self._includes(name, name)}
        ranked = []
        for name in self.tex_files:
            reach = self.reachable(name)
            texts = [self.source(member) for member in sorted(reach)]
            docclass = next(filter(None, (DOCUMENTCLASS_RE.search(text) for text in texts)), None)
            tokens = set().union(*(_name_tokens(part) for part in name.split("/")))
            score = 0.0
            if docclass:
                score += 10
                if docclass.group(1).strip().lower() in ("subfiles", "standalone"):
                    score -= 8
            if any(BEGIN_DOCUMENT_RE.search(text) for text in texts):
                score += 4
            if name.rsplit(".", 1)[0] + ".bbl" in self.files:
                score += 3
            if name in included_by_others:
                score -= 8
            if tokens & DISTRACTOR_TOKENS:
                score -= 6
            if tokens & SUPPLEMENT_TOKENS:
                score -= 3
            score -= name.count("/")
            ranked.append((score, sum(len(self.files[member]) for member in reach), name))
        ranked.sort(key=lambda entry: (-entry[0], -entry[1], entry[2]))
        return ranked

    def main_file(self) -> str | None:
        ranking = self.main_file_ranking()
        return ranking[0][2] if ranking else None

    # -- flattening --------------------------------------------------------------------------------------
    def flatten(self, main: str) -> _Flat:
        """The main file with ``\\input``/``\\include``/``\\subfile``/``\\import`` inlined (depth-limited,
        cycle-safe, size-capped); included documents contribute only their body."""
        parts: list[str] = []
        starts: list[int] = []
        files: list[str] = []
        length = 0

        def emit(text: str, name: str) -> None:
            nonlocal length
            if not text:
                return
            if length + len(text) > MAX_FLAT_CHARS:
                raise ExtractionError("latex", f"flattened source exceeds {MAX_FLAT_CHARS} characters")
            starts.append(length)
            files.append(name)
            parts.append(text)
            length += len(text)

        def walk(name: str, text: str, depth: int, stack: tuple[str, ...]) -> None:
            last = 0
            for start, end, command, target in latex.find_includes(text):
                emit(text[last:start], name)
                last = end
                resolved = self.resolve_include(target, command, name, main)
                if resolved is None:
                    self.problems.append(f"include not found: {target}")
                    emit(text[start:end], name)
                elif resolved in stack:
                    self.problems.append(f"include cycle: {resolved}")
                elif depth >= MAX_INCLUDE_DEPTH:
                    self.problems.append(f"include depth limit: {resolved}")
                else:
                    walk(resolved, _document_body(self.source(resolved)), depth + 1, (*stack, resolved))
            emit(text[last:], name)

        walk(main, self.source(main), 0, (main,))
        return _Flat("".join(parts), starts, files)

    # -- graphics ----------------------------------------------------------------------------------------
    def resolve_graphic(
        self, path: str, including: str, main: str, graphicspath: Sequence[str]
    ) -> str | None:
        """The image file ``\\includegraphics{path}`` shows. Like graphicx, each candidate name is looked
        up in the main file's directory, the including file's directory, then each ``\\graphicspath``
        entry: the name as written (if it has an image extension), then the probed extensions, upper-case
        extensions and ``-eps-converted-to.pdf`` (so ``.eps`` asked finds the ``.pdf`` shipped), then an
        extension-less name as written. Never a prefix match."""
        path = path.strip().strip('"').strip().replace("\\", "/")
        if not path:
            return None
        bases = [posixpath.dirname(main), posixpath.dirname(including)]
        dirs = dict.fromkeys(
            [*bases, *(posixpath.join(base, entry) for entry in graphicspath for base in bases)]
        )
        root, ext = posixpath.splitext(path)
        known_ext = ext.lower() in IMAGE_EXTENSIONS
        stem = root if known_ext else path
        probed = [stem + e for e in IMAGE_EXTENSIONS] + [stem + e.upper() for e in IMAGE_EXTENSIONS]
        names = [path] * known_ext + probed + [stem + EPS_CONVERTED_SUFFIX] + [path] * (not known_ext)
        for name in dict.fromkeys(names):
            for directory in dirs:
                found = self.lookup(posixpath.join(directory, name))
                if found:
                    return found
        return None


def _document_body(text: str) -> str:
    """The body of a text with its own ``\\begin{document}`` (subfiles, standalone); else the text."""
    begin = BEGIN_DOCUMENT_RE.search(text)
    if not begin:
        return text
    end = END_DOCUMENT_RE.search(text, begin.end())
    return text[begin.end() : end.start() if end else len(text)]


@dataclass
class _Stats:
    """Per-paper counters: time in image conversion and why images did not come out."""

    image_seconds: float = 0.0
    missing: int = 0
    unreadable: int = 0
    unsupported: int = 0


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def _clean(caption: str | None, macros: latex.Macros) -> str:
    return latex.caption_to_text(caption, macros).strip() if caption else ""


@dataclass
class _FigureContext:
    project: Project
    main: str
    including: str
    graphicspath: list[str]
    figure_id: str
    stats: _Stats
    problems: list[str]

    def load(self, refs: Sequence[latex.GraphicRef]) -> list[Image.Image]:
        """Loaded images for the refs that resolve; a problem for every one that does not."""
        loaded = []
        for ref in refs:
            if ref.command in ("includestandalone", "includesvg"):
                found = self._compiled_svg_or_standalone(ref)
                if found is None:
                    self.stats.unsupported += 1
                    self.problems.append(f"{self.figure_id}: unsupported graphic \\{ref.command}: {ref.path}")
                    continue
            else:
                found = self.project.resolve_graphic(ref.path, self.including, self.main, self.graphicspath)
                if found is None:
                    self.stats.missing += 1
                    self.problems.append(f"{self.figure_id}: image not found: {ref.path}")
                    continue
            started = time.perf_counter()
            try:
                image = load_image(self.project.files[found], found, max_side=MAX_SIDE)
                loaded.append(to_rgb(shrink(image, shrunk_size(*image.size))))
            except ImageError as error:
                self.stats.unreadable += 1
                self.problems.append(f"{self.figure_id}: image unreadable: {ref.path}: {error}")
            finally:
                self.stats.image_seconds += time.perf_counter() - started
        return loaded

    def _compiled_svg_or_standalone(self, ref: latex.GraphicRef) -> str | None:
        """The PDF that the svg package (``svg-inkscape/<name>_svg-tex.pdf``) or a standalone build
        left beside the source, when the authors shipped it."""
        stem = posixpath.splitext(ref.path.strip())[0]
        candidates = [stem + ".pdf"]  # resolve_graphic also probes .png, .jpg, ...
        if ref.command == "includesvg":
            candidates.insert(0, posixpath.join("svg-inkscape", posixpath.basename(stem) + "_svg-tex.pdf"))
        for candidate in candidates:
            found = self.project.resolve_graphic(candidate, self.including, self.main, self.graphicspath)
            if found:
                return found
        return None

    def record(
        self, images: list[Image.Image], text: str, paper_id: str, figure_id: str, label: str | None
    ) -> Record:
        """A pair; ``label`` (the ``\\label`` of its float or sub-figure) becomes the ``label`` column."""
        started = time.perf_counter()
        image = images[0] if len(images) == 1 else composite(images)
        prepared = prepare_image(image)
        self.stats.image_seconds += time.perf_counter() - started
        return Record(
            image=prepared,
            text=text,
            source=SOURCE,
            paper_id=paper_id,
            figure_id=figure_id,
            extra={"label": label or ""},
        )


def _figure_records(
    figure: latex.FigureFloat, ctx: _FigureContext, macros: latex.Macros, paper_id: str
) -> list[Record]:
    """Pairs from one float: one per captioned sub-figure, else one (composite) image per float."""
    fid = ctx.figure_id
    if not figure.graphics:
        reason = "tikz/pgfplots only, no image file" if figure.has_tikz else "no image in float"
        ctx.problems.append(f"{fid}: {reason}")
        return []
    try:
        caption = _clean(figure.caption, macros)
        subcaptions = [_clean(sub.caption, macros) for sub in figure.subfigures]
    except (
        Exception
    ) as error:  # one caption the cleaner cannot handle must not lose the paper's other figures
        ctx.problems.append(f"{fid}: caption could not be cleaned: {type(error).__name__}: {error}")
        return []
    if any(subcaptions):
        records = []
        in_subfigures = 0
        for index, (sub, subcaption) in enumerate(zip(figure.subfigures, subcaptions, strict=True)):
            in_subfigures += len(sub.graphics)
            text = " ".join(part for part in (caption, subcaption) if part)
            sub_id = f"{fid}{_letters(index)}"
            if not sub.graphics:
                continue
            if not text:
                ctx.problems.append(f"{sub_id}: no caption")
                continue
            images = ctx.load(sub.graphics)
            if images:
                records.append(ctx.record(images, text, paper_id, sub_id, sub.label or figure.label))
        outside = len(figure.graphics) - in_subfigures
        if outside > 0:
            ctx.problems.append(f"{fid}: {outside} image(s) outside captioned sub-figures ignored")
        return records
    if not caption:
        ctx.problems.append(f"{fid}: no caption")
        return []
    images = ctx.load(figure.graphics)
    return [ctx.record(images, caption, paper_id, fid, figure.label)] if images else []


def _read_package(item: WorkItem) -> Package:
    path = Path(item.input)
    if item.member and item.member.startswith(UNREADABLE):
        raise ExtractionError("package", item.member.removeprefix(UNREADABLE).strip())
    try:
        if item.offset is not None and item.size is not None:
            return read_package(read_member(path, item.offset, item.size), item.member or path.name)
        if path.is_dir():
            return read_directory(path)
        return read_package(read_file_capped(path), path.name)
    except ArchiveError as error:
        raise ExtractionError("package", str(error)) from error
    except OSError as error:
        raise ExtractionError("package", f"cannot read input: {error}") from error


def process_item(item: WorkItem) -> ItemResult:
    """Extract the figure-caption pairs of one paper (the ``process`` function for ``run_extraction``)."""
    started = time.perf_counter()
    package = _read_package(item)
    problems = [f"member skipped: {name}: {reason}" for name, reason in package.skipped]
    if package.kind == "pdf":
        return ItemResult(
            records=[], status="skipped", stage="package", reason="pdf-only submission", problems=problems
        )
    project = Project(package.files)
    main = project.main_file()
    if main is None:
        return ItemResult(
            records=[], status="skipped", stage="package", reason="no TeX source file", problems=problems
        )
    flat = project.flatten(main)
    macros = latex.collect_macros(flat.text)
    graphicspath = list(dict.fromkeys(latex.parse_graphicspath(flat.text)))
    begin = BEGIN_DOCUMENT_RE.search(flat.text)
    body_start = begin.end() if begin else 0
    end = END_DOCUMENT_RE.search(flat.text, body_start)
    body = flat.text[body_start : end.start() if end else len(flat.text)]
    left_out: list[latex.LeftOut] = []
    figures = latex.find_figures(body, macros, left_out)

    stats = _Stats()
    records: list[Record] = []
    figure_problems = [
        f"{skipped.env} float in {flat.file_at(body_start + skipped.start)} left out: {skipped.reason}"
        for skipped in left_out
    ]
    for number, figure in enumerate(figures, start=1):
        ctx = _FigureContext(
            project,
            main,
            flat.file_at(body_start + figure.start),
            graphicspath,
            f"fig{number}",
            stats,
            figure_problems,
        )
        records.extend(_figure_records(figure, ctx, macros, item.paper_id))

    total = time.perf_counter() - started
    result = ItemResult(
        records=records,
        main_file=main,
        figures_found=len(figures),
        problems=problems + project.problems + figure_problems,
        extra={
            "image_seconds": round(stats.image_seconds, 4),
            "latex_seconds": round(total - stats.image_seconds, 4),
        },
    )
    if not records:
        result.status, result.stage, result.reason = _empty_outcome(figures, stats)
    return result


def _empty_outcome(figures: Sequence[latex.FigureFloat], stats: _Stats) -> tuple[str, str, str]:
    """(status, stage, reason) for a paper that gave no pair."""
    if not figures:
        return "skipped", "figures", "no figures"
    if not any(figure.graphics for figure in figures):
        if all(figure.has_tikz for figure in figures):
            return "skipped", "figures", "no figures with images (tikz/pgfplots only)"
        return "skipped", "figures", "no figures with images"
    if stats.missing or stats.unreadable:
        reason = f"no figure image usable ({stats.missing} not found, {stats.unreadable} unreadable)"
        return "failed", "images", reason
    if stats.unsupported:
        return "skipped", "figures", "no figures with supported images (svg/standalone only)"
    return "skipped", "captions", "no captioned figures"
