"""Caption text of the sample corpus: one token model rendered as LaTeX (arXiv), JATS XML (PMC) or plain text.

A caption is a list of tokens: plain ``str`` pieces and the markup classes below. The same caption renders
as LaTeX with the paper's own macros, as JATS with ``<italic>``/``<xref>``/inline formulas, or as plain
text for the retrieval eval set, so every source describes a figure in its own real-world markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Math:
    """Inline math in a small TeX subset: letters, numbers, ``^``/``_``, braces, Greek and a few operators."""

    tex: str


@dataclass(frozen=True)
class Emph:
    text: str


@dataclass(frozen=True)
class Bold:
    text: str


@dataclass(frozen=True)
class Var:
    """A variable name; LaTeX papers with macros write it with their ``\\vq{...}`` macro."""

    text: str


@dataclass(frozen=True)
class Cite:
    number: int


@dataclass(frozen=True)
class Ref:
    """A cross-reference to figure ``number`` of the same paper."""

    number: int


@dataclass(frozen=True)
class Method:
    """The paper's method name (``\\method`` macro in LaTeX papers that define it)."""


Token = str | Math | Emph | Bold | Var | Cite | Ref | Method


@dataclass
class Caption:
    """A figure caption: a title sentence and the body."""

    title: list[Token]
    body: list[Token]


GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "lambda": "λ", "mu": "μ",
    "sigma": "σ", "tau": "τ", "omega": "ω", "theta": "θ", "chi": "χ", "rho": "ρ", "Delta": "Δ", "nu": "ν",
}  # fmt: skip
OPERATORS = {"pm": "±", "times": "×", "approx": "≈", "sim": "∼", "leq": "≤", "geq": "≥", "odot": "⊙"}
_TEXT_TO_LATEX = {
    "%": r"\%",
    "&": r"\&",
    "–": "--",
    "—": "---",
    "µ": r"$\mu$",
    "°": r"$^\circ$",
    "±": r"$\pm$",
}


@dataclass
class LatexStyle:
    """How one LaTeX paper writes captions: its method name and whether it uses its own macros."""

    method_name: str
    macros: bool
    cite_keys: list[str]
    xspace: bool = True


def to_latex(tokens: list[Token], style: LatexStyle) -> str:
    """Render tokens as LaTeX source."""
    out: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            out.append(re.sub("[%&–—µ°±]", lambda m: _TEXT_TO_LATEX[m.group()], token))
        elif isinstance(token, Math):
            out.append(f"${token.tex}$")
        elif isinstance(token, Emph):
            out.append(rf"\emph{{{token.text}}}")
        elif isinstance(token, Bold):
            out.append(rf"\textbf{{{token.text}}}")
        elif isinstance(token, Var):
            out.append(rf"\vq{{{token.text}}}" if style.macros else rf"\emph{{{token.text}}}")
        elif isinstance(token, Cite):
            _strip_trailing_space(out)
            out.append(rf"~\cite{{{style.cite_keys[token.number % len(style.cite_keys)]}}}")
        elif isinstance(token, Ref):
            out.append(rf"Fig.~\ref{{fig:f{token.number}}}")
        elif isinstance(token, Method):
            if not style.macros:
                out.append(rf"\textsc{{{style.method_name}}}")
            else:
                out.append(r"\method" if style.xspace else r"\method{}")
    return "".join(out)


def _strip_trailing_space(out: list[str]) -> None:
    if out and out[-1].endswith(" "):
        out[-1] = out[-1].rstrip(" ")


def caption_latex(caption: Caption, style: LatexStyle) -> str:
    """``\\textbf{Title.} Body`` as LaTeX."""
    return rf"\textbf{{{to_latex(caption.title, style)}}} {to_latex(caption.body, style)}"


def to_jats(tokens: list[Token], method_name: str, math_style: str, fig_ids: dict[int, str]) -> str:
    """Render tokens as JATS XML; ``math_style`` is ``tex`` (tex-math), ``mml`` (MathML) or ``markup``."""
    out: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            out.append(escape(token))
        elif isinstance(token, Math):
            out.append(jats_math(token.tex, math_style))
        elif isinstance(token, Emph | Var):
            out.append(f"<italic>{escape(token.text)}</italic>")
        elif isinstance(token, Bold):
            out.append(f"<bold>{escape(token.text)}</bold>")
        elif isinstance(token, Cite):
            _strip_trailing_space(out)
            out.append(f' [<xref ref-type="bibr" rid="B{token.number}">{token.number}</xref>]')
        elif isinstance(token, Ref):
            rid = fig_ids.get(token.number, f"F{token.number}")
            out.append(f'<xref ref-type="fig" rid="{rid}">Figure {token.number}</xref>')
        elif isinstance(token, Method):
            out.append(escape(method_name))
    return "".join(out)


