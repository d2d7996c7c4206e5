"""Caption (and other TeX) to plain text: user macros expanded, accents and symbols as Unicode, math kept
readable, citations/labels/footnotes dropped, styling unwrapped (see `caption_to_text`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from .macros import Macros, detokenize, expand, is_word, tokenize
from .source import MAX_DEPTH, MAX_OPTIONAL, strip_comments
from .symbols import (
    DOUBLE_STRUCK,
    DROP,
    DROP_ARGS,
    ENV_ARGS,
    FRACTIONS,
    KEEP_LAST,
    MATH_ACCENTS,
    MATH_ENVS,
    OPERATOR_NAMES,
    REFS,
    RELATIONS,
    ROMAN,
    SI_PREFIXES,
    SI_UNITS,
    SPACES,
    TEXT_ACCENTS,
    TEXT_LETTERS,
    symbol_table,
)

MAX_CAPTION_CHARS = 100_000
_XSPACE = "\x01"  # \xspace: a space unless punctuation follows
_SOFT = "\x02"  # after an operator name: a space only if a letter or digit follows
_SOFT_BEFORE = "\x03"  # before an operator name: a space only if a letter or digit precedes (v sin i)
# zero-width and invisible format characters: soft hyphen, zero-width space/joiners, direction marks, invisible
# function application/times/separator/plus, zero-width no-break space (BOM)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2061\u2062\u2063\u2064\ufeff"))
_LEADING_RELATION_RE = re.compile(r"^([~≈≲≳<>≤≥∝]) +")
_MATH_OPEN = {"\\(": "\\)", "\\[": "\\]"}


def _with_accent(base: str, mark: str) -> str:
    if not base:
        return {"\u0303": "~", "\u0302": "^"}.get(mark, "")
    first = {"ı": "i", "ȷ": "j"}.get(base[0], base[0])
    return first + mark + base[1:]


def _wrap(text: str) -> str:
    """Sub/superscript and fraction operands: parentheses unless a single simple term."""
    text = text.strip()
    return text if re.fullmatch(r"[-+−]?[^\s+\-−=<>/,;:()]*", text) else f"({text})"


def _roman(number: str) -> str:
    return ROMAN[int(number)] if number.isdigit() and int(number) < len(ROMAN) else number


class _Converter:
    """Converts an expanded token list to plain text (see `caption_to_text`)."""

    def __init__(self, tokens: list[str], math_spaces: bool = True):
        self.tokens = tokens
        self.math_spaces = math_spaces  # False: spaces in math are dropped, as TeX does
        self.symbols = symbol_table()
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
        while k < hi and k - j < MAX_OPTIONAL:
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
        raw = detokenize(self.tokens[value[0] : value[1]])
        return re.sub(r"\\([_%#&~$/])", r"\1", raw).replace(" ", "").strip()

    # -- conversion --
    def convert(self, lo: int, hi: int, math: bool, depth: int) -> str:
        if depth > MAX_DEPTH:
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
                        if env in MATH_ENVS and not math:
                            out.append(" ")
                            math_start, math, closer = len(out), True, env
                        elif env in ENV_ARGS:
                            _, i = self.args(ENV_ARGS[env], i, hi)
                    elif math_start is not None and env == closer:
                        self._close_math(out, math_start)
                        out.append(" ")
                        math_start, math, closer = None, False, None
                    else:
                        out.append(" ")
                else:
                    after = self.command(token, i, hi, out, math, depth)
                    if math and after == i and after < hi and tokens[after].isspace() and is_word(token):
                        after += 1  # in math the space after a control word is TeX's, not the author's
                    i = after
            elif first == "{":
                close = min(self.match.get(i - 1, hi), hi)
                out.append(self.convert(i, close, math, depth + 1))
                i = close + 1
            elif first in "^_":
                value, i = self.arg(i, hi)
                out.append(self._script(first, self.text_of(value, True, depth)))
            elif token.isspace() and math and not self.math_spaces:
                continue
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
        if name in KEEP_LAST:
            spec, mode = KEEP_LAST[name]
            values, i = self.args(spec, i, hi)
            text = self.text_of(values[-1], math if mode == "s" else mode == "m", depth)
            if name in ("MakeUppercase", "uppercase", "MakeTextUppercase"):
                text = text.upper()
            elif name in ("MakeLowercase", "lowercase", "MakeTextLowercase"):
                text = text.lower()
            elif name in ("enquote", "textquote"):
                text = f"“{text}”"
            if name == "operatorname" and math:
                text = _SOFT_BEFORE + text + _SOFT
            out.append(text)
            return i
        if name in REFS:
            _, i = self.args("*{", i, hi)
            out.append("[ref]")
            return i
        if name in DROP_ARGS:
            _, i = self.args(DROP_ARGS[name], i, hi)
            return i
        if name in OPERATOR_NAMES:
            out.append(_SOFT_BEFORE + name + _SOFT if math else name)
            return i
        symbol = self.symbols.get(name)
        if symbol is not None:
            if math and name in RELATIONS:
                symbol = f" {symbol} "
            out.append(symbol)
            if name in TEXT_LETTERS and i < hi and self.tokens[i].isspace():
                i += 1
            return i
        if name in SPACES:
            out.append(" ")
            return i
        if name in DROP:
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
        elif name in TEXT_ACCENTS and name:
            i = self._accent(name, i, hi, out, math, depth)
        elif name in ",;:> \n\t" and name:
            out.append(" ")
        elif name == "|":
            out.append("‖")
        return i  # \! \/ \- \@ and anything else: nothing

    # -- commands with their own reading of arguments (dispatched through `_HANDLERS`) --
    def _accent(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        value, i = self.arg(i, hi)
        if (
            isinstance(value, tuple)
            and value[1] - value[0] == 1
            and is_word(self.tokens[value[0]])
            and (i < hi and self.tokens[i].isspace())
        ):
            i += 1  # a space after a control word belongs to it: \"\i ve -> ïve
        content = self.text_of(value, math, depth)
        mark = TEXT_ACCENTS.get(name) or MATH_ACCENTS[name]
        if name in MATH_ACCENTS and len(content.strip()) != 1:
            out.append(content)
        else:
            out.append(_with_accent(content.strip() if name in MATH_ACCENTS else content, mark))
        return i

    def _fraction(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        (numerator, denominator), i = self.args("{{", i, hi)
        top, bottom = self.text_of(numerator, True, depth), self.text_of(denominator, True, depth)
        out.append(f"{_wrap(top)}/{_wrap(bottom)}")
        return i

    def _binom(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        (top, bottom), i = self.args("{{", i, hi)
        out.append(
            f"C({self.text_of(top, True, depth).strip()}, {self.text_of(bottom, True, depth).strip()})"
        )
        return i

    def _sqrt(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        (index, value), i = self.args("[{", i, hi)
        root = self.text_of(index, True, depth).strip()
        out.append(f"{root}√{_wrap(self.text_of(value, True, depth))}")
        return i

    def _url(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        values, i = self.args("[{" if name == "doi" else "{", i, hi)
        out.append(self.raw_of(values[-1]))
        return i

    def _verb(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
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

    def _ensuremath(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        value, i = self.arg(i, hi)
        text = self.text_of(value, True, depth)
        out.append(text if math else text.strip())
        return i

    def _mathbb(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        value, i = self.arg(i, hi)
        text = self.text_of(value, True, depth).strip()
        out.append(DOUBLE_STRUCK.get(text, text))
        return i

    def _not(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        value, i = self.arg(i, hi)
        text = self.text_of(value, math, depth).strip()
        out.append(f" {text}\u0338 " if text else "")
        return i

    def _item(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        value, i = self.optional(i, hi)
        out.append(" " + self.text_of(value, math, depth) + " ")
        return i

    def _arrow(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        _, i = self.args("[{", i, hi)
        out.append(" → " if name == "xrightarrow" else " ← ")
        return i

    def _delimiter_size(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        if i < hi and self.tokens[i] == ".":
            i += 1  # \left. / \right.
        return i

    def _xspace(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        out.append(_XSPACE)
        return i

    def _si_unit(self, value: tuple[int, int] | str | None) -> str:
        """siunitx unit: ``\\kilo\\metre\\per\\second`` -> ``km/s``, ``\\square\\metre`` -> ``m^2``; literal units kept."""
        if value is None or isinstance(value, str):
            return value or ""
        pieces: list[str] = []
        power = ""
        glued = True  # no space before the next unit (start, after a prefix or a /)
        for token in self.tokens[value[0] : value[1]]:
            name = token[1:] if is_word(token) else None
            if name in ("square", "cubic"):
                power = "^2" if name == "square" else "^3"
            elif name in ("squared", "cubed"):
                pieces.append("^2" if name == "squared" else "^3")
            elif name == "per":
                pieces.append("/")
                glued = True
            elif name is not None:
                pieces.append(("" if glued else " ") + SI_UNITS.get(name, name) + power)
                power, glued = "", name in SI_PREFIXES
            elif token not in ("{", "}"):
                pieces.append(token)
                glued = True
        return "".join(pieces).strip()

    def _siunitx(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        if name in ("SI", "qty"):
            (_, number, unit), i = self.args("[{{", i, hi)
            out.append(f"{self.text_of(number, True, depth).strip()} {self._si_unit(unit)}")
        elif name in ("SIrange", "qtyrange"):
            (_, low, high, unit), i = self.args("[{{{", i, hi)
            unit_text = self._si_unit(unit)
            out.append(
                f"{self.text_of(low, True, depth).strip()} {unit_text} to "
                f"{self.text_of(high, True, depth).strip()} {unit_text}"
            )
        elif name in ("si", "unit"):
            (_, unit), i = self.args("[{", i, hi)
            out.append(self._si_unit(unit))
        elif name == "ang":
            (_, angle), i = self.args("[{", i, hi)
            parts = self.text_of(angle, True, depth).split(";")
            out.append(
                "".join(part.strip() + unit for part, unit in zip(parts, "°′″", strict=False) if part.strip())
            )
        elif name == "numrange":
            (_, low, high), i = self.args("[{{", i, hi)
            out.append(
                f"{self.text_of(low, True, depth).strip()} to {self.text_of(high, True, depth).strip()}"
            )
        else:  # num
            (_, number), i = self.args("[{", i, hi)
            out.append(self.text_of(number, True, depth).strip())
        return i

    def _ion(self, name: str, i: int, hi: int, out: list[str], math: bool, depth: int) -> int:
        (element, stage), i = self.args("{{", i, hi)
        out.append(
            f"{self.text_of(element, False, depth).strip()} {_roman(self.text_of(stage, False, depth).strip())}"
        )
        return i


_HANDLERS: dict[str, Callable[[_Converter, str, int, int, list[str], bool, int], int]] = {
    **dict.fromkeys([n for n in TEXT_ACCENTS if n.isalpha()] + list(MATH_ACCENTS), _Converter._accent),
    **dict.fromkeys(FRACTIONS, _Converter._fraction),
    **dict.fromkeys(("binom", "dbinom", "tbinom"), _Converter._binom),
    "sqrt": _Converter._sqrt,
    **dict.fromkeys(("url", "nolinkurl", "path", "email", "doi"), _Converter._url),
    **dict.fromkeys(("verb", "lstinline"), _Converter._verb),
    "ensuremath": _Converter._ensuremath,
    **dict.fromkeys(("mathbb", "mathbbm", "mathds"), _Converter._mathbb),
    "not": _Converter._not,
    "item": _Converter._item,
    **dict.fromkeys(("xrightarrow", "xleftarrow"), _Converter._arrow),
    **dict.fromkeys(("left", "right"), _Converter._delimiter_size),
    "xspace": _Converter._xspace,
    **dict.fromkeys(
        ("SI", "si", "num", "ang", "qty", "unit", "SIrange", "qtyrange", "numrange"), _Converter._siunitx
    ),
    "ion": _Converter._ion,
}

_EMPTY_BRACKETS_RE = re.compile(r"(^|\s)(?:\(\s*[,;]?\s*\)|\[\s*[,;]?\s*\])")  # left by removed citations
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,;:!?])(?=\s|$|[)\]\"”’])")


def _tidy(text: str) -> str:
    text = drop_invisible(text)
    text = re.sub(_XSPACE + r"+(?=[^\s,.'/?;:!~\-)\]}’”…" + _XSPACE + _SOFT + "])", " ", text)
    text = re.sub(_SOFT + r"+(?=[^\W_])", " ", text)
    text = text.replace(_XSPACE, "").replace(_SOFT, "")
    text = re.sub(r"(?<=[^\W_])" + _SOFT_BEFORE + "+", " ", text).replace(_SOFT_BEFORE, "")
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text)
    text = _EMPTY_BRACKETS_RE.sub(r"\1", text)
    text = re.sub(r"\s*[,;]\s*\)", ")", text)
    text = re.sub(r"([(⟨])\s*[,;]?\s*", r"\1", text)
    text = re.sub(r"\s+([)⟩])", r"\1", text)
    text = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", text)
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)  # "et al. \cite{x}." leaves "et al.."; "..." stays
    return re.sub(r"\s+", " ", text).strip()


def drop_invisible(text: str) -> str:
    """``text`` without invisible format characters (U+00AD, U+200B-U+200F, U+2061-U+2064, U+FEFF)."""
    return text.translate(_INVISIBLE)


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
    tokens = expand(tokenize(strip_comments(caption_tex)), macros, strict=True)
    converter = _Converter(tokens)
    return _tidy(converter.convert(0, len(tokens), False, 0))


_DOCUMENT_BODY_RE = re.compile(r"\\begin\{document\}(.*?)\\end\{document\}", re.S)
_MATH_DELIMITER_RE = re.compile(r"\$|\\\(|\\\[")


def tex_math_to_text(tex: str) -> str:
    """A TeX formula as plain text, converted as a caption is (`caption_to_text`, no user macros): bare maths,
    ``$...$``/``\\(...\\)``, or a minimal document around them (JATS ``tex-math``). Spaces inside the maths
    are dropped as TeX drops them (converters write ``{ - 1}``); ``\\text{...}`` keeps its own. A formula
    longer than `MAX_CAPTION_CHARS` gives ``""``."""
    match = _DOCUMENT_BODY_RE.search(tex)
    body = match.group(1) if match else tex
    if len(body) > MAX_CAPTION_CHARS:
        return ""
    if not _MATH_DELIMITER_RE.search(body):
        body = f"${body}$"
    tokens = tokenize(strip_comments(body))
    return _tidy(_Converter(tokens, math_spaces=False).convert(0, len(tokens), False, 0))
