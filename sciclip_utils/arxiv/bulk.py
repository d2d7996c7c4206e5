"""arXiv inputs as work items: package names and ids, bulk tars and their manifest, date ranges.

Inputs are arXiv bulk tars (``arXiv_src_YYMM_NNN.tar`` holding ``YYMM/<id>.gz``, optionally selected by
date range through ``arXiv_src_manifest.xml``), single per-paper packages (``.gz``, ``.tar.gz``, ``.tgz``,
``.tar``), unpacked source directories, and folders of any of these; :func:`build_work_items` makes one
work item (:mod:`sciclip_utils.extract.items`) per paper.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sciclip_utils.archives import ArchiveError, iter_tar_members
from sciclip_utils.extract.items import WorkItem

TEX_SUFFIXES = (".tex", ".ltx", ".latex")
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".gz", ".tar")
MANIFEST_NAME = "arXiv_src_manifest.xml"
UNREADABLE = "<unreadable tar>"  # member name of the item standing for the unlisted rest of a broken bulk tar

BULK_TAR_RE = re.compile(r"^arXiv_src_(\d{4})_(\d{3})\.tar$")
BULK_MEMBER_RE = re.compile(r"^(?:[^/]+/)*[^/]+\.(?:gz|pdf)$")
NEW_ID_RE = re.compile(r"^(\d{4})\.\d{4,5}(?:v\d+)?$")
OLD_ID_RE = re.compile(r"^([a-z][a-z-]*(?:\.[A-Z]{2})?)(\d{2})(\d{2})(\d{3})(v\d+)?$")
YYMM_RE = re.compile(r"^\d{2}(0[1-9]|1[0-2])$")


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