def to_plain(tokens: list[Token], method_name: str = "our method") -> str:
    """Render tokens as plain text (Unicode math, no citations)."""
    out: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            out.append(token)
        elif isinstance(token, Math):
            out.append(plain_math(token.tex))
        elif isinstance(token, Emph | Bold | Var):
            out.append(token.text)
        elif isinstance(token, Ref):
            out.append(f"Figure {token.number}")
        elif isinstance(token, Method):
            out.append(method_name)
    return re.sub(r"\s+([.,;:)])", r"\1", re.sub(r"\s+", " ", "".join(out))).strip()


def plain_math(tex: str) -> str:
    """A readable plain-text form of a math snippet (``\\alpha`` -> ``α``, braces dropped)."""
    text = re.sub(r"\\mathrm\{([^}]*)\}", r"\1", tex)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: GREEK.get(m.group(1), OPERATORS.get(m.group(1), "")), text)
    return text.replace("{", "").replace("}", "").replace("\\,", " ")


# ---- TeX subset -> JATS inline formulas -------------------------------------------------------------

_MATH_TOKEN = re.compile(r"\\mathrm\{[^}]*\}|\\[A-Za-z]+|\\,|\d+(?:\.\d+)?|[A-Za-z]|[=<>+\-/()^_{}]|\S")


def jats_math(tex: str, style: str) -> str:
    """An ``<inline-formula>`` (tex-math or MathML) or italic/sup markup for a math snippet."""
    if style == "tex":
        return f"<inline-formula><tex-math><![CDATA[${tex}$]]></tex-math></inline-formula>"
    if style == "mml":
        body = "".join(_mathml(_parse_math(_MATH_TOKEN.findall(tex))))
        return f"<inline-formula><mml:math><mml:mrow>{body}</mml:mrow></mml:math></inline-formula>"
    return "".join(_markup(_parse_math(_MATH_TOKEN.findall(tex))))


def _parse_math(tokens: list[str]) -> list[tuple]:
    """Parse tokens into nodes: ("mi"|"mn"|"mo", text), ("row", nodes), ("sup"|"sub", base, script)."""
    nodes: list[tuple] = []
    position = 0

    def atom() -> tuple:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "{":
            depth, start = 1, position
            while depth and position < len(tokens):
                depth += {"{": 1, "}": -1}.get(tokens[position], 0)
                position += 1
            return ("row", _parse_math(tokens[start : position - 1]))
        if token.startswith(r"\mathrm"):
            return ("mi", token[8:-1])
        if token.startswith("\\"):
            name = token[1:]
            if name in OPERATORS:
                return ("mo", OPERATORS[name])
            return ("mi", GREEK.get(name, name)) if name != "," else ("space", "")
        if token[0].isdigit():
            return ("mn", token)
        return ("mi", token) if token.isalpha() else ("mo", token.replace("-", "−"))

    while position < len(tokens):
        if tokens[position] in "^_" and nodes:
            kind = "sup" if tokens[position] == "^" else "sub"
            position += 1
            nodes[-1] = (kind, nodes[-1], atom())
        else:
            nodes.append(atom())
    return nodes


def _mathml(nodes: list[tuple]) -> list[str]:
    out = []
    for node in nodes:
        kind = node[0]
        if kind in ("mi", "mn", "mo"):
            out.append(f"<mml:{kind}>{escape(node[1])}</mml:{kind}>")
        elif kind == "row":
            out.append(f"<mml:mrow>{''.join(_mathml(node[1]))}</mml:mrow>")
        elif kind in ("sup", "sub"):
            tag = "msup" if kind == "sup" else "msub"
            out.append(f"<mml:{tag}>{''.join(_mathml([node[1]]))}{''.join(_mathml([node[2]]))}</mml:{tag}>")
    return out


def _markup(nodes: list[tuple]) -> list[str]:
    out = []
    for node in nodes:
        kind = node[0]
        if kind == "mi":
            out.append(f"<italic>{escape(node[1])}</italic>" if len(node[1]) == 1 else escape(node[1]))
        elif kind == "mn":
            out.append(node[1])
        elif kind == "mo":
            out.append(f" {escape(node[1])} " if node[1] in "=<>≈±×≤≥" else escape(node[1]))
        elif kind == "row":
            out.extend(_markup(node[1]))
        elif kind in ("sup", "sub"):
            tag = "sup" if kind == "sup" else "sub"
            out.append(f"{''.join(_markup([node[1]]))}<{tag}>{''.join(_markup([node[2]]))}</{tag}>")
    return out
