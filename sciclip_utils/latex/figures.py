"""The figure finder: figure floats of a document with their captions (raw TeX), graphics, sub-figures and
labels, found on the masked source (see `source`), user macros holding figure parts expanded."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from .macros import MacroDef, Macros, expand_text
from .source import MAX_DEPTH, Source, cached_source, names, strip_comments

_MAX_UNCLOSED_FLOAT = 50_000  # extent given to a float whose \end is missing


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
class LeftOut:
    """A float environment that `find_figures` does not return, and why."""

    env: str
    start: int  # offset in the given text
    reason: str


@dataclass
class FigureFloat:
    env: str  # figure, figure*, wrapfigure, SCfigure, sidewaysfigure, ..., captionof
    caption: str | None  # raw TeX of the main caption (long form)
    graphics: list[GraphicRef]  # every graphic of the float in reading order, sub-figures included
    subfigures: list[SubFigure]  # only sub-figures with their own sub-caption
    label: str | None
    has_tikz: bool  # drawn in TeX: tikzpicture/pgfplots/pstricks/picture or \input of *.tikz / *.pgf
    start: int  # offset in the given text


_FLOAT_ENVS = names(
    "figure figure* wrapfigure wrapfigure* SCfigure SCfigure* sidewaysfigure sidewaysfigure* "
    "floatingfigure marginfigure"
)
_FLOAT_ARGS = {"wrapfigure": "[{[{", "SCfigure": "[[", "floatingfigure": "[{"}  # others: [placement]
_SUBFIGURE_ENVS = frozenset({"subfigure", "subfigure*"})
_BOX_ENV_ARGS = {"minipage": "[[[{"}
_TIKZ_ENVS = names(
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
_PARAM_RE = re.compile(r"(?<!\\)#[1-9]")  # a macro parameter; \#1 is a printed "#1"
_DEFINING_RE = re.compile(
    r"\\(?:newcommand|renewcommand|providecommand|DeclareRobustCommand|[gex]?def|let)\*?\s*\{?\s*$"
)
_PATH_NOISE_RE = re.compile(r"\\(?:detokenize|string|noexpand|unexpanded|protect|relax)(?![a-zA-Z@])\s*")

# Scan events: ("g", GraphicRef) graphic, ("c", raw, pos) main caption, ("sc", raw, pos) \subcaption,
# ("l", name) label, ("t",) TeX drawing, ("s", events, caption | None) sub-figure, ("b", events) minipage.
_Event = tuple


def _clean_path(raw: str, macros: Macros | None) -> str:
    text = strip_comments(raw)
    if "\\" in text and macros:
        text = expand_text(text, macros)
    text = _PATH_NOISE_RE.sub("", text)
    return text.replace("{", "").replace("}", "").replace('"', "").strip()


class _FigureScanner:
    """Collects scan events of a region of a `Source`; user macros holding figure parts are expanded."""

    def __init__(self, src: Source, macros: Macros | None, depth: int = 0, origin: int | None = None):
        self.src = src
        self.macros = macros
        self.depth = depth
        self.origin = origin  # position reported for everything found (text produced by a macro call)
        self.structural = macros.matching(_STRUCTURAL_RE) if macros else frozenset()

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
        """Events of ``[start, limit)``; sub-figures and minipages nested deeper than `MAX_DEPTH` are read
        as if flat."""
        src = self.src
        events: list[_Event] = []
        pos = start
        nest = level < MAX_DEPTH
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
        expanded = expand_text(self.src.text[at:end], self.macros)
        nested = _FigureScanner(Source(expanded), self.macros, self.depth + 1, self._pos(at))
        events.extend(nested.scan(0, len(expanded)))
        return end


def _macro_call_end(src: Source, definition: MacroDef, pos: int, limit: int) -> int:
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


def _enclosing_region(src: Source, position: int) -> tuple[int, int]:
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


def _captionof_regions(src: Source, float_spans: list) -> list[tuple[int, int]]:
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


def find_figures(
    tex: str, macros: Macros | None = None, left_out: list[LeftOut] | None = None
) -> list[FigureFloat]:
    """Figure floats of a document, in order: ``figure``, ``wrapfigure``, ``SCfigure``,
    ``sidewaysfigure`` (and starred variants), ``\\captionof{figure}`` outside floats (env
    ``captionof``, with the graphics of its minipage/group), and floats produced by user macros.

    Graphics come from ``\\includegraphics``, ``\\plotone``, ``\\plottwo``, ``\\epsfig``, ``\\psfig``,
    ``\\epsfbox``, ``\\includestandalone``, ``\\includesvg`` (and ``\\pgfimage``, ``\\plotfiddle``), also
    when wrapped in user macros; sub-figures from ``\\subfigure``, ``\\subfloat``, ``\\sidesubfloat``,
    ``\\subcaptionbox``, the ``subfigure`` environment and minipages with ``\\subcaption``. A float with
    several main captions (one per minipage) gives one `FigureFloat` per caption. Macro templates (floats
    holding ``#1``) and floats with neither caption, graphics nor drawing are left out, each added to
    ``left_out`` (when given) with the reason."""
    skipped: list[LeftOut] = []
    found = _find_figures(cached_source(tex), macros, 0, skipped)
    for figure in found:
        if figure.caption is None and not figure.graphics and not figure.has_tikz:
            skipped.append(LeftOut(figure.env, figure.start, "no caption, image or drawing"))
    found = [f for f in found if f.caption is not None or f.graphics or f.has_tikz]
    found.sort(key=lambda figure: figure.start)
    if left_out is not None:
        left_out.extend(sorted(skipped, key=lambda item: item.start))
    return found


def _find_figures(
    src: Source, macros: Macros | None, depth: int, left_out: list[LeftOut]
) -> list[FigureFloat]:
    tex = src.text
    spans = _float_spans(src.masked)
    found: list[FigureFloat] = []
    for env, begin, body_start, body_end, _end in spans:
        if _PARAM_RE.search(src.masked, body_start, body_end):
            left_out.append(LeftOut(env, begin, "macro template (holds a parameter #1..#9)"))
            continue
        scanner = _FigureScanner(src, macros)
        body = scanner._skip_args(_FLOAT_ARGS.get(env.rstrip("*"), "["), body_start, body_end)
        found.extend(_assemble(scanner.scan(body, body_end), env, begin))
    for region_start, region_end in _captionof_regions(src, spans):
        events = _FigureScanner(src, macros).scan(region_start, region_end)
        captions = _main_captions(events)
        if captions:
            found.extend(_assemble(events, "captionof", captions[0][2]))
    if macros and depth < 2 and (float_macros := macros.matching(_FLOAT_BEGIN_RE)):
        names = "|".join(re.escape(name) for name in sorted(float_macros))
        starts = [span[1] for span in spans]
        for m in re.finditer(r"\\\\|\\(" + names + r")(?![a-zA-Z@])", src.masked):
            index = bisect_right(starts, m.start()) - 1
            if m.group(1) is None or (index >= 0 and m.start() < spans[index][4]):
                continue
            if _DEFINING_RE.search(src.masked, max(0, m.start() - 40), m.start()):
                continue  # the name in its own definition, not a call
            end = _macro_call_end(src, macros.definitions[m.group(1)], m.end(), len(tex))
            expanded = Source(expand_text(tex[m.start() : end], macros))
            inner_left_out: list[LeftOut] = []
            for figure in _find_figures(expanded, macros, depth + 1, inner_left_out):
                figure.start = m.start()
                found.append(figure)
            left_out.extend(LeftOut(item.env, m.start(), item.reason) for item in inner_left_out)
    return found
