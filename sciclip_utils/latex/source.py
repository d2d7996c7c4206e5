"""Reading TeX source: decoding, masking of comments/``\\iffalse`` blocks/verbatim, brace-aware argument
reading, ``\\input`` and ``\\graphicspath``.

Structure is found on a *masked* copy of the source (comments, ``\\iffalse`` blocks, ``comment``
environments and verbatim contents blanked with spaces), so every offset refers to the text given by the
caller, while captions and paths are sliced from the original text.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_DEPTH = 40  # nesting depth of groups/arguments read recursively (figure scan, caption conversion)
MAX_OPTIONAL = 8_000  # longest [optional] argument looked for
_MAX_INLINE_VERBATIM = 2_000  # longest \verb|...| or \url{...} (they end on their line)


def decode_tex(data: bytes) -> str:
    """Decode TeX source bytes: UTF-8 (BOM stripped), else cp1252, else latin-1; line ends become ``\\n``."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------------------------------
# Comments, conditionals and verbatim
# --------------------------------------------------------------------------------------------------


def names(text: str) -> frozenset[str]:
    """The whitespace-separated names of ``text`` as a set."""
    return frozenset(text.split())


_SPECIAL_RE = re.compile(
    r"\\[\\%]"
    r"|(?P<pct>%)"
    r"|\\(?P<verb>verb|lstinline)(?![a-zA-Z@])\*?"
    r"|\\begin\s*\{(?P<venv>verbatim\*?|Verbatim\*?|BVerbatim|lstlisting|minted|comment)\}"
    r"|\\(?P<url>url|path|nolinkurl|href)\s*\{"
    r"|(?P<iffalse>\\iffalse)(?![a-zA-Z@])"
)
_CONDITIONAL_RE = re.compile(
    r"\\[\\%]|%[^\n]*|\\newif\s*\\if[a-zA-Z@]*|\\(fi|else)(?![a-zA-Z@])|\\(if[a-zA-Z@]*)"
)
# etoolbox/ifthen macros that look like TeX conditionals but take arguments and have no \fi
_NOT_CONDITIONALS = names(
    "ifthenelse iftoggle ifbool ifdef ifundef ifcsdef ifcsundef ifstrequal ifstrempty ifdefempty ifnumcomp "
    "ifboolexpr ifdefstring ifblank ifdefmacro ifdefparam ifcsmacro ifnumequal ifdimcomp ifdimequal"
)
_LET_BEFORE_RE = re.compile(
    r"\\(?:let|def|newcommand|renewcommand)\s*\{?\s*\\[a-zA-Z@]+\s*\}?\s*=?\s*\{?\s*$"
)


