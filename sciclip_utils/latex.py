"""LaTeX text layer of arXiv extraction: comments, includes, user macros, figure floats and caption text.

Everything here is a small brace-aware scanner over plain strings, not a TeX engine. Work is linear in the
input (no nested or backtracking regexes), user macro expansion is bounded by `Macros.max_expansions` and
`Macros.max_tokens`, and malformed input (unbalanced braces, binary junk) never raises, except the documented
`ValueError` of `caption_to_text` (caption longer than `MAX_CAPTION_CHARS`, or macro expansion past the budget).

Structure is found on a *masked* copy of the source (comments, ``\\iffalse`` blocks, ``comment``
environments and verbatim contents blanked with spaces), so every offset refers to the text given by the
caller, while captions and paths are sliced from the original text.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cache, lru_cache

MAX_CAPTION_CHARS = 100_000
_MAX_DEPTH = 40  # nesting depth of groups/arguments converted recursively
_MAX_OPTIONAL = 8_000  # longest [optional] argument looked for
_MAX_UNCLOSED_FLOAT = 50_000  # extent given to a float whose \end is missing
_MAX_INLINE_VERBATIM = 2_000  # longest \verb|...| or \url{...} (they end on their line)

_XSPACE = "\x01"  # \xspace: a space unless punctuation follows
_SOFT = "\x02"  # after an operator name: a space only if a letter or digit follows


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


def _names(text: str) -> frozenset[str]:
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
_NOT_CONDITIONALS = _names(
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
_CS_NAME_RE = re.compile(r"\\(?:[a-zA-Z@]+|.)", re.S)
_BRACKET_RE = re.compile(r"\\[{}\\\]]|[{\]]")


class _Source:
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
        stop = min(limit, i + _MAX_OPTIONAL)
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
            m = _CS_NAME_RE.match(self.masked, i)
            return (i, m.end(), m.end()) if m else None
        return i, i + 1, i + 1

    def star(self, i: int) -> int:
        return i + 1 if self.masked.startswith("*", i) else i


@lru_cache(maxsize=4)
def _source(text: str) -> _Source:
    """`_Source` of a document, shared by the public functions called on the same text."""
    return _Source(text)


# --------------------------------------------------------------------------------------------------
# \input, \graphicspath
# --------------------------------------------------------------------------------------------------

_INCLUDE_RE = re.compile(
    r"\\\\|\\(input|include|subfile|import|subimport|inputfrom|includefrom|subinputfrom|subincludefrom)"
    r"(?![a-zA-Z@])"
)
_TEX_FILENAME_RE = re.compile(r"[^\s{}\\%]+")


def _clean_target(raw: str) -> str:
    return raw.replace("{", "").replace("}", "").replace('"', "").strip()


def find_includes(tex: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, command, target)`` for every ``\\input{x}``, ``\\input x``, ``\\include{x}``,
    ``\\subfile{x}`` and ``\\import{dir}{file}`` (also ``\\subimport``, ``\\inputfrom``...; target
    ``dir/file``) outside comments; ``start:end`` is the span to replace. Targets holding macro
    parameters (``#1``) are left out."""
    src = _source(tex)
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
    src = _source(tex)
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


# --------------------------------------------------------------------------------------------------
# User macros
# --------------------------------------------------------------------------------------------------


@dataclass
class MacroDef:
    """One user macro: ``nargs`` parameters, the first optional with ``default`` when that is not None."""

    nargs: int = 0
    default: str | None = None
    body: str = ""
    builtin_alias: bool = False  # \let to a non-user command: expands to that command, never re-expanded
    skip_star: bool = False  # \DeclarePairedDelimiter: a following * is swallowed


@dataclass
class Macros:
    """User macro table with the limits used when expanding it."""

    definitions: dict[str, MacroDef] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # definitions not understood (delimited parameters)
    max_expansions: int = 2_000
    max_tokens: int = 100_000
    _token_cache: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _structural: tuple[frozenset[str], frozenset[str]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.definitions)

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def body_tokens(self, name: str) -> list[str]:
        tokens = self._token_cache.get(name)
        if tokens is None:
            tokens = self._token_cache[name] = _tokenize(self.definitions[name].body)
        return tokens

    def structural(self) -> tuple[frozenset[str], frozenset[str]]:
        """(macros whose expansion holds graphics/captions/sub-figures, those holding a whole float)."""
        if self._structural is None:
            structural = {n for n, d in self.definitions.items() if _STRUCTURAL_RE.search(d.body)}
            floats = {n for n, d in self.definitions.items() if _FLOAT_BEGIN_RE.search(d.body)}
            calls = {n: set(re.findall(r"\\([a-zA-Z@]+)", d.body)) for n, d in self.definitions.items()}
            for _ in range(4):  # macros calling such macros, a few levels deep
                structural |= {n for n, c in calls.items() if c & structural}
                floats |= {n for n, c in calls.items() if c & floats}
            self._structural = frozenset(structural), frozenset(floats)
        return self._structural


_DEF_RE = re.compile(
    r"\\\\|\\(newcommand|renewcommand|providecommand|DeclareRobustCommand|newrobustcmd|renewrobustcmd"
    r"|providerobustcmd|def|gdef|edef|xdef|let|DeclareMathOperator|NewDocumentCommand|RenewDocumentCommand"
    r"|ProvideDocumentCommand|DeclareDocumentCommand|DeclarePairedDelimiter)(?![a-zA-Z@])"
)
_KEEP_EXISTING = frozenset(
    {"newcommand", "DeclareMathOperator", "NewDocumentCommand", "DeclarePairedDelimiter"}
)
_ONLY_IF_ABSENT = frozenset({"providecommand", "providerobustcmd", "ProvideDocumentCommand"})
_DOCUMENT_SPEC_RE = re.compile(r"(o|O\{([^{}]*)\})?(m*)")


def _read_name(src: _Source, i: int, limit: int) -> tuple[str, int] | None:
    """``\\name`` or ``{\\name}`` at ``i``: (name without backslash, next offset)."""
    group = src.group(i, limit)
    if group is not None:
        inner = src.masked[group[0] : group[1]].strip()
        m = _CS_NAME_RE.fullmatch(inner)
        return (inner[1:], group[2]) if m else None
    i = src.skip_ws(i)
    m = _CS_NAME_RE.match(src.masked, i)
    return (m.group()[1:], m.end()) if m else None


def collect_macros(tex: str) -> Macros:
    """User macros of a document (preamble and body): ``\\newcommand``/``\\renewcommand``/
    ``\\providecommand`` (starred, ``[n]`` arguments, ``[default]`` optional first argument),
    ``\\DeclareRobustCommand``, ``\\def`` (``#1#2`` parameters), ``\\let``, ``\\DeclareMathOperator``,
    ``\\NewDocumentCommand`` (``m``/``o`` specs) and ``\\DeclarePairedDelimiter``. Definitions inside
    another definition's body are not collected; ``\\newcommand`` keeps an existing definition (as LaTeX)."""
    src = _source(tex)
    limit = len(tex)
    macros = Macros()
    defs = macros.definitions
    pos = 0
    while (m := _DEF_RE.search(src.masked, pos)) is not None:
        pos = m.end()
        command = m.group(1)
        if command is None:
            continue
        named = _read_name(src, src.star(src.skip_ws(pos)), limit)
        if named is None:
            continue
        name, pos = named
        definition: MacroDef | None = None
        if command == "let":
            i = src.skip_ws(pos)
            i = src.skip_ws(i + 1) if src.masked.startswith("=", i) else i
            target = _CS_NAME_RE.match(src.masked, i)
            if target is None:
                continue
            pos = target.end()
            existing = defs.get(target.group()[1:])
            definition = (
                MacroDef(**vars(existing)) if existing else MacroDef(body=target.group(), builtin_alias=True)
            )
        elif command in ("def", "gdef", "edef", "xdef"):
            brace = src.masked.find("{", pos, pos + 200)
            params = src.masked[pos:brace] if brace >= 0 else ""
            group = src.group(brace, limit) if brace >= 0 else None
            if group is None:
                continue
            pos = group[2]
            if not re.fullmatch(r"\s*(#[1-9]\s*)*", params):
                macros.skipped.append(name)
                continue
            definition = MacroDef(nargs=params.count("#"), body=src.masked[group[0] : group[1]])
        elif command == "DeclareMathOperator":
            group = src.group(pos, limit)
            if group is None:
                continue
            pos = group[2]
            definition = MacroDef(body="\\operatorname{" + src.masked[group[0] : group[1]] + "}")
        elif command == "DeclarePairedDelimiter":
            left = src.argument(pos, limit)
            right = src.argument(left[2], limit) if left else None
            if right is None:
                continue
            pos = right[2]
            body = f"{src.masked[left[0] : left[1]]}#1{src.masked[right[0] : right[1]]}"
            definition = MacroDef(nargs=1, body=body, skip_star=True)
        elif command.endswith("DocumentCommand"):
            spec = src.group(pos, limit)
            body = src.group(spec[2], limit) if spec else None
            if body is None:
                continue
            pos = body[2]
            parsed = _DOCUMENT_SPEC_RE.fullmatch(re.sub(r"\s+", "", src.masked[spec[0] : spec[1]]))
            if parsed is None:
                macros.skipped.append(name)
                continue
            optional = parsed.group(1) is not None
            definition = MacroDef(
                nargs=len(parsed.group(3)) + optional,
                default=(parsed.group(2) or "") if optional else None,
                body=src.masked[body[0] : body[1]],
            )
        else:  # \newcommand family
            nargs, default = 0, None
            count = src.optional(pos, limit)
            if count is not None:
                pos = count[2]
                digits = src.masked[count[0] : count[1]].strip()
                nargs = int(digits) if digits.isdigit() else 0
                first = src.optional(pos, limit)
                if first is not None:
                    pos = first[2]
                    default = src.masked[first[0] : first[1]]
            body = src.argument(pos, limit)
            if body is None:
                continue
            pos = body[2]
            definition = MacroDef(nargs=min(nargs, 9), default=default, body=src.masked[body[0] : body[1]])
        if name in defs and (command in _KEEP_EXISTING or command in _ONLY_IF_ABSENT):
            continue
        defs[name] = definition
    return macros


