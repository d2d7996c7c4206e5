"""Caption text from JATS: paragraphs, lists and formulas (MathML, TeX) as one readable line."""

from __future__ import annotations

import re

from lxml import etree

from sciclip_utils.latex import drop_invisible, tex_math_to_text

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

_BLOCK_TAGS = {
    "p", "title", "list", "list-item", "disp-formula", "disp-formula-group", "disp-quote", "def-list",
    "def-item", "term", "def", "break", "sec", "statement", "table-wrap", "fn", "attrib", "preformat",
    "chem-struct-wrap", "tr", "td", "th", "verse-line",
}  # fmt: skip
_DROPPED_TAGS = {
    "supplementary-material", "object-id", "media", "graphic", "inline-graphic", "permissions",
    "annotation", "annotation-xml",
}  # fmt: skip
_DROPPED = "\x02"
_GAP_BEFORE_PUNCTUATION = re.compile(r"\s*\x02\s*(?=[.,;:!?)\]])")
_DOI_PARAGRAPH = re.compile(r"^DOI:?\s*(?:https?://\S+|10\.\S+)$", re.IGNORECASE)


def caption_text(caption: etree._Element) -> str:
    """Readable caption text: title and paragraphs joined by single spaces, formulas as text.

    Nested ``supplementary-material``, ``object-id``, ``media``, graphics and labels (except list-item
    labels) are left out, as are eLife's ``DOI: http://dx.doi.org/...`` paragraphs and invisible format
    characters (zero-width no-break space, MathML's invisible times...); whitespace collapsed,
    and the space left before punctuation where an element was dropped removed (``graphic <g/>.``).
    """
    text = drop_invisible("".join(_render(child) for child in caption))
    return _collapse(_GAP_BEFORE_PUNCTUATION.sub("", text).replace(_DROPPED, ""))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _render(element: etree._Element) -> str:
    """Text of ``element`` and its tail (tails always survive a dropped element)."""
    tail = element.tail or ""
    if not isinstance(element.tag, str):  # comments, processing instructions, unexpanded entities
        return tail
    name = _local(element)
    if name in _DROPPED_TAGS or (name == "label" and _local(element.getparent()) != "list-item"):
        return _DROPPED + tail
    if element.tag == f"{{{MATHML_NS}}}math" or name == "math":
        return (
            f" {mathml_text(element)} {tail}"
            if element.get("display") == "block"
            else (mathml_text(element) + tail)
        )
    if name == "tex-math":
        return tex_math_to_text(element.text or "") + tail
    if name == "alternatives":
        return _render_alternatives(element) + tail
    inner = (element.text or "") + "".join(_render(child) for child in element)
    if name in _BLOCK_TAGS:
        if name == "p" and _DOI_PARAGRAPH.match(_collapse(inner)):
            return " " + tail
        return f" {inner} {tail}"
    return inner + tail


def _render_alternatives(element: etree._Element) -> str:
    """One representation of a formula: MathML, else TeX, else nothing (images are not text)."""
    children = [child for child in element if isinstance(child.tag, str)]
    for wanted in ("math", "tex-math"):
        for child in children:
            if _local(child) == wanted:
                return mathml_text(child) if wanted == "math" else tex_math_to_text(child.text or "")
    return ""


_SPACED_OPERATORS = set("=≠<>≤≥≈∼≃≅≡∝→←↔⇒⇐⇔±∓×÷∈∉⊂⊆") | {"~", "<=", ">=", "≪", "≫"}


def mathml_text(element: etree._Element) -> str:
    """MathML as plain text: token contents in order, relations spaced, fences and fractions kept."""
    return _collapse(_mathml(element))


def _mathml(element: etree._Element) -> str:
    name = _local(element)
    children = [child for child in element if isinstance(child.tag, str)]
    if name in {"annotation", "annotation-xml", "none", "mprescripts"}:
        return ""
    if name in {"mi", "mn", "mtext", "ms"}:
        return "".join(element.itertext()).strip()
    if name == "mo":
        operator = "".join(element.itertext()).strip()
        return f" {operator} " if operator in _SPACED_OPERATORS else operator
    if name == "mspace":
        return " "
    if name == "semantics":
        return _mathml(children[0]) if children else ""
    if name == "mfenced":
        separator = (element.get("separators") or ",").strip()[:1]
        inner = separator.join(_mathml(child) for child in children)
        return f"{element.get('open', '(')}{inner}{element.get('close', ')')}"
    if name == "mfrac" and len(children) == 2:
        return f"{_mathml(children[0])}/{_mathml(children[1])}"
    if name in {"msqrt", "mroot"} and children:
        return "√" + _mathml(children[0]) if name == "mroot" else "√" + "".join(map(_mathml, children))
    return "".join(_mathml(child) for child in children)


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""