def _false_conditionals(tex: str) -> dict[int, tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """Start of every ``\\iffalse`` -> spans of its own ``\\else`` and matching ``\\fi`` (None when missing),
    from one stack pass over the conditionals outside comments."""
    found: dict[int, tuple[tuple[int, int] | None, tuple[int, int] | None]] = {}
    stack: list[list] = []  # [start, is \iffalse, else span]
    for m in _CONDITIONAL_RE.finditer(tex):
        keyword, opener = m.group(1), m.group(2)
        if opener is not None:
            if opener not in _NOT_CONDITIONALS:
                stack.append([m.start(), opener == "iffalse", None])
        elif keyword == "else":
            if stack and stack[-1][2] is None:
                stack[-1][2] = (m.start(), m.end())
        elif keyword == "fi" and stack:
            start, is_false, else_span = stack.pop()
            if is_false:
                found[start] = (else_span, (m.start(), m.end()))
    found.update({start: (else_span, None) for start, is_false, else_span in stack if is_false})
    return found


def _special_spans(tex: str) -> list[tuple[int, int, str]]:
    """Sorted spans of ``comment`` (% to end of line), ``block`` (dead code), ``verbatim`` and ``raw`` text."""
    spans: list[tuple[int, int, str]] = []
    n = len(tex)
    conditionals = _false_conditionals(tex) if "\\iffalse" in tex else {}
    pos = 0
    while (m := _SPECIAL_RE.search(tex, pos)) is not None:
        pos = m.end()
        if m.group("pct"):
            end = tex.find("\n", pos)
            end = n if end < 0 else end
            spans.append((m.start(), end, "comment"))
            pos = end
        elif m.group("verb"):
            if pos < n and not tex[pos].isalnum() and tex[pos] not in " \t\n":
                closer = "}" if tex[pos] == "{" else tex[pos]
                end = tex.find(closer, pos + 1, pos + _MAX_INLINE_VERBATIM)
                if end >= 0 and tex.find("\n", pos + 1, end) < 0:
                    spans.append((pos + 1, end, "verbatim"))
                    pos = end + 1
        elif name := m.group("venv"):
            end_tag = "\\end{" + name + "}"
            end = tex.find(end_tag, pos)
            end = n if end < 0 else end
            if name == "comment":
                spans.append((m.start(), min(n, end + len(end_tag)), "block"))
            else:
                spans.append((pos, end, "verbatim"))
            pos = min(n, end + len(end_tag))
        elif m.group("url"):
            end = tex.find("}", pos, pos + _MAX_INLINE_VERBATIM)
            if end >= 0 and tex.find("\n", pos, end) < 0:
                spans.append((pos, end, "raw"))
                pos = end
        elif m.group("iffalse"):
            before = tex[max(0, m.start() - 80) : m.start()]
            if _LET_BEFORE_RE.search(before) or tex.startswith("}", pos):
                continue  # \let\ifdraft\iffalse or {\iffalse}: not a conditional block
            else_span, fi_span = conditionals.get(m.start(), (None, None))
            if else_span is not None:
                spans.append((m.start(), else_span[1], "block"))
                if fi_span is not None:
                    spans.append((fi_span[0], fi_span[1], "block"))
                pos = else_span[1]
            else:
                end = fi_span[1] if fi_span else n
                spans.append((m.start(), end, "block"))
                pos = end
    spans.sort()
    return spans


def strip_comments(tex: str) -> str:
    """Remove ``%`` comments, ``\\iffalse...\\fi`` (nesting-aware, keeping an ``\\else`` branch) and
    ``comment`` environments. Like TeX, a comment also eats its newline and the next line's leading
    spaces, unless that line is blank (a paragraph break stays). ``\\%``, verbatim text and URLs are kept.
    """
    pieces: list[str] = []
    cursor = 0
    n = len(tex)
    for start, end, kind in _special_spans(tex):
        if kind in ("verbatim", "raw") or start < cursor:
            continue
        pieces.append(tex[cursor:start])
        cursor = end
        if kind == "comment" and end < n:
            j = end + 1
            while j < n and tex[j] in " \t":
                j += 1
            if j >= n or tex[j] != "\n":
                cursor = j
    pieces.append(tex[cursor:])
    return "".join(pieces)


def _masked(tex: str) -> str:
    """``tex`` with comments, dead blocks and verbatim contents replaced by spaces (same length)."""
    pieces: list[str] = []
    cursor = 0
    for start, end, kind in _special_spans(tex):
        if kind == "raw" or start < cursor:
            continue
        pieces.append(tex[cursor:start])
        pieces.append(" " * (end - start))
        cursor = end
    pieces.append(tex[cursor:])
    return "".join(pieces)


_BRACE_RE = re.compile(r"\\[{}\\]|[{}]")


def _brace_map(masked: str) -> dict[int, int]:
    """Offset of every matched ``{`` -> offset of its ``}`` (one linear pass)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_RE.finditer(masked):
        char = m.group()
        if char == "{":
            stack.append(m.start())
        elif char == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


# --------------------------------------------------------------------------------------------------
# Brace-aware reading of command arguments on the masked text
# --------------------------------------------------------------------------------------------------

_WS_RE = re.compile(r"\s*")
CS_NAME_RE = re.compile(r"\\(?:[a-zA-Z@]+|.)", re.S)
_BRACKET_RE = re.compile(r"\\[{}\\\]]|[{\]]")


class Source:
    """A text, its masked twin and brace map; offsets are shared."""

    def __init__(self, text: str):
        self.text = text
        self.masked = _masked(text)
        self.braces = _brace_map(self.masked)

    def skip_ws(self, i: int) -> int:
        return _WS_RE.match(self.masked, i).end()

    def group(self, i: int, limit: int) -> tuple[int, int, int] | None:
        """``{...}`` at ``i`` (after spaces): (content start, content end, next offset)."""
        i = self.skip_ws(i)
        if i < limit and self.masked[i] == "{":
            close = self.braces.get(i)
            if close is not None and close < limit:
                return i + 1, close, close + 1
        return None

    def optional(self, i: int, limit: int) -> tuple[int, int, int] | None:
        """``[...]`` at ``i`` (after spaces), braces skipped: (content start, content end, next offset)."""
        i = self.skip_ws(i)
        if i >= limit or self.masked[i] != "[":
            return None
        pos = i + 1
        stop = min(limit, i + MAX_OPTIONAL)
        while (m := _BRACKET_RE.search(self.masked, pos, stop)) is not None:
            char = m.group()
            if char == "]":
                return i + 1, m.start(), m.end()
            if char == "{":
                close = self.braces.get(m.start())
                if close is None:
                    return None
                pos = close + 1
            else:
                pos = m.end()
        return None

    def argument(self, i: int, limit: int) -> tuple[int, int, int] | None:
        """A mandatory argument: a group, one control sequence or one character."""
        found = self.group(i, limit)
        if found is not None:
            return found
        i = self.skip_ws(i)
        if i >= limit or self.masked[i] in "{}":
            return None
        if self.masked[i] == "\\":
            m = CS_NAME_RE.match(self.masked, i)
            return (i, m.end(), m.end()) if m else None
        return i, i + 1, i + 1

    def star(self, i: int) -> int:
        return i + 1 if self.masked.startswith("*", i) else i


@lru_cache(maxsize=4)
def cached_source(text: str) -> Source:
    """`Source` of a document, shared by the public functions called on the same text."""
    return Source(text)


# --------------------------------------------------------------------------------------------------
# \input, \graphicspath
# --------------------------------------------------------------------------------------------------

_INCLUDE_COMMANDS = "input|include|subfile|import|subimport|inputfrom|includefrom|subinputfrom|subincludefrom"
_INCLUDE_RE = re.compile(r"\\\\|\\(" + _INCLUDE_COMMANDS + r")(?![a-zA-Z@])")
_ANY_INCLUDE_RE = re.compile(r"\\(?:" + _INCLUDE_COMMANDS + ")")  # in the text: in the masked text too
_TEX_FILENAME_RE = re.compile(r"[^\s{}\\%]+")


def _clean_target(raw: str) -> str:
    return raw.replace("{", "").replace("}", "").replace('"', "").strip()


def find_includes(tex: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, command, target)`` for every ``\\input{x}``, ``\\input x``, ``\\include{x}``,
    ``\\subfile{x}`` and ``\\import{dir}{file}`` (also ``\\subimport``, ``\\inputfrom``...; target
    ``dir/file``) outside comments; ``start:end`` is the span to replace. Targets holding macro
    parameters (``#1``) are left out."""
    if _ANY_INCLUDE_RE.search(tex) is None:  # most files: no masked text and brace map needed
        return []
    src = cached_source(tex)
    found = []
    for m in _INCLUDE_RE.finditer(src.masked):
        command = m.group(1)
        if command is None:
            continue
        pos = src.star(m.end())
        if command in ("input", "include", "subfile"):
            group = src.group(pos, len(tex))
            if group is not None:
                target, end = tex[group[0] : group[1]], group[2]
            else:
                name = _TEX_FILENAME_RE.match(src.masked, src.skip_ws(pos)) if command == "input" else None
                if name is None:
                    continue
                target, end = name.group(), name.end()
        else:
            first = src.group(pos, len(tex))
            second = src.group(first[2], len(tex)) if first else None
            if second is None:
                continue
            directory = _clean_target(tex[first[0] : first[1]])
            target = (
                f"{directory.rstrip('/')}/{tex[second[0] : second[1]]}"
                if directory
                else tex[second[0] : second[1]]
            )
            end = second[2]
        target = _clean_target(target)
        if target and "#" not in target:
            found.append((m.start(), end, command, target))
    return found


def parse_graphicspath(tex: str) -> list[str]:
    """Directories of every ``\\graphicspath{{a/}{b/}}`` (in order, de-duplicated; a bare
    ``\\graphicspath{a/}`` counts as one directory)."""
    src = cached_source(tex)
    directories: list[str] = []
    for m in re.finditer(r"\\graphicspath(?![a-zA-Z@])", src.masked):
        group = src.group(m.end(), len(tex))
        if group is None:
            continue
        content = tex[group[0] : group[1]]
        items = re.findall(r"\{([^{}]*)\}", content) or [content]
        for item in items:
            item = _clean_target(item)
            if item and item not in directories:
                directories.append(item)
    return directories