# --------------------------------------------------------------------------------------------------
# Tokens and bounded expansion
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\\(?:[a-zA-Z@]+|.?)|#[1-9#]?|[^\W_]+|\s+|.", re.S)


def _tokenize(text: str) -> list[str]:
    """Control sequences, parameters, runs of letters/digits, runs of spaces, single other characters."""
    return _TOKEN_RE.findall(text)


def _is_word(token: str) -> bool:
    return len(token) > 1 and token[0] == "\\" and (token[1].isalpha() or token[1] == "@")


def _detokenize(tokens: list[str]) -> str:
    pieces = []
    for index, token in enumerate(tokens):
        pieces.append(token)
        if _is_word(token) and index + 1 < len(tokens):
            following = tokens[index + 1]
            if following[0].isalpha() or following[0] == "@":
                pieces.append(" ")
    return "".join(pieces)


def _pop_argument(pending: list[str]) -> list[str]:
    """Pop one undelimited macro argument from a reversed token stack."""
    while pending and pending[-1].isspace():
        pending.pop()
    if not pending:
        return []
    token = pending.pop()
    if token == "}":
        pending.append(token)
        return []
    if token == "{":
        collected: list[str] = []
        depth = 1
        while pending:
            token = pending.pop()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0:
                    break
            collected.append(token)
        return collected
    if len(token) > 1 and token[0] not in "\\#" and not token.isspace():
        pending.append(token[1:])
        return [token[0]]
    return [token]


def _pop_optional(pending: list[str]) -> list[str] | None:
    """Pop ``[...]`` (braces respected) from a reversed token stack, or None when there is none."""
    index = len(pending) - 1
    while index >= 0 and pending[index].isspace():
        index -= 1
    if index < 0 or pending[index] != "[":
        return None
    depth = 0
    for position in range(index - 1, max(-1, index - _MAX_OPTIONAL), -1):
        token = pending[position]
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif token == "]" and depth == 0:
            collected = pending[position + 1 : index][::-1]
            del pending[position:]
            return collected
    return None


def _expand(tokens: list[str], macros: Macros | None, strict: bool = False) -> list[str]:
    """Expand user macros until none is left. Past the budget (`Macros.max_expansions`/`max_tokens`) the
    remaining user macros are dropped, or with ``strict`` a ValueError is raised."""
    if not macros or not macros.definitions:
        return tokens
    defs = macros.definitions
    pending = tokens[::-1]
    out: list[str] = []
    expansions = spent = 0
    while pending:
        token = pending.pop()
        definition = defs.get(token[1:]) if token[:1] == "\\" else None
        if definition is None:
            out.append(token)
            continue
        if expansions >= macros.max_expansions or spent >= macros.max_tokens:
            if strict:
                raise ValueError(f"macro expansion limit reached at {token} (runaway recursion?)")
            continue
        expansions += 1
        if definition.builtin_alias:
            out.append(definition.body)
            continue
        if definition.skip_star and pending and pending[-1] == "*":
            pending.pop()
        args: list[list[str]] = []
        required = definition.nargs
        if definition.default is not None and required:
            optional = _pop_optional(pending)
            args.append(optional if optional is not None else _tokenize(definition.default))
            required -= 1
        args.extend(_pop_argument(pending) for _ in range(required))
        body: list[str] = []
        for part in macros.body_tokens(token[1:]):
            if part[0] == "#" and len(part) == 2:
                if part == "##":
                    body.append("#")
                elif int(part[1]) <= len(args):
                    body.extend(args[int(part[1]) - 1])
            else:
                body.append(part)
        spent += len(body)
        pending.extend(reversed(body))
    return out


def _expand_text(text: str, macros: Macros | None) -> str:
    return _detokenize(_expand(_tokenize(strip_comments(text)), macros))


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


@dataclass
class GraphicRef:
    """One graphics inclusion: command name and path as written (macros expanded, quotes/spaces trimmed)."""

    command: str  # includegraphics | plotone | plottwo | epsfig | psfig | epsfbox | includestandalone |
    # includesvg | pgfimage | plotfiddle
    path: str


@dataclass
class SubFigure:
    caption: str | None  # raw TeX of the sub-caption
    graphics: list[GraphicRef]
    label: str | None


@dataclass
class FigureFloat:
    env: str  # figure, figure*, wrapfigure, SCfigure, sidewaysfigure, ..., captionof
    caption: str | None  # raw TeX of the main caption (long form)
    graphics: list[GraphicRef]  # every graphic of the float in reading order, sub-figures included
    subfigures: list[SubFigure]  # only sub-figures with their own sub-caption
    label: str | None
    has_tikz: bool  # drawn in TeX: tikzpicture/pgfplots/pstricks/picture or \input of *.tikz / *.pgf
    start: int  # offset in the given text


_FLOAT_ENVS = _names(
    "figure figure* wrapfigure wrapfigure* SCfigure SCfigure* sidewaysfigure sidewaysfigure* "
    "floatingfigure marginfigure"
)
_FLOAT_ARGS = {"wrapfigure": "[{[{", "SCfigure": "[[", "floatingfigure": "[{"}  # others: [placement]
_SUBFIGURE_ENVS = frozenset({"subfigure", "subfigure*"})
_BOX_ENV_ARGS = {"minipage": "[[[{"}
_TIKZ_ENVS = _names(
    "tikzpicture tikzcd circuitikz pgfpicture axis semilogxaxis semilogyaxis loglogaxis polaraxis groupplot "
    "pspicture picture"
)
_GRAPHIC_COMMANDS = {
    "includegraphics": "includegraphics",
    "adjincludegraphics": "includegraphics",
    "plotone": "plotone",
    "plottwo": "plottwo",
    "plotfiddle": "plotfiddle",
    "epsfig": "epsfig",
    "psfig": "psfig",
    "epsfbox": "epsfbox",
    "epsffile": "epsfbox",
    "includestandalone": "includestandalone",
    "includesvg": "includesvg",
    "pgfimage": "pgfimage",
}
_SUBFIGURE_COMMANDS = frozenset({"subfigure", "subfloat", "sidesubfloat", "subcaptionbox"})
_TIKZ_SUFFIXES = (".tikz", ".pgf", ".tikz.tex", ".pgf.tex")
_STRUCTURAL_RE = re.compile(
    r"\\(?:" + "|".join(_GRAPHIC_COMMANDS) + r"|caption|captionof|subcaption|subfloat|subfigure|subcaptionbox"
    r"|sidesubfloat|tikz)(?![a-zA-Z@])|\\begin\s*\{\s*(?:tikzpicture|subfigure|minipage)\s*\}"
)
_FLOAT_BEGIN_RE = re.compile(r"\\begin\s*\{\s*(?:" + "|".join(re.escape(e) for e in _FLOAT_ENVS) + r")\s*\}")
_SCAN_RE = re.compile(r"\\(?:(begin|end)\s*\{\s*([a-zA-Z@*]+)\s*\}|([a-zA-Z@]+)|.)", re.S)
_ENV_RE = re.compile(r"\\\\|\\(begin|end)\s*\{\s*([a-zA-Z@*]+)\s*\}")
_LABEL_RE = re.compile(r"\\label\s*\{([^{}]*)\}")
_PARAM_RE = re.compile(r"#[1-9]")
_PATH_NOISE_RE = re.compile(r"\\(?:detokenize|string|noexpand|unexpanded|protect|relax)(?![a-zA-Z@])\s*")

