"""One paper's LaTeX project: path resolution, main-file choice, include flattening, graphics lookup."""

from __future__ import annotations

import bisect
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from sciclip_utils import latex
from sciclip_utils.extract.items import ExtractionError

from .bulk import TEX_SUFFIXES

# Probed in this order for a graphic written without a known extension (pdfLaTeX's order, then DVI's).
IMAGE_EXTENSIONS = (".pdf", ".png", ".jpg", ".jpeg", ".eps", ".ps", ".mps")
EPS_CONVERTED_SUFFIX = "-eps-converted-to.pdf"
MAX_INCLUDE_DEPTH = 12
MAX_FLAT_CHARS = 16_000_000
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
        self._include_commands: dict[str, list[tuple[int, int, str, str]]] = {}

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
            if name not in self._include_commands:  # parsed once per file, resolved once per main file
                self._include_commands[name] = latex.find_includes(self.source(name))
            for _start, _end, command, target in self._include_commands[name]:
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
