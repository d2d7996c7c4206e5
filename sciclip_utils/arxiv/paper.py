"""One paper's figure-caption pairs: :func:`process_item` reads its package, chooses the main file,
flattens its includes, finds figure floats, resolves and renders their images and cleans their captions.
Per-paper work only, against the item contract of :mod:`sciclip_utils.extract.items`.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sciclip_utils import latex
from sciclip_utils.archives import (
    ArchiveError,
    Package,
    read_directory,
    read_file_capped,
    read_member,
    read_package,
)
from sciclip_utils.commonpool import Record
from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem
from sciclip_utils.images import (
    MAX_SIDE,
    ImageError,
    composite,
    load_image,
    prepare_image,
    shrink,
    shrunk_size,
    to_rgb,
)

from .bulk import UNREADABLE
from .project import BEGIN_DOCUMENT_RE, END_DOCUMENT_RE, Project

if TYPE_CHECKING:
    from PIL import Image

SOURCE = "arxiv"


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