# Scan events: ("g", GraphicRef) graphic, ("c", raw, pos) main caption, ("sc", raw, pos) \subcaption,
# ("l", name) label, ("t",) TeX drawing, ("s", events, caption | None) sub-figure, ("b", events) minipage.
_Event = tuple


def _clean_path(raw: str, macros: Macros | None) -> str:
    text = strip_comments(raw)
    if "\\" in text and macros:
        text = _expand_text(text, macros)
    text = _PATH_NOISE_RE.sub("", text)
    return text.replace("{", "").replace("}", "").replace('"', "").strip()


class _FigureScanner:
    """Collects scan events of a region of a `_Source`; user macros holding figure parts are expanded."""

    def __init__(self, src: _Source, macros: Macros | None, depth: int = 0, origin: int | None = None):
        self.src = src
        self.macros = macros
        self.depth = depth
        self.origin = origin  # position reported for everything found (text produced by a macro call)
        self.structural = macros.structural()[0] if macros else frozenset()

    def _pos(self, pos: int) -> int:
        return pos if self.origin is None else self.origin

    def _skip_args(self, spec: str, pos: int, limit: int) -> int:
        for kind in spec:
            found = self.src.optional(pos, limit) if kind == "[" else self.src.group(pos, limit)
            if found is not None:
                pos = found[2]
        return pos

    def _raw(self, span: tuple[int, int, int]) -> str:
        return self.src.text[span[0] : span[1]]

    def scan(self, start: int, limit: int, level: int = 0) -> list[_Event]:
        """Events of ``[start, limit)``; sub-figures and minipages nested deeper than `_MAX_DEPTH` are read
        as if flat."""
        src = self.src
        events: list[_Event] = []
        pos = start
        nest = level < _MAX_DEPTH
        while pos < limit and (m := _SCAN_RE.search(src.masked, pos, limit)) is not None:
            pos = m.end()
            kind, env, word = m.groups()
            if kind == "begin":
                if nest and (env in _SUBFIGURE_ENVS or env in _BOX_ENV_ARGS):
                    inner_end, after = _env_end(src.masked, env, pos, limit)
                    inner = self._skip_args(_BOX_ENV_ARGS.get(env, "[{"), pos, inner_end)
                    inside = self.scan(inner, inner_end, level + 1)
                    events.append(("s", inside, None) if env in _SUBFIGURE_ENVS else ("b", inside))
                    pos = after
                elif env in _TIKZ_ENVS:
                    events.append(("t",))
            elif word is not None and (nest or word not in _SUBFIGURE_COMMANDS):
                pos = self._command(word, m.start(), pos, limit, events, level)
        return events

    def _command(self, word: str, at: int, pos: int, limit: int, events: list[_Event], level: int) -> int:
        src = self.src
        if word in ("caption", "figcaption", "subcaption", "captionof"):
            pos = src.star(pos)
            if word == "captionof":
                kind = src.group(pos, limit)
                if kind is None:
                    return pos
                pos = kind[2]
            short = src.optional(pos, limit)
            text = src.group(short[2] if short else pos, limit)
            if text is None:
                return pos
            if word != "captionof" or src.masked[kind[0] : kind[1]].strip() == "figure":
                events.append(("sc" if word == "subcaption" else "c", self._raw(text), self._pos(at)))
            return text[2]
        if word == "label":
            group = src.group(pos, limit)
            if group is None:
                return pos
            events.append(("l", src.masked[group[0] : group[1]].strip()))
            return group[2]
        if word in _GRAPHIC_COMMANDS:
            return self._graphic(word, pos, limit, events)
        if word in _SUBFIGURE_COMMANDS:
            return self._subfigure(word, pos, limit, events, level)
        if word == "tikz":
            events.append(("t",))
            return pos
        if word in ("input", "include", "import", "subimport"):
            group = src.group(src.star(pos), limit)
            if word.endswith("import") and group is not None:
                group = src.group(group[2], limit)
            if group is not None and self._raw(group).strip().lower().endswith(_TIKZ_SUFFIXES):
                events.append(("t",))
            return group[2] if group else pos
        if word in self.structural and self.depth < 3:
            return self._expand_call(word, at, pos, limit, events)
        return pos

    def _graphic(self, word: str, pos: int, limit: int, events: list[_Event]) -> int:
        src = self.src
        command = _GRAPHIC_COMMANDS[word]
        pos = src.star(pos)
        if command in ("epsfig", "psfig"):
            group = src.group(pos, limit)
            if group is None:
                return pos
            for item in _split_top_level(self._raw(group), ","):
                key, _, value = item.partition("=")
                if key.strip().lower() in ("file", "figure") and value.strip():
                    events.append(("g", GraphicRef(command, _clean_path(value, self.macros))))
                    break
            return group[2]
        overlay = src.skip_ws(pos)
        if src.masked.startswith("<", overlay):
            close = src.masked.find(">", overlay, overlay + 40)
            pos = close + 1 if close >= 0 else pos
        for _ in range(2):
            optional = src.optional(pos, limit)
            if optional is None:
                break
            pos = optional[2]
        for _ in range(2 if command == "plottwo" else 1):
            group = src.argument(pos, limit)
            if group is None:
                return pos
            path = _clean_path(self._raw(group), self.macros)
            if path:
                events.append(("g", GraphicRef(command, path)))
            pos = group[2]
        return pos

    def _subfigure(self, word: str, pos: int, limit: int, events: list[_Event], level: int) -> int:
        src = self.src
        pos = src.star(pos)
        caption = None
        if word == "subcaptionbox":
            text = src.group(pos, limit)
            if text is None:
                return pos
            caption = self._raw(text)
            pos = self._skip_args("[[", text[2], limit)
        else:
            for _ in range(2):  # \subfloat[list entry][caption]{body}
                optional = src.optional(pos, limit)
                if optional is None:
                    break
                caption, pos = self._raw(optional), optional[2]
        body = src.group(pos, limit)
        if body is None:
            return pos
        events.append(("s", self.scan(body[0], body[1], level + 1), caption))
        return body[2]

    def _expand_call(self, word: str, at: int, pos: int, limit: int, events: list[_Event]) -> int:
        end = _macro_call_end(self.src, self.macros.definitions[word], pos, limit)
        expanded = _expand_text(self.src.text[at:end], self.macros)
        nested = _FigureScanner(_Source(expanded), self.macros, self.depth + 1, self._pos(at))
        events.extend(nested.scan(0, len(expanded)))
        return end


def _macro_call_end(src: _Source, definition: MacroDef, pos: int, limit: int) -> int:
    """Offset after the arguments of a user macro call whose name ends at ``pos``."""
    if definition.skip_star:
        pos = src.star(pos)
    required = definition.nargs
    if definition.default is not None and required:
        optional = src.optional(pos, limit)
        pos = optional[2] if optional else pos
        required -= 1
    for _ in range(required):
        argument = src.argument(pos, limit)
        if argument is None:
            break
        pos = argument[2]
    return pos


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        depth += (char == "{") - (char == "}")
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _graphics_of(events: list[_Event]) -> list[GraphicRef]:
    found: list[GraphicRef] = []
    for event in events:
        if event[0] == "g":
            found.append(event[1])
        elif event[0] in ("s", "b"):
            found.extend(_graphics_of(event[1]))
    return found


