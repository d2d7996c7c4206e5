"""LaTeX text layer of arXiv extraction (also PMC's TeX maths): source reading, user macros, figure floats and
caption text.

Everything here is a small brace-aware scanner over plain strings, not a TeX engine. Work is linear in the
input (no nested or backtracking regexes), user macro expansion is bounded by `Macros.max_expansions` and
`Macros.max_tokens`, and malformed input (unbalanced braces, binary junk) never raises, except the documented
`ValueError` of `caption_to_text` (caption longer than `MAX_CAPTION_CHARS`, or macro expansion past the budget).

Layers: `source` (decoding, comment/``\\iffalse``/verbatim masking, ``\\input``, ``\\graphicspath``),
`macros` (definitions and bounded expansion), `figures` (the figure finder), `text` with `symbols`
(caption TeX to plain text).
"""

from .figures import FigureFloat, GraphicRef, LeftOut, SubFigure, find_figures
from .macros import MacroDef, Macros, collect_macros
from .source import decode_tex, find_includes, parse_graphicspath, strip_comments
from .text import MAX_CAPTION_CHARS, caption_to_text, drop_invisible, tex_math_to_text

__all__ = [
    "MAX_CAPTION_CHARS",
    "FigureFloat",
    "GraphicRef",
    "LeftOut",
    "MacroDef",
    "Macros",
    "SubFigure",
    "caption_to_text",
    "collect_macros",
    "decode_tex",
    "drop_invisible",
    "find_figures",
    "find_includes",
    "parse_graphicspath",
    "strip_comments",
    "tex_math_to_text",
]