def _has_tikz(events: list[_Event]) -> bool:
    return any(e[0] == "t" or (e[0] in ("s", "b") and _has_tikz(e[1])) for e in events)


def _first_label(events: list[_Event], caption: str | None) -> str | None:
    if caption is not None and (m := _LABEL_RE.search(strip_comments(caption))):
        return m.group(1).strip()
    for event in events:
        if event[0] == "l":
            return event[1]
        if event[0] == "b" and (label := _first_label(event[1], None)):
            return label
    return None


def _subfigures_of(events: list[_Event]) -> list[SubFigure]:
    found: list[SubFigure] = []
    for event in events:
        if event[0] == "s":
            caption = event[2]
            if caption is None:
                caption = next((e[1] for e in event[1] if e[0] in ("c", "sc")), None)
            if caption is not None and caption.strip():
                found.append(SubFigure(caption, _graphics_of(event[1]), _first_label(event[1], caption)))
        elif event[0] == "b":
            caption = next((e[1] for e in event[1] if e[0] == "sc"), None)
            if caption is not None:
                found.append(SubFigure(caption, _graphics_of(event[1]), _first_label(event[1], caption)))
            else:
                found.extend(_subfigures_of(event[1]))
    return found


def _main_captions(events: list[_Event]) -> list[_Event]:
    found = []
    for event in events:
        if event[0] == "c":
            found.append(event)
        elif event[0] == "b":
            found.extend(_main_captions(event[1]))
    return found


def _make_float(env: str, events: list[_Event], caption: _Event | None, start: int, label: str | None = None):
    raw = caption[1] if caption else None
    return FigureFloat(
        env=env,
        caption=raw,
        graphics=_graphics_of(events),
        subfigures=_subfigures_of(events),
        label=_first_label([], raw) or label or _first_label(events, None),
        has_tikz=_has_tikz(events),
        start=start,
    )


def _assemble(events: list[_Event], env: str, start: int) -> list[FigureFloat]:
    """One float per main caption: a float with several captions (e.g. one per minipage) is split, graphics
    going to the caption of their minipage, else to the caption they precede (or follow, when captions
    come first)."""
    captions = _main_captions(events)
    if len(captions) <= 1:
        return [_make_float(env, events, captions[0] if captions else None, start)]
    content_kinds = ("g", "s", "b")
    first = next((e[0] for e in events if e[0] == "c" or (e[0] in content_kinds and _graphics_of([e]))), "c")
    captions_first = first == "c"
    parts: list[FigureFloat | list] = []  # built floats, or [caption event, content events, label]
    pending: list[_Event] = []
    for event in events:
        kind = event[0]
        if kind == "b" and (inner := _main_captions(event[1])):
            parts.extend(_assemble(event[1], env, inner[0][2]))
        elif kind == "c" and captions_first:
            parts.append([event, [], None])
        elif kind == "c":
            parts.append([event, pending, None])
            pending = []
        elif kind == "l" and parts and isinstance(parts[-1], list) and parts[-1][2] is None:
            parts[-1][2] = event[1]
        elif captions_first and parts and isinstance(parts[-1], list):
            parts[-1][1].append(event)
        else:
            pending.append(event)
    open_parts = [p for p in parts if isinstance(p, list)]
    if pending and open_parts:
        open_parts[-1][1].extend(pending)
    return [p if isinstance(p, FigureFloat) else _make_float(env, p[1], p[0], p[0][2], p[2]) for p in parts]


def _float_spans(masked: str) -> list[tuple[str, int, int, int, int]]:
    """Top-level float environments: (env, begin start, body start, body end, end end)."""
    spans = []
    current: tuple[str, int, int] | None = None
    depth = 0
    for m in _ENV_RE.finditer(masked):
        env = m.group(2)
        if env not in _FLOAT_ENVS:
            continue
        if m.group(1) == "begin":
            if current is None:
                current, depth = (env, m.start(), m.end()), 1
            elif env == current[0]:
                depth += 1
        elif current is not None and env == current[0]:
            depth -= 1
            if depth == 0:
                spans.append((*current, m.start(), m.end()))
                current = None
    if current is not None:
        end = min(len(masked), current[2] + _MAX_UNCLOSED_FLOAT)
        spans.append((*current, end, end))
    return spans


_CAPTIONOF_RE = re.compile(r"\\\\|\\captionof(?![a-zA-Z@])")
_BOX_BEGIN_RE = re.compile(r"\\begin\s*\{\s*(minipage|center|flushleft|flushright|adjustbox)\s*\}")
_MAX_CAPTIONOF = 500  # \captionof commands looked at per document
_WINDOW = 20_000  # how far around a \captionof its enclosing group is looked for


def _env_end(masked: str, env: str, pos: int, limit: int) -> tuple[int, int]:
    """(start of the ``\\end{env}`` matching a ``\\begin{env}`` that ends at ``pos``, offset after it),
    or (limit, limit)."""
    depth = 0
    for m in _ENV_RE.finditer(masked, pos, limit):
        if m.group(2) != env:
            continue
        if m.group(1) == "begin":
            depth += 1
        elif depth == 0:
            return m.start(), m.end()
        else:
            depth -= 1
    return limit, limit


def _enclosing_region(src: _Source, position: int) -> tuple[int, int]:
    """Innermost minipage/center/flush/adjustbox environment or brace group around ``position``, else its
    paragraph."""
    masked = src.masked
    floor = max(0, position - _WINDOW)
    limit = min(len(masked), position + _WINDOW)
    region = None
    brace = position
    for _ in range(2_000):
        brace = masked.rfind("{", floor, brace)
        if brace < 0:
            break
        close = src.braces.get(brace)
        if close is not None and close > position:
            region = (brace + 1, close)
            break
    begins = list(_BOX_BEGIN_RE.finditer(masked, region[0] if region else floor, position))
    for m in reversed(begins[-20:]):
        end = _env_end(masked, m.group(1), m.end(), limit)[0]
        if position < end < limit:
            return m.end(), end
    if region is not None:
        return region
    before = masked.rfind("\n\n", floor, position)
    after = masked.find("\n\n", position, limit)
    return (floor if before < 0 else before, limit if after < 0 else after)


def _captionof_regions(src: _Source, float_spans: list) -> list[tuple[int, int]]:
    """Regions around the ``\\captionof`` commands that are outside floats (de-duplicated)."""
    starts = [span[1] for span in float_spans]
    regions: list[tuple[int, int]] = []
    seen = 0
    for m in _CAPTIONOF_RE.finditer(src.masked):
        if m.group() == "\\\\":
            continue
        index = bisect_right(starts, m.start()) - 1
        if index >= 0 and m.start() < float_spans[index][4]:
            continue
        region = _enclosing_region(src, m.start())
        if region not in regions:
            regions.append(region)
        seen += 1
        if seen >= _MAX_CAPTIONOF:
            break
    return regions


def find_figures(tex: str, macros: Macros | None = None) -> list[FigureFloat]:
    """Figure floats of a document, in order: ``figure``, ``wrapfigure``, ``SCfigure``,
    ``sidewaysfigure`` (and starred variants), ``\\captionof{figure}`` outside floats (env
    ``captionof``, with the graphics of its minipage/group), and floats produced by user macros.

    Graphics come from ``\\includegraphics``, ``\\plotone``, ``\\plottwo``, ``\\epsfig``, ``\\psfig``,
    ``\\epsfbox``, ``\\includestandalone``, ``\\includesvg`` (and ``\\pgfimage``, ``\\plotfiddle``), also
    when wrapped in user macros; sub-figures from ``\\subfigure``, ``\\subfloat``, ``\\sidesubfloat``,
    ``\\subcaptionbox``, the ``subfigure`` environment and minipages with ``\\subcaption``. A float with
    several main captions (one per minipage) gives one `FigureFloat` per caption. Macro templates (floats
    holding ``#1``) and floats with neither caption, graphics nor drawing are left out."""
    found = _find_figures(_source(tex), macros, 0)
    found = [f for f in found if f.caption is not None or f.graphics or f.has_tikz]
    found.sort(key=lambda figure: figure.start)
    return found


def _find_figures(src: _Source, macros: Macros | None, depth: int) -> list[FigureFloat]:
    tex = src.text
    spans = _float_spans(src.masked)
    found: list[FigureFloat] = []
    for env, begin, body_start, body_end, _end in spans:
        if _PARAM_RE.search(src.masked, body_start, body_end):
            continue
        scanner = _FigureScanner(src, macros)
        body = scanner._skip_args(_FLOAT_ARGS.get(env.rstrip("*"), "["), body_start, body_end)
        found.extend(_assemble(scanner.scan(body, body_end), env, begin))
    for region_start, region_end in _captionof_regions(src, spans):
        events = _FigureScanner(src, macros).scan(region_start, region_end)
        captions = _main_captions(events)
        if captions:
            found.extend(_assemble(events, "captionof", captions[0][2]))
    if macros and depth < 2 and (float_macros := macros.structural()[1]):
        names = "|".join(re.escape(name) for name in sorted(float_macros))
        starts = [span[1] for span in spans]
        for m in re.finditer(r"\\\\|\\(" + names + r")(?![a-zA-Z@])", src.masked):
            index = bisect_right(starts, m.start()) - 1
            if m.group(1) is None or (index >= 0 and m.start() < spans[index][4]):
                continue
            end = _macro_call_end(src, macros.definitions[m.group(1)], m.end(), len(tex))
            expanded = _Source(_expand_text(tex[m.start() : end], macros))
            for figure in _find_figures(expanded, macros, depth + 1):
                figure.start = m.start()
                found.append(figure)
    return found


# --------------------------------------------------------------------------------------------------
# Caption text
# --------------------------------------------------------------------------------------------------

_TEXT_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304", ".": "\u0307",
    "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328", "r": "\u030a", "d": "\u0323",
    "b": "\u0331", "t": "\u0361",
}  # fmt: skip
_MATH_ACCENTS = {
    "hat": "\u0302", "widehat": "\u0302", "check": "\u030c", "breve": "\u0306", "acute": "\u0301",
    "grave": "\u0300", "tilde": "\u0303", "widetilde": "\u0303", "bar": "\u0304", "overline": "\u0305",
    "vec": "\u20d7", "dot": "\u0307", "ddot": "\u0308", "dddot": "\u20db", "mathring": "\u030a",
}  # fmt: skip
_RELATIONS = _names(
    "le leq ge geq leqslant geqslant ll gg neq ne approx sim simeq cong equiv propto lesssim gtrsim la ga "
    "times pm mp cdot to rightarrow leftarrow Rightarrow Leftarrow leftrightarrow Leftrightarrow mapsto "
    "longrightarrow in notin subset subseteq supset supseteq div"
)
_OPERATOR_NAMES = _names(
    "log ln lg exp sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh coth max min sup inf lim "
    "limsup liminf det dim ker arg deg gcd Pr hom mod bmod"
)
_TEXT_LETTERS = _names("ss o O ae AE oe OE aa AA l L i j")
_OWN_SYMBOLS = {
    # pylatexenc's table, overridden where a plain form reads better, plus common package commands
    "sim": "~", "ldots": "...", "dots": "...", "cdots": "...", "textellipsis": "...", "dotsc": "...",
    "dotsb": "...", "hellip": "...", "today": "", "TeX": "TeX", "LaTeX": "LaTeX", "LaTeXe": "LaTeX2e",
    "BibTeX": "BibTeX", "XeTeX": "XeTeX", "LuaTeX": "LuaTeX", "S": "§", "P": "¶", "textdegree": "°",
    "degree": "°", "celsius": "°C", "copyright": "©", "textregistered": "®", "textasciitilde": "~",
    "textasciicircum": "^", "textbar": "|", "textless": "<", "textgreater": ">", "textunderscore": "_",
    "textquotedbl": '"', "textquotesingle": "'", "checkmark": "✓", "cmark": "✓", "xmark": "✗", "quad": " ",
    "qquad": " ", "enskip": " ", "enspace": " ", "-": "", "nolinebreak": "", "textcompwordmark": "",
    "eg": "e.g.", "Eg": "E.g.", "ie": "i.e.", "Ie": "I.e.", "etal": "et al.", "etc": "etc.", "cf": "cf.",
    "Cf": "Cf.", "vs": "vs.", "wrt": "w.r.t.", "dof": "d.o.f.", "sun": "☉", "Sun": "☉", "earth": "⊕",
    "degr": "°", "arcdeg": "°", "arcmin": "′", "arcsec": "″", "farcm": "′", "farcs": "″", "micron": "μm",
    "Msun": "M☉", "Lsun": "L☉", "Rsun": "R☉", "Mearth": "M⊕", "Rearth": "R⊕", "la": "≲", "ga": "≳",
    "lesssim": "≲", "gtrsim": "≳", "ne": "≠", "owns": "∋", "land": "∧", "lor": "∨", "lnot": "¬", "neg": "¬",
    "iff": "⟺", "implies": "⟹", "gets": "←", "lbrace": "{", "rbrace": "}", "lbrack": "[", "rbrack": "]",
    "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉", "star": "⋆", "diamond": "⋄", "Box": "□",
    "square": "□", "triangle": "△", "bigstar": "★", "blacktriangle": "▲", "div": "÷", "textmu": "µ",
    "textperthousand": "‰", "dag": "†", "ddag": "‡", "textdagger": "†", "textdaggerdbl": "‡", "bullet": "•",
    "textbullet": "•", "cdotp": "·", "colon": ":", "vert": "|", "Vert": "‖", "|": "‖", "backslash": "\\",
    "bmod": "mod", "mod": "mod", "percent": "%", "textpercent": "%", "textdollar": "$", "textsterling": "£",
    "texteuro": "€", "euro": "€", "textyen": "¥", "AA": "Å", "angstrom": "Å", "textohm": "Ω", "ohm": "Ω",
}  # fmt: skip
_DROP = _names(
    "centering raggedright raggedleft noindent indent relax protect displaystyle textstyle scriptstyle "
    "scriptscriptstyle nobreak allowbreak hfill vfill hfil vfil hss null ignorespaces unskip leavevmode "
    "selectfont strut mathstrut smallskip medskip bigskip clearpage newpage cleardoublepage sloppy fussy "
    "limits nolimits nonumber notag boldmath unboldmath tiny scriptsize footnotesize small normalsize large "
    "Large LARGE huge Huge bf it rm sf tt sc sl em bfseries itshape rmfamily sffamily ttfamily scshape "
    "slshape upshape mdseries normalfont middle big Big bigg Bigg bigl bigr Bigl Bigr biggl "
    "biggr Biggl Biggr bigm Bigm phantomsection makeatletter makeatother hline toprule midrule bottomrule "
    "nopagebreak pagebreak footnoterule frenchspacing nonfrenchspacing normalcolor arraybackslash global "
    "long protected expandafter noexpand string aftergroup onecolumn twocolumn FloatBarrier"
)
_SPACES = _names("newline linebreak par space nobreakspace thinspace medspace thickspace negthinspace break")
_REFS = _names(
    "ref eqref autoref Autoref cref Cref pageref vref Vref nameref subref autopageref cpageref Cpageref "
    "labelcref crefrange Crefrange fref Fref figref Figref tabref secref eqnref"
)
_CITES = _names(
    "cite citep citet citealt citealp citeauthor citeyear citeyearpar citenum Cite Citep Citet Citealt "
    "Citealp Citeauthor parencite Parencite textcite Textcite autocite Autocite footcite smartcite "
    "supercite cites citetext citeNP citeA nocite shortcite shortciteN citeN"
)
# arguments of commands whose last mandatory argument is kept: "*" star, "[" optional, "{" mandatory;
# the mode letter says how the kept argument is read: t(ext), m(ath) or s(ame as around)
_KEEP_LAST = {
    **{name: ("{", "t") for name in _names(
        "textbf textit textsl textsc textsf texttt textrm textup textmd textnormal emph uline uuline uwave "
        "sout xout hl ul textsuperscript textsubscript mbox hbox fbox text intertext reflectbox lowercase "
        "uppercase MakeUppercase MakeLowercase MakeTextUppercase MakeTextLowercase textls")},
    **{name: ("{", "s") for name in _names(
        "mathrm mathbf mathit mathsf mathtt mathcal mathscr mathfrak mathnormal boldsymbol bm pmb mathds "
        "mathbbm mathop mathbin mathrel mathord substack llap rlap clap mathllap mathrlap mathclap boxed "
        "cancel bcancel xcancel underbrace overbrace overrightarrow overleftarrow underline")},
    "operatorname": ("*{", "s"), "textcolor": ("[{{", "t"), "colorbox": ("[{{", "t"),
    "fcolorbox": ("[{{{", "t"), "href": ("[{{", "t"), "hyperref": ("[{", "t"), "hyperlink": ("{{", "t"),
    "hypertarget": ("{{", "t"), "texorpdfstring": ("{{", "t"), "makebox": ("[[{", "t"),
    "framebox": ("[[{", "t"), "raisebox": ("{[[{", "t"), "scalebox": ("{[{", "t"), "resizebox": ("*{{{", "t"),
    "rotatebox": ("[{{", "t"), "parbox": ("[[[{{", "t"), "adjustbox": ("{{", "t"), "smash": ("[{", "s"),
    "foreignlanguage": ("[{{", "t"), "multicolumn": ("{{{", "t"), "multirow": ("[{[{[{", "t"),
    "makecell": ("[{", "t"), "stackrel": ("{{", "s"), "overset": ("{{", "s"), "underset": ("{{", "s"),
    "enquote": ("*{", "t"), "textquote": ("[[{", "t"), "tcbox": ("[{", "t"), "shortstack": ("[{", "t"),
}  # fmt: skip
_DROP_ARGS = {
    **{name: "*[[{" for name in _CITES},
    "label": "{", "index": "{", "glossary": "{", "vspace": "*{", "hspace": "*{", "footnote": "[{", "footnotemark": "[",
    "footnotetext": "[{", "thanks": "{", "color": "[{", "pagecolor": "[{", "setlength": "{{",
    "addtolength": "{{", "setcounter": "{{", "addtocounter": "{{", "captionsetup": "[{", "rule": "[{{",
    "includegraphics": "*[[{", "adjincludegraphics": "[{", "plotone": "{", "plottwo": "{{", "epsfig": "{",
    "psfig": "{", "epsfbox": "[{", "epsffile": "{", "includestandalone": "[{", "includesvg": "[{",
    "pgfimage": "[{", "phantom": "{", "hphantom": "{", "vphantom": "{", "definecolor": "{{{",
    "tikzset": "{", "pgfplotsset": "{", "tikz": "[{", "input": "{", "include": "{", "addcontentsline": "{{{",
    "bibliography": "{", "bibliographystyle": "{", "selectlanguage": "{", "fontsize": "{{", "linespread": "{",
    "newcommand": "*{[[{", "renewcommand": "*{[[{", "providecommand": "*{[[{", "tag": "*{", "hypersetup": "{",
    "urlstyle": "{", "graphicspath": "{", "arrayrulecolor": "{", "rowcolor": "[{", "cellcolor": "[{",
    "columncolor": "[{", "specialrule": "{{{", "cline": "{", "cmidrule": "[{", "orcid": "{", "orcidlink": "{",
    "todo": "[{", "marginpar": "[{", "caption": "*[{", "subcaption": "*[{",
}  # fmt: skip
_FRACTIONS = _names("frac dfrac tfrac cfrac nicefrac sfrac xfrac flatfrac")
_ENV_ARGS = {
    "minipage": "[[[{",
    "tabular": "[{",
    "tabular*": "{[{",
    "tabularx": "{[{",
    "array": "[{",
    "adjustbox": "{",
    "wrapfigure": "[{[{",
    "subfigure": "[{",
    "multicols": "{",
    "tcolorbox": "[",
}
_MATH_ENVS = _names(
    "equation equation* align align* alignat alignat* gather gather* multline multline* flalign flalign* "
    "eqnarray eqnarray* displaymath math dmath dmath*"
)
_SI_UNITS = {
    "percent": "%", "degree": "°", "degreeCelsius": "°C", "celsius": "°C", "kelvin": "K", "metre": "m",
    "meter": "m", "second": "s", "gram": "g", "hertz": "Hz", "joule": "J", "watt": "W", "volt": "V",
    "ampere": "A", "newton": "N", "pascal": "Pa", "ohm": "Ω", "tesla": "T", "gauss": "G", "mole": "mol",
    "litre": "l", "liter": "l", "arcsecond": "″", "arcminute": "′", "angstrom": "Å", "parsec": "pc",
    "year": "yr", "day": "d", "hour": "h", "minute": "min", "electronvolt": "eV", "byte": "B", "bit": "bit",
    "dB": "dB", "decibel": "dB", "radian": "rad", "steradian": "sr", "candela": "cd", "au": "au",
    "astronomicalunit": "au", "solarmass": "M☉", "pc": "pc", "yocto": "y", "zepto": "z", "atto": "a",
    "femto": "f", "pico": "p", "nano": "n", "micro": "µ", "milli": "m", "centi": "c", "deci": "d",
    "kilo": "k", "mega": "M", "giga": "G", "tera": "T", "peta": "P", "km": "km", "cm": "cm", "mm": "mm",
    "um": "µm", "nm": "nm", "kg": "kg", "mg": "mg", "ms": "ms", "us": "µs", "ns": "ns", "Hz": "Hz",
    "kHz": "kHz", "MHz": "MHz", "GHz": "GHz", "eV": "eV", "keV": "keV", "MeV": "MeV", "GeV": "GeV",
    "TeV": "TeV", "mW": "mW", "kW": "kW", "mV": "mV", "kV": "kV", "mA": "mA", "K": "K", "s": "s", "m": "m",
    "g": "g", "L": "L", "mL": "mL", "uL": "µL", "min": "min", "h": "h",
}  # fmt: skip
_ROMAN = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
_DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ", "H": "ℍ", "E": "𝔼", "1": "𝟙"}
_LEADING_RELATION_RE = re.compile(r"^([~≈≲≳<>≤≥∝]) +")
_MATH_OPEN = {"\\(": "\\)", "\\[": "\\]"}


@cache
def _symbols() -> dict[str, str]:
    """Argument-less commands -> text, from pylatexenc's latex2text tables plus `_OWN_SYMBOLS`."""
    from pylatexenc.latex2text import get_default_latex_context_db

    db = get_default_latex_context_db()
    table: dict[str, str] = {}
    for category in ("advanced-symbols", "latex-base"):
        for name, spec in db.d[category]["macros"].items():
            text = spec.simplify_repl
            if isinstance(text, str) and "%" not in text and name not in table:
                table[name] = " " if text and not text.strip() else text
    table.update(_OWN_SYMBOLS)
    return table


def _accent(base: str, mark: str) -> str:
    if not base:
        return {"\u0303": "~", "\u0302": "^"}.get(mark, "")
    first = {"ı": "i", "ȷ": "j"}.get(base[0], base[0])
    return first + mark + base[1:]


def _wrap(text: str) -> str:
    """Sub/superscript and fraction operands: parentheses unless a single simple term."""
    text = text.strip()
    return text if re.fullmatch(r"[-+−]?[^\s+\-−=<>/,;:()]*", text) else f"({text})"


def _roman(number: str) -> str:
    return _ROMAN[int(number)] if number.isdigit() and int(number) < len(_ROMAN) else number


class _Converter:
    """Converts an expanded token list to plain text (see `caption_to_text`)."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.symbols = _symbols()
        self.match: dict[int, int] = {}
        stack: list[int] = []
        for index, token in enumerate(tokens):
            if token == "{":
                stack.append(index)
            elif token == "}" and stack:
                self.match[stack.pop()] = index

    # -- argument reading (ranges over self.tokens; a letter run can be split for a one-letter argument) --
    def _skip_space(self, i: int, hi: int) -> int:
        while i < hi and self.tokens[i].isspace():
            i += 1
        return i

    def arg(self, i: int, hi: int) -> tuple[tuple[int, int] | str, int]:
        """Next mandatory argument: ``(lo, hi)`` token range or a literal one-character string."""
        i = self._skip_space(i, hi)
        if i >= hi:
            return "", i
        token = self.tokens[i]
        if token == "{":
            close = self.match.get(i, hi)
            close = min(close, hi)
            return (i + 1, close), close + 1
        if token == "}":
            return "", i
        if len(token) > 1 and token[0] not in "\\#" and not token.isspace():
            self.tokens[i] = token[1:]
            return token[0], i
        return (i, i + 1), i + 1

    def optional(self, i: int, hi: int) -> tuple[tuple[int, int] | None, int]:
        j = self._skip_space(i, hi)
        if j >= hi or self.tokens[j] != "[":
            return None, i
        k = j + 1
        while k < hi and k - j < _MAX_OPTIONAL:
            token = self.tokens[k]
            if token == "]":
                return (j + 1, k), k + 1
            k = self.match.get(k, k) + 1 if token == "{" else k + 1
        return None, i

    def args(self, spec: str, i: int, hi: int) -> tuple[list, int]:
        found: list = []
        for kind in spec:
            if kind == "*":
                starred = i < hi and self.tokens[i] == "*"
                i += starred
                found.append(starred)
            elif kind == "[":
                value, i = self.optional(i, hi)
                found.append(value)
            else:
                value, i = self.arg(i, hi)
                found.append(value)
        return found, i

    def text_of(self, value, math: bool, depth: int) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return self.convert(value[0], value[1], math, depth + 1)

    def raw_of(self, value) -> str:
        if value is None or isinstance(value, str):
            return value or ""
        raw = _detokenize(self.tokens[value[0] : value[1]])
        return re.sub(r"\\([_%#&~$/])", r"\1", raw).replace(" ", "").strip()

    # -- conversion --
    def convert(self, lo: int, hi: int, math: bool, depth: int) -> str:
        if depth > _MAX_DEPTH:
            return re.sub(r"\\[a-zA-Z@]+|\\.|[{}$]", " ", "".join(self.tokens[lo:hi]))
        out: list[str] = []
        math_start: int | None = None  # index in out where the current inline math began
        closer: str | None = None  # token (or \end{env} name) that closes the current math
        i = lo
        tokens = self.tokens
        while i < hi:
            token = tokens[i]
            i += 1
            first = token[0]
            if first == "$" or token in _MATH_OPEN or token in ("\\)", "\\]"):
                if first == "$" and i < hi and tokens[i] == "$":
                    i += 1
                if math_start is None and not math and token not in ("\\)", "\\]"):
                    math_start, math, closer = len(out), True, _MATH_OPEN.get(token, "$")
                elif math_start is not None and (first == "$" or token == closer):
                    self._close_math(out, math_start)
                    math_start, math, closer = None, False, None
            elif first == "\\":
                if token in ("\\begin", "\\end"):
                    value, i = self.arg(i, hi)
                    env = self.raw_of(value)
                    if token == "\\begin":
                        if env in _MATH_ENVS and not math:
                            out.append(" ")
                            math_start, math, closer = len(out), True, env
                        elif env in _ENV_ARGS:
                            _, i = self.args(_ENV_ARGS[env], i, hi)
                    elif math_start is not None and env == closer:
                        self._close_math(out, math_start)
                        out.append(" ")
                        math_start, math, closer = None, False, None
                    else:
                        out.append(" ")
                else:
                    after = self.command(token, i, hi, out, math, depth)
                    if math and after == i and after < hi and tokens[after].isspace() and _is_word(token):
                        after += 1  # in math the space after a control word is TeX's, not the author's
                    i = after
            elif first == "{":
                close = min(self.match.get(i - 1, hi), hi)
                out.append(self.convert(i, close, math, depth + 1))
                i = close + 1
            elif first in "^_":
                value, i = self.arg(i, hi)
                out.append(self._script(first, self.text_of(value, True, depth)))
            elif first in "~&" or token.isspace():
                out.append(" ")
            elif first in "}#":
                continue
            elif math:
                out.append(f" {token} " if token in "=<>" else token)
            elif first == "-" and i < hi and tokens[i] == "-":
                i += 1
                if i < hi and tokens[i] == "-":
                    i += 1
                    out.append("—")
                else:
                    out.append("–")
            elif first in "`'" and i < hi and tokens[i] == first:
                i += 1
                out.append("“" if first == "`" else "”")
            elif first == "`":
                out.append("‘")
            else:
                out.append(token)
        if math_start is not None:
            self._close_math(out, math_start)
        return "".join(out)

    @staticmethod
    def _close_math(out: list[str], start: int) -> None:
        run = "".join(out[start:]).strip()
        before = "".join(out[max(0, start - 3) : start])
        if run[:1] in ("^", "_") and (not before or before[-1].isspace()):
            run = run[1:]  # $^{13}$C -> 13C
        run = _LEADING_RELATION_RE.sub(r"\1", run)  # $\sim 10$ -> ~10
        del out[start:]
        out.append(run)

    @staticmethod
    def _script(marker: str, content: str) -> str:
        content = content.strip()
        if content in ("∘", "°") and marker == "^":
            return "°"
        if content in ("'", "′", "''", "′′"):
            return content
        return marker + _wrap(content) if content else ""

    def command(self, token: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        name = token[1:]
        if len(name) <= 1 and not name.isalpha():
            return self._control_symbol(name, i, hi, out, math, depth)
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(self, name, i, hi, out, math, depth)
        if name in _KEEP_LAST:
            spec, mode = _KEEP_LAST[name]
            values, i = self.args(spec, i, hi)
            text = self.text_of(values[-1], math if mode == "s" else mode == "m", depth)
            if name in ("MakeUppercase", "uppercase", "MakeTextUppercase"):
                text = text.upper()
            elif name in ("MakeLowercase", "lowercase", "MakeTextLowercase"):
                text = text.lower()
            elif name in ("enquote", "textquote"):
                text = f"“{text}”"
            out.append(text + (_SOFT if name == "operatorname" and math else ""))
            return i
        if name in _REFS:
            _, i = self.args("*{", i, hi)
            out.append("[ref]")
            return i
        if name in _DROP_ARGS:
            _, i = self.args(_DROP_ARGS[name], i, hi)
            return i
        if name in _OPERATOR_NAMES:
            out.append(name + (_SOFT if math else ""))
            return i
        symbol = self.symbols.get(name)
        if symbol is not None:
            if math and name in _RELATIONS:
                symbol = f" {symbol} "
            out.append(symbol)
            if name in _TEXT_LETTERS and i < hi and self.tokens[i].isspace():
                i += 1
            return i
        if name in _SPACES:
            out.append(" ")
            return i
        if name in _DROP:
            return i
        # unknown: drop the command (and a star or an [option] directly before a {group}); keep the group
        if i < hi and self.tokens[i] == "*":
            i += 1
        if i < hi and self.tokens[i] == "[":
            value, after = self.optional(i, hi)
            if (
                value is not None
                and self._skip_space(after, hi) < hi
                and self.tokens[self._skip_space(after, hi)] == "{"
            ):
                i = after
        return i

    def _control_symbol(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        if name == "\\":
            _, i = self.args("*[", i, hi)
            out.append(" ")
        elif name in "%&#$_{}" and name:
            out.append(name)
        elif name in _TEXT_ACCENTS and name:
            i = _handle_accent(self, name, i, hi, out, math, depth)
        elif name in ",;:> \n\t" and name:
            out.append(" ")
        elif name == "|":
            out.append("‖")
        return i  # \! \/ \- \@ and anything else: nothing


def _handle_accent(self: _Converter, name, i, hi, out, math, depth) -> int:
    value, i = self.arg(i, hi)
    if (
        isinstance(value, tuple)
        and value[1] - value[0] == 1
        and _is_word(self.tokens[value[0]])
        and (i < hi and self.tokens[i].isspace())
    ):
        i += 1  # a space after a control word belongs to it: \"\i ve -> ïve
    content = self.text_of(value, math, depth)
    mark = _TEXT_ACCENTS.get(name) or _MATH_ACCENTS[name]
    if name in _MATH_ACCENTS and len(content.strip()) != 1:
        out.append(content)
    else:
        out.append(_accent(content.strip() if name in _MATH_ACCENTS else content, mark))
    return i


def _handle_fraction(self: _Converter, name, i, hi, out, math, depth) -> int:
    (numerator, denominator), i = self.args("{{", i, hi)
    top, bottom = self.text_of(numerator, True, depth), self.text_of(denominator, True, depth)
    out.append(f"{_wrap(top)}/{_wrap(bottom)}")
    return i


def _handle_binom(self: _Converter, name, i, hi, out, math, depth) -> int:
    (top, bottom), i = self.args("{{", i, hi)
    out.append(f"C({self.text_of(top, True, depth).strip()}, {self.text_of(bottom, True, depth).strip()})")
    return i


def _handle_sqrt(self: _Converter, name, i, hi, out, math, depth) -> int:
    (index, value), i = self.args("[{", i, hi)
    root = self.text_of(index, True, depth).strip()
    out.append(f"{root}√{_wrap(self.text_of(value, True, depth))}")
    return i


def _handle_url(self: _Converter, name, i, hi, out, math, depth) -> int:
    values, i = self.args("[{" if name == "doi" else "{", i, hi)
    out.append(self.raw_of(values[-1]))
    return i


def _handle_verb(self: _Converter, name, i, hi, out, math, depth) -> int:
    if i < hi and self.tokens[i] == "*":
        i += 1
    if i >= hi:
        return i
    delimiter = self.tokens[i]
    closer = "}" if delimiter == "{" else delimiter
    end = i + 1
    while end < hi and self.tokens[end] != closer:
        end += 1
    out.append("".join(self.tokens[i + 1 : end]))
    return end + 1


def _handle_ensuremath(self: _Converter, name, i, hi, out, math, depth) -> int:
    value, i = self.arg(i, hi)
    text = self.text_of(value, True, depth)
    out.append(text if math else text.strip())
    return i


def _handle_mathbb(self: _Converter, name, i, hi, out, math, depth) -> int:
    value, i = self.arg(i, hi)
    text = self.text_of(value, True, depth).strip()
    out.append(_DOUBLE_STRUCK.get(text, text))
    return i


def _handle_not(self: _Converter, name, i, hi, out, math, depth) -> int:
    value, i = self.arg(i, hi)
    text = self.text_of(value, math, depth).strip()
    out.append(f" {text}\u0338 " if text else "")
    return i


def _handle_item(self: _Converter, name, i, hi, out, math, depth) -> int:
    value, i = self.optional(i, hi)
    out.append(" " + self.text_of(value, math, depth) + " ")
    return i


def _handle_arrow(self: _Converter, name, i, hi, out, math, depth) -> int:
    _, i = self.args("[{", i, hi)
    out.append(" → " if name == "xrightarrow" else " ← ")
    return i


def _handle_delimiter_size(self: _Converter, name, i, hi, out, math, depth) -> int:
    if i < hi and self.tokens[i] == ".":
        i += 1  # \left. / \right.
    return i


def _handle_xspace(self: _Converter, name, i, hi, out, math, depth) -> int:
    out.append(_XSPACE)
    return i


_SI_PREFIXES = _names("yocto zepto atto femto pico nano micro milli centi deci kilo mega giga tera peta")


def _si_unit(self: _Converter, value) -> str:
    """siunitx unit: ``\\kilo\\metre\\per\\second`` -> ``km/s``, ``\\square\\metre`` -> ``m^2``; literal units kept."""
    if value is None or isinstance(value, str):
        return value or ""
    pieces: list[str] = []
    power = ""
    glued = True  # no space before the next unit (start, after a prefix or a /)
    for token in self.tokens[value[0] : value[1]]:
        name = token[1:] if _is_word(token) else None
        if name in ("square", "cubic"):
            power = "^2" if name == "square" else "^3"
        elif name in ("squared", "cubed"):
            pieces.append("^2" if name == "squared" else "^3")
        elif name == "per":
            pieces.append("/")
            glued = True
        elif name is not None:
            pieces.append(("" if glued else " ") + _SI_UNITS.get(name, name) + power)
            power, glued = "", name in _SI_PREFIXES
        elif token not in ("{", "}"):
            pieces.append(token)
            glued = True
    return "".join(pieces).strip()


def _handle_siunitx(self: _Converter, name, i, hi, out, math, depth) -> int:
    if name in ("SI", "qty"):
        (_, number, unit), i = self.args("[{{", i, hi)
        out.append(f"{self.text_of(number, True, depth).strip()} {_si_unit(self, unit)}")
    elif name in ("SIrange", "qtyrange"):
        (_, low, high, unit), i = self.args("[{{{", i, hi)
        unit_text = _si_unit(self, unit)
        out.append(
            f"{self.text_of(low, True, depth).strip()} {unit_text} to "
            f"{self.text_of(high, True, depth).strip()} {unit_text}"
        )
    elif name in ("si", "unit"):
        (_, unit), i = self.args("[{", i, hi)
        out.append(_si_unit(self, unit))
    elif name == "ang":
        (_, angle), i = self.args("[{", i, hi)
        parts = self.text_of(angle, True, depth).split(";")
        out.append(
            "".join(part.strip() + unit for part, unit in zip(parts, "°′″", strict=False) if part.strip())
        )
    elif name == "numrange":
        (_, low, high), i = self.args("[{{", i, hi)
        out.append(f"{self.text_of(low, True, depth).strip()} to {self.text_of(high, True, depth).strip()}")
    else:  # num
        (_, number), i = self.args("[{", i, hi)
        out.append(self.text_of(number, True, depth).strip())
    return i


def _handle_ion(self: _Converter, name, i, hi, out, math, depth) -> int:
    (element, stage), i = self.args("{{", i, hi)
    out.append(
        f"{self.text_of(element, False, depth).strip()} {_roman(self.text_of(stage, False, depth).strip())}"
    )
    return i


_HANDLERS = {
    **dict.fromkeys([n for n in _TEXT_ACCENTS if n.isalpha()] + list(_MATH_ACCENTS), _handle_accent),
    **dict.fromkeys(_FRACTIONS, _handle_fraction),
    **dict.fromkeys(("binom", "dbinom", "tbinom"), _handle_binom),
    "sqrt": _handle_sqrt,
    **dict.fromkeys(("url", "nolinkurl", "path", "email", "doi"), _handle_url),
    **dict.fromkeys(("verb", "lstinline"), _handle_verb),
    "ensuremath": _handle_ensuremath,
    **dict.fromkeys(("mathbb", "mathbbm", "mathds"), _handle_mathbb),
    "not": _handle_not,
    "item": _handle_item,
    **dict.fromkeys(("xrightarrow", "xleftarrow"), _handle_arrow),
    **dict.fromkeys(("left", "right"), _handle_delimiter_size),
    "xspace": _handle_xspace,
    **dict.fromkeys(
        ("SI", "si", "num", "ang", "qty", "unit", "SIrange", "qtyrange", "numrange"), _handle_siunitx
    ),
    "ion": _handle_ion,
}

_EMPTY_BRACKETS_RE = re.compile(r"(^|\s)(?:\(\s*[,;]?\s*\)|\[\s*[,;]?\s*\])")  # left by removed citations
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,;:!?])(?=\s|$|[)\]\"”’])")


def _tidy(text: str) -> str:
    text = re.sub(_XSPACE + r"+(?=[^\s,.'/?;:!~\-)\]}’”…" + _XSPACE + _SOFT + "])", " ", text)
    text = re.sub(_SOFT + r"+(?=[^\W_])", " ", text)
    text = text.replace(_XSPACE, "").replace(_SOFT, "")
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text)
    text = _EMPTY_BRACKETS_RE.sub(r"\1", text)
    text = re.sub(r"\s*[,;]\s*\)", ")", text)
    text = re.sub(r"([(⟨])\s*[,;]?\s*", r"\1", text)
    text = re.sub(r"\s+([)⟩])", r"\1", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)  # "et al. \cite{x}." leaves "et al.."; "..." stays
    return re.sub(r"\s+", " ", text).strip()


def caption_to_text(caption_tex: str, macros: Macros | None = None) -> str:
    """Plain-text caption as a person would write it: user macros expanded (bounded by the limits in
    `Macros`), accents and symbols as Unicode, math kept readable
    (``R^2``, ``α``, ``×``, ``a/b``), citations, labels and footnotes removed, references as ``[ref]``,
    links as their text, styling unwrapped, dashes and quotes typographic, whitespace collapsed.
    Unknown commands are dropped and their braced argument text kept.

    Raises ValueError when the caption is longer than `MAX_CAPTION_CHARS` characters or its user macros
    exceed the expansion budget of `Macros` (runaway recursion such as ``\\def\\a{\\a\\a}``).
    """
    if len(caption_tex) > MAX_CAPTION_CHARS:
        raise ValueError(f"caption too long: {len(caption_tex)} characters (limit {MAX_CAPTION_CHARS})")
    tokens = _expand(_tokenize(strip_comments(caption_tex)), macros, strict=True)
    converter = _Converter(tokens)
    return _tidy(converter.convert(0, len(tokens), False, 0))
