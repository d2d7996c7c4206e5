"""Tests of the LaTeX text layer: comments, includes, macros, figure floats and caption text."""

from __future__ import annotations

import contextlib
import random
import re
import tarfile
import time
from pathlib import Path

import pytest

from sciclip_utils.latex import (
    MAX_CAPTION_CHARS,
    FigureFloat,
    GraphicRef,
    Macros,
    caption_to_text,
    collect_macros,
    decode_tex,
    find_figures,
    find_includes,
    parse_graphicspath,
    strip_comments,
    tex_math_to_text,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
ARXIV_FIXTURES = FIXTURES / "arxiv"


def only_figure(tex: str, macros: Macros | None = None) -> FigureFloat:
    figures = find_figures(tex, macros)
    assert len(figures) == 1, figures
    return figures[0]


def paths(figure) -> list[str]:
    return [graphic.path for graphic in figure.graphics]


# --------------------------------------------------------------------------------------------------
# decode_tex, strip_comments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("\ufeffcafé\r\nx".encode(), "café\nx"),
        (b"\x93quoted\x94 caf\xe9", "“quoted” café"),  # cp1252
        (b"caf\xe9 \x81", "café \x81"),  # 0x81 is undefined in cp1252 -> latin-1
        (b"a\rb", "a\nb"),
    ],
)
def test_decode_tex(data: bytes, text: str) -> None:
    assert decode_tex(data) == text


@pytest.mark.parametrize(
    ("tex", "stripped"),
    [
        ("a % comment\n   b", "a b"),  # the comment eats its newline and the next line's indent
        ("fig%\n1", "fig1"),
        ("50\\% off % gone\nnext", "50\\% off next"),
        ("line \\\\% a comment after a line break\nx", "line \\\\x"),
        ("para%\n\nnext", "para\n\nnext"),  # a blank line stays a paragraph break
        ("a\n% only a comment\nb", "a\nb"),
        ("x \\iffalse hidden \\ifx\\a\\b nested \\fi hidden \\fi y", "x  y"),
        ("x \\iffalse no \\else yes \\fi y", "x  yes  y"),
        ("x\n\\begin{comment}\n\\input{no}\n\\end{comment}\ny", "x\n\ny"),
        ("\\verb|%kept| \\url{http://a.org/b%20c} % gone", "\\verb|%kept| \\url{http://a.org/b%20c} "),
        ("\\let\\ifdraft\\iffalse kept", "\\let\\ifdraft\\iffalse kept"),
        ("x \\iffalse never closed", "x "),
    ],
)
def test_strip_comments(tex: str, stripped: str) -> None:
    assert strip_comments(tex) == stripped


# --------------------------------------------------------------------------------------------------
# find_includes, parse_graphicspath
# --------------------------------------------------------------------------------------------------


def test_find_includes_every_form_with_replaceable_spans() -> None:
    tex = (
        "\\input{sec/intro}\n\\input chap2\n\\include{c3}\\subfile{s4.tex}\n\\import{dir/}{f5}"
        "\\subimport*{d6}{f6}\n% \\input{commented}\n\\newcommand{\\x}[1]{\\input{#1}}\n"
        '\\includegraphics{not-an-include}\\input{ "quoted name" }'
    )
    found = find_includes(tex)
    assert [(command, target) for _, _, command, target in found] == [
        ("input", "sec/intro"),
        ("input", "chap2"),
        ("include", "c3"),
        ("subfile", "s4.tex"),
        ("import", "dir/f5"),
        ("subimport", "d6/f6"),
        ("input", "quoted name"),
    ]
    assert [tex[start:end] for start, end, _, _ in found][:3] == [
        "\\input{sec/intro}",
        "\\input chap2",
        "\\include{c3}",
    ]
    assert tex[found[5][0] : found[5][1]] == "\\subimport*{d6}{f6}"


def test_parse_graphicspath() -> None:
    assert parse_graphicspath("\\graphicspath{{a/}{b/}}") == ["a/", "b/"]
    tex = "%\\graphicspath{{old/}}\n\\graphicspath{ {figs/} {./img/} }\n\\graphicspath{figs/}"
    assert parse_graphicspath(tex) == ["figs/", "./img/"]
    assert parse_graphicspath("no path here") == []


# --------------------------------------------------------------------------------------------------
# collect_macros
# --------------------------------------------------------------------------------------------------

MACROS_TEX = r"""
\newcommand{\Kepler}{\textsl{Kepler}\xspace}
\newcommand\pkg[1]{\texttt{#1}\xspace}
\newcommand*{\opt}[2][def]{<#1|#2>}
\renewcommand{\figurename}{Fig.}
\providecommand{\pkg}[1]{never used}
\newcommand{\Kepler}{ignored: newcommand keeps the first definition}
\def\swap#1#2{#2-#1}
\gdef\plain{plain text}
\def\delimited#1.{delimited parameters are not understood}
\DeclareMathOperator{\argmax}{arg\,max}
\DeclareMathOperator*{\esssup}{ess\,sup}
\let\eps\varepsilon
\let\KeplerCopy=\Kepler
\NewDocumentCommand{\both}{O{x}m}{#1+#2}
\DeclarePairedDelimiter{\abs}{\lvert}{\rvert}
% \newcommand{\commented}{not collected}
\newcommand{\outer}{\def\inner{not collected}}
"""


def test_collect_macros_definitions() -> None:
    macros = collect_macros(MACROS_TEX)
    defs = macros.definitions
    assert defs["pkg"].nargs == 1 and defs["pkg"].body == "\\texttt{#1}\\xspace"
    assert (defs["opt"].nargs, defs["opt"].default) == (2, "def")
    assert defs["Kepler"].body == "\\textsl{Kepler}\\xspace"
    assert defs["swap"].nargs == 2
    assert defs["eps"].builtin_alias and defs["eps"].body == "\\varepsilon"
    assert defs["KeplerCopy"].body == defs["Kepler"].body and not defs["KeplerCopy"].builtin_alias
    assert (defs["both"].nargs, defs["both"].default) == (2, "x")
    assert "delimited" in macros.skipped and "delimited" not in macros
    assert "commented" not in macros and "inner" not in macros
    assert len(macros) == len(defs)


@pytest.mark.parametrize(
    ("caption", "text"),
    [
        ("\\Kepler SAP\\_FLUX data. See \\Kepler.", "Kepler SAP_FLUX data. See Kepler."),
        ("\\pkg{scipy}'s and \\pkg{numpy} arrays, \\pkg{astropy}.", "scipy's and numpy arrays, astropy."),
        ("\\opt{a} and \\opt[b]{c}", "<def|a> and <b|c>"),
        ("\\figurename~1", "Fig. 1"),
        ("\\swap ab and \\swap{c}{d}", "b-a and d-c"),
        ("\\plain.", "plain text."),
        ("$\\argmax_x f(x)$, $\\esssup g$ and $\\eps$", "arg max_x f(x), ess sup g and ε"),
        ("\\KeplerCopy data", "Kepler data"),
        ("\\both{y} \\both[z]{y}", "x+y z+y"),
        ("$\\abs{x}$ and $\\abs*{y}$", "|x| and |y|"),
    ],
)
def test_macros_expand_in_captions(caption: str, text: str) -> None:
    assert caption_to_text(caption, collect_macros(MACROS_TEX)) == text


def test_let_snapshot_avoids_self_recursion() -> None:
    macros = collect_macros("\\let\\oldref\\ref\\renewcommand{\\ref}[1]{Fig.~\\oldref{#1}}")
    assert caption_to_text("see \\ref{a}", macros) == "see Fig. [ref]"


# --------------------------------------------------------------------------------------------------
# caption_to_text
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caption", "text"),
    [
        # accents and letters
        (
            'Schr\\"{o}dinger, caf\\\'e, {\\ss}, Stra\\ss e, na\\"\\i ve, Gar\\c{c}on, \\v{S}koda',
            "Schrödinger, café, ß, Straße, naïve, Garçon, Škoda",
        ),
        ("\\AA ngstr\\\"om, Erd\\H{o}s, \\o, \\L{}\\'od\\'z", "Ångström, Erdős, ø, Łódź"),
        # math
        ("$R^2$ and $\\alpha$ and $\\times$", "R^2 and α and ×"),
        ("$\\frac{a}{b}$, $\\frac{a+b}{2}$, $\\sqrt{x}$", "a/b, (a+b)/2, √x"),
        ("$\\mathrm{x}$ and $T_{\\rm max}$ and $x_{ij}$", "x and T_max and x_ij"),
        ("$0.5 \\le t_{1/2} \\le 60$ min", "0.5 ≤ t_(1/2) ≤ 60 min"),
        (
            "period ($\\sim$8.5 days), $\\sim 10^{35}$ erg, $\\log E = 34.6$",
            "period (~8.5 days), ~10^35 erg, log E = 34.6",
        ),
        ("$^{13}$C, 10$^{-3}$, $30^\\circ$, M$_\\odot$, $\\sin\\theta$", "13C, 10^-3, 30°, M_⊙, sin θ"),
        ("\\(x=1\\) and \\[y\\] and \\begin{equation}z\\end{equation}.", "x = 1 and y and z."),
        ("$\\hat{y}$, $\\vec{v}$, $\\mathbb{R}^n$, $\\not= 0$", "ŷ, v⃗, ℝ^n, ≠ 0"),
        (
            "$\\Delta t$, $\\alpha \\beta$, $\\mathcal{O}(n^2)$, $x \\in A$, $\\langle x \\rangle$",
            "Δt, αβ, O(n^2), x ∈ A, ⟨x⟩",
        ),
        # citations, references, labels, footnotes, links
        ("as shown \\citep[e.g.][p.~3]{a,b}. Next \\cite{c}, then \\citet{d}.", "as shown. Next, then."),
        ("The ERFA (\\citealt{erfa}) library (SOFA; \\citealt{sofa}).", "The ERFA library (SOFA)."),
        (
            "Figure~\\ref{f} and Eq.~\\eqref{e}, \\autoref{a}, \\cref{b,c}, \\Cref{d}.",
            "Figure [ref] and Eq. [ref], [ref], [ref], [ref].",
        ),
        ("Data\\label{fig:x} shown\\footnote{A note.}.", "Data shown."),
        (
            "\\href{http://x.org}{the site} and \\url{http://a.org/b_c%20d}",
            "the site and http://a.org/b_c%20d",
        ),
        ("\\href{https://a.org/api.html}{\\texttt{make\\_rgb()}} function", "make_rgb() function"),
        # styling, spacing, punctuation
        ("\\textbf{bold} {\\bf old} \\emph{em} \\textit{it} \\textsc{SciFact}", "bold old em it SciFact"),
        ("\\textcolor{red}{red} {\\color{blue} blue} {\\small small} \\centering x", "red blue small x"),
        ("one\\\\two\\\\[2pt]three\\newline four~five", "one two three four five"),
        ("a -- b --- c ``quoted'' `single' it's", "a – b — c “quoted” ‘single' it's"),
        ("50\\% \\& more \\# \\$5", "50% & more # $5"),
        ("\\unknowncmd{kept text} \\other[opt]{arg} \\bare word", "kept text arg word"),
        (
            "\\SI{5}{\\kilo\\metre\\per\\second}, \\si{\\percent}, \\num{42}, \\ang{30;;5}",
            "5 km/s, %, 42, 30°5″",
        ),
        ("\\ion{Fe}{2} line, 8.0~$\\mu$m, CO\\textsuperscript{2}", "Fe II line, 8.0 μm, CO2"),
        ("\\verb|a_b| and \\ensuremath{\\alpha}", "a_b and α"),
        ("\\begin{itemize}\\item one \\item[b)] two\\end{itemize}", "one b) two"),
        ("  spaced \n\n  out  ", "spaced out"),
        ("", ""),
    ],
)
def test_caption_to_text(caption: str, text: str) -> None:
    assert caption_to_text(caption, Macros()) == text


def test_caption_to_text_without_macros_drops_unknown_commands() -> None:
    assert caption_to_text("\\ours{} claim \\mynote{kept} \\todo{a todonotes note}") == "claim kept"


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        ("$\\alpha = 0.05$", "α = 0.05"),
        ("$T_{\\mathrm{max}} \\leq 37^\\circ$C", "T_max ≤ 37°C"),
        ("\\documentclass{minimal}\\begin{document}$$\\frac{a}{b}$$\\end{document}", "a/b"),
        ("\\frac{\\mathrm{4}}{3}\\pi {r}^{3}", "4/3πr^3"),  # bare maths, no delimiters
        ("\\(x \\in \\mathbb{R}\\)", "x ∈ ℝ"),
        # JATS converters space everything: TeX ignores it in maths, \text keeps its own
        (
            "${\\text{L}}^{ - 1} [{\\text{Fe}}\\left( {{\\text{CN}})_{6} } \\right]^{3 - /4 - }$",
            "L^-1[Fe(CN)_6]^(3-/4-)",
        ),
        ("$5\\,\\text{mm per day}$", "5 mm per day"),  # explicit spaces stay
        ("x" * 100_001, ""),
    ],
)
def test_tex_math_to_text(tex: str, text: str) -> None:
    assert tex_math_to_text(tex) == text


@pytest.mark.parametrize(
    ("caption", "text"),
    [  # issue 22: operator names get TeX's operator spacing after a letter or a number
        ("$v\\sin{i}$ of the star", "v sin i of the star"),
        ("$v \\sin i$", "v sin i"),
        ("$2\\log n$ steps", "2 log n steps"),
        ("$\\alpha\\exp(-t)$", "α exp(-t)"),
        ("$x^2\\det A$", "x^2 det A"),
        ("$a\\operatorname{Tr}B$", "a Tr B"),
        ("$\\sin x$, $(\\cos x)$, $f(x)\\log$", "sin x, (cos x), f(x)log"),
        ("$\\sin\\cos x$", "sin cos x"),
    ],
)
def test_operator_names_are_spaced_after_letters_and_numbers(caption: str, text: str) -> None:
    assert caption_to_text(caption) == text


@pytest.mark.parametrize(
    ("relation", "symbol"),
    [  # issue 22: \subset is the strict ⊂, and its neighbours are relations spaced as such
        ("subset", "⊂"),
        ("subseteq", "⊆"),
        ("supset", "⊃"),
        ("supseteq", "⊇"),
        ("subsetneq", "⊊"),
        ("supsetneq", "⊋"),
        ("sqsubset", "⊏"),
        ("sqsubseteq", "⊑"),
        ("nsubseteq", "⊈"),
    ],
)
def test_set_relations(relation: str, symbol: str) -> None:
    assert caption_to_text(f"$A\\{relation} B$ and $A \\{relation}{{B}}$") == f"A {symbol} B and A {symbol} B"


def test_invisible_characters_are_dropped() -> None:
    """Issue 22: zero-width and invisible format characters never reach the caption text."""
    caption = (
        "\ufeffSoft\u00adware for $x\u2062y$: zero\u200bwidth, \u200ejoined\u200d, f\u2061(x)\u2063\u2064"
    )
    assert caption_to_text(caption) == "Software for xy: zerowidth, joined, f(x)"


# --------------------------------------------------------------------------------------------------
# find_figures
# --------------------------------------------------------------------------------------------------


def test_float_kinds_and_arguments() -> None:
    tex = r"""
\begin {figure}[htbp]\centering\captionsetup{font=small}\includegraphics{a}\caption{A}\end{figure}
\begin{figure*}[t]\includegraphics{b}\caption{B}\end{figure*}
\begin{wrapfigure}{r}{0.4\textwidth}\includegraphics{c}\caption{C}\end{wrapfigure}
\begin{wrapfigure}[10]{l}[2pt]{3cm}\includegraphics{d}\caption{D}\end{wrapfigure}
\begin{SCfigure}[1.0][h]\includegraphics{e}\caption{E}\end{SCfigure}
\begin{sidewaysfigure}\includegraphics{f}\caption{F}\end{sidewaysfigure}
\begin{table}\includegraphics{not-a-figure}\caption{Table}\end{table}
"""
    figures = find_figures(tex)
    assert [(f.env, f.caption, paths(f)) for f in figures] == [
        ("figure", "A", ["a"]),
        ("figure*", "B", ["b"]),
        ("wrapfigure", "C", ["c"]),
        ("wrapfigure", "D", ["d"]),
        ("SCfigure", "E", ["e"]),
        ("sidewaysfigure", "F", ["f"]),
    ]
    assert [tex[f.start : f.start + 6] for f in figures] == ["\\begin"] * 6


def test_every_graphics_command() -> None:
    figure = only_figure(r"""\begin{figure}
\includegraphics[width=0.5\linewidth, angle=90]{ "my fig".pdf }
\includegraphics*[bb=0 0 10 10][1 2 3 4]{fig%
2}
\plotone{f1.eps}\plottwo{f2.eps}{f3.eps}
\epsfig{file=f4.eps,width=3cm}\psfig{figure=f5.ps,height=2in}\psfig{file={f6.ps}}
\epsfbox{f7.eps}\includestandalone[width=3cm]{tikz/f8}\includesvg[width=2cm]{f9}
%\includegraphics{commented-out}
\caption{All}\end{figure}""")
    assert [(g.command, g.path) for g in figure.graphics] == [
        ("includegraphics", "my fig.pdf"),
        ("includegraphics", "fig2"),
        ("plotone", "f1.eps"),
        ("plottwo", "f2.eps"),
        ("plottwo", "f3.eps"),
        ("epsfig", "f4.eps"),
        ("psfig", "f5.ps"),
        ("psfig", "f6.ps"),
        ("epsfbox", "f7.eps"),
        ("includestandalone", "tikz/f8"),
        ("includesvg", "f9"),
    ]


def test_captions_labels_and_short_form() -> None:
    figure = only_figure(
        "\\begin{figure}\\includegraphics{a}\n\\caption[Short]{Long \\emph{form} with {braces}.}\n"
        "\\label{fig:a}\\end{figure}"
    )
    assert (figure.caption, figure.label) == ("Long \\emph{form} with {braces}.", "fig:a")
    assert caption_to_text(figure.caption, Macros()) == "Long form with braces."
    figure = only_figure("\\begin{figure}\\includegraphics{a}\\caption*{Unnumbered \\label{in}}\\end{figure}")
    assert (figure.caption, figure.label) == ("Unnumbered \\label{in}", "in")


def test_every_subfigure_form() -> None:
    figure = only_figure(r"""\begin{figure}
\subfigure[Sub A]{\includegraphics{a}\label{fa}}
\subfigure{\includegraphics{b}}
\subfloat[LoF][Sub C]{\includegraphics{c}}
\sidesubfloat[Sub D]{\includegraphics{d}}
\subcaptionbox{Sub E\label{fe}}[0.3\linewidth]{\includegraphics{e}}
\begin{subfigure}[b]{0.3\textwidth}\includegraphics{f}\caption{Sub F}\label{ff}\end{subfigure}
\begin{subfigure}{0.3\textwidth}\includegraphics{g}\end{subfigure}
\begin{minipage}{.3\linewidth}\includegraphics{h}\subcaption{Sub H}\end{minipage}
\caption{Main}\label{main}
\end{figure}""")
    assert paths(figure) == list("abcdefgh")
    assert (figure.caption, figure.label) == ("Main", "main")
    assert [(s.caption, paths(s), s.label) for s in figure.subfigures] == [
        ("Sub A", ["a"], "fa"),
        ("Sub C", ["c"], None),
        ("Sub D", ["d"], None),
        ("Sub E\\label{fe}", ["e"], "fe"),
        ("Sub F", ["f"], "ff"),
        ("Sub H", ["h"], None),
    ]


def test_minipages_with_their_own_captions_split_the_float() -> None:
    tex = r"""\begin{figure}
\begin{minipage}{.5\linewidth}\includegraphics{a}\caption{First}\label{l1}\end{minipage}
\begin{minipage}{.5\linewidth}\includegraphics{b}\caption{Second}\label{l2}\end{minipage}
\end{figure}
\begin{figure}\includegraphics{x}\caption{X}\label{lx}\includegraphics{y}\caption{Y}\end{figure}
\begin{figure}\caption{Above}\includegraphics{p}\caption{Above too}\includegraphics{q}\end{figure}"""
    assert [(f.caption, paths(f), f.label) for f in find_figures(tex)] == [
        ("First", ["a"], "l1"),
        ("Second", ["b"], "l2"),
        ("X", ["x"], "lx"),
        ("Y", ["y"], None),
        ("Above", ["p"], None),
        ("Above too", ["q"], None),
    ]


def test_caption_in_one_minipage_and_graphic_in_another_stay_one_figure() -> None:
    figure = only_figure(
        "\\begin{figure}\\begin{minipage}[c]{0.67\\textwidth}\\includegraphics{v}\\end{minipage}\\hfill"
        "\\begin{minipage}[c]{0.3\\textwidth}\\caption{Side caption}\\label{fig:v}\\end{minipage}\\end{figure}"
    )
    assert (figure.caption, paths(figure), figure.label) == ("Side caption", ["v"], "fig:v")


def test_captionof_outside_floats() -> None:
    tex = r"""Text.
\begin{center}
\includegraphics{a.png}
\captionof{figure}{In center \label{fig:a}}
\end{center}
\begin{minipage}{.5\linewidth}\includegraphics{b}\captionof{figure}{In minipage}\end{minipage}%
\begin{minipage}{.5\linewidth}\includegraphics{c}\captionof{table}{A table}\end{minipage}
{\centering \includegraphics{d}\par \captionof*{figure}[short]{In a group}\par}
"""
    figures = find_figures(tex)
    assert [(f.env, f.caption, paths(f), f.label) for f in figures] == [
        ("captionof", "In center \\label{fig:a}", ["a.png"], "fig:a"),
        ("captionof", "In minipage", ["b"], None),
        ("captionof", "In a group", ["d"], None),
    ]
    assert tex[figures[0].start :].startswith("\\captionof")


def test_tikz_and_verbatim_and_nesting() -> None:
    tex = r"""\begin{figure}\begin{tikzpicture}\node {\includegraphics{photo}};\end{tikzpicture}\caption{T}\end{figure}
\begin{figure}\resizebox{\linewidth}{!}{\input{plots/a.tikz}}\caption{Input}\end{figure}
\begin{figure}\begin{center}\begin{tabular}{c}\includegraphics{nested}\end{tabular}\end{center}\caption{N}\end{figure}
\begin{figure}\begin{verbatim}\includegraphics{nope}\end{verbatim}\verb|\includegraphics{no}|\caption{V}\end{figure}
\begin{verbatim}\begin{figure}\caption{not a float}\end{figure}\end{verbatim}
\begin{figure}\centering % a stray \end{figure} in a comment
\includegraphics{after-comment}\caption{C}\end{figure}
\begin{figure}\centering\end{figure}"""
    figures = find_figures(tex)
    assert [(f.caption, paths(f), f.has_tikz) for f in figures] == [
        ("T", ["photo"], True),
        ("Input", [], True),
        ("N", ["nested"], False),
        ("V", [], False),
        ("C", ["after-comment"], False),
    ]


def test_macros_in_paths_wrappers_and_float_macros() -> None:
    macros = collect_macros(r"""\newcommand{\figdir}{figs}\def\ext{.pdf}
\newcommand{\fig}[2][0.5]{\includegraphics[width=#1\linewidth]{\figdir/#2}}
\newcommand{\myfigure}[3]{\begin{figure}\centering\includegraphics{#1}\caption{#2}\label{#3}\end{figure}}
""")
    tex = (
        "\\begin{figure}\\includegraphics{\\figdir/a\\ext}\\fig{b.png}\\fig[0.3]{c.png}\\caption{Paths}\\end{figure}"
        "\nText \\myfigure{m.pdf}{Made by a macro}{fig:m} more."
    )
    first, second = find_figures(tex, macros)
    assert paths(first) == ["figs/a.pdf", "figs/b.png", "figs/c.png"]
    assert (second.caption, paths(second), second.label) == ("Made by a macro", ["m.pdf"], "fig:m")
    assert tex[second.start :].startswith("\\myfigure")
    assert paths(only_figure(tex.split("\n")[0])) == ["\\figdir/a\\ext"]  # no macros given: as written


def test_float_templates_in_definitions_are_skipped() -> None:
    macros_tex = "\\newcommand{\\fig}[2]{\\begin{figure}\\includegraphics{#1}\\caption{#2}\\end{figure}}"
    assert find_figures(macros_tex) == []


def test_graphic_ref_and_figure_float_fields() -> None:
    figure = only_figure("\\begin{figure}\\includegraphics{a}\\end{figure}")
    assert figure == FigureFloat("figure", None, [GraphicRef("includegraphics", "a")], [], None, False, 0)


# --------------------------------------------------------------------------------------------------
# Hostile input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "definition",
    ["\\def\\a{\\a\\a}", "\\def\\a#1{\\a{#1#1}}", "\\newcommand{\\a}[1]{x\\a{#1}}", "\\def\\a{\\a}"],
)
def test_runaway_recursion_raises_value_error_quickly(definition: str) -> None:
    macros = collect_macros(definition)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="expansion limit"):
        caption_to_text("A \\a{y} B", macros)
    assert time.perf_counter() - started < 2
    tex = "\\begin{figure}\\includegraphics{\\a}\\caption{x \\a}\\end{figure}"
    assert only_figure(tex, macros).caption == "x \\a"  # find_figures itself never raises


@pytest.mark.parametrize(
    "caption",
    ["{{{{ open", "}}}} x {", "\\", "$x", "\\frac{", "\\begin{equation} x", "{" * 20_000, "\\caption{" * 500,
     "\\verb", "\\url{", "^_^_", '\\"', "#1 #", "\\left", "$$$", "\\iffalse x", "\x00\xff\ufffd"],
)  # fmt: skip
def test_malformed_captions_do_not_raise(caption: str) -> None:
    text = caption_to_text(caption, collect_macros("\\newcommand{\\x}[1]{#1}"))
    assert "\\" not in text


def test_random_tex_soup_never_raises_anything_but_value_error() -> None:
    pieces = ["{", "}", "[", "]", "$", "\\(", "\\]", "^", "_", "~", "&", "#1", "%", "\n", " ", "ab", "--", "`", "'",
              '\\"', "\\\\", "\\", "\\frac", "\\sqrt", "\\cite", "\\href", "\\url", "\\verb|", "\\begin",
              "\\end", "{equation}", "{minipage}", "\\left", "\\not", "\\SI", "\\ion", "\\c", "\\i", "\\x",
              "\\y", "\\unknown", "*", "\\caption", "\\includegraphics", "\\begin{figure}", "\\end{figure}",
              "\\subfloat", "\\captionof{figure}", "\\iffalse", "\\fi", "\\else", "\\newcommand", "\\def",
              "\\let", "\\DeclarePairedDelimiter", "\\input", "\\import", "\\graphicspath", "\x00"]  # fmt: skip
    macros = collect_macros(r"\newcommand{\x}[2][d]{<#1#2>}\def\y#1{\x{#1}\y}")
    rng = random.Random(1)
    for _ in range(1_000):
        soup = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))
        strip_comments(soup)
        find_includes(soup)
        parse_graphicspath(soup)
        collect_macros(soup)
        captions = [soup] + [f.caption for f in find_figures(soup, macros) if f.caption is not None]
        for caption in captions:
            with contextlib.suppress(ValueError):
                caption_to_text(caption, macros)


def test_deeply_nested_sub_figures_are_bounded() -> None:
    nested = "\\begin{minipage}{1cm}" * 3_000 + "\\includegraphics{a}" + "\\end{minipage}" * 3_000
    assert paths(only_figure(f"\\begin{{figure}}{nested}\\caption{{x}}\\end{{figure}}")) == ["a"]
    nested = "\\subfloat[a]{" * 3_000 + "\\includegraphics{b}" + "}" * 3_000
    assert paths(only_figure(f"\\begin{{figure}}{nested}\\end{{figure}}")) == ["b"]


def test_too_long_caption_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too long"):
        caption_to_text("x" * (MAX_CAPTION_CHARS + 1))


def test_five_megabytes_of_junk_in_bounded_time() -> None:
    rng = random.Random(0)
    binary = decode_tex(rng.randbytes(5_000_000))
    pieces = ["{", "}", "\\begin{figure}", "\\end{figure}", "\\caption{", "\\includegraphics[", "%", "\n", "$",
              "\\iffalse", "\\fi", "\\captionof{figure}{", "\\newcommand{\\x}{", "\\def\\y#1{", "\\input{", "abc ",
              "\\\\", "[", "]", "\\begin{minipage}", "\\verb|", "\\begin{subfigure}", "\\subfloat[", "#1"]  # fmt: skip
    tex_junk = "".join(rng.choice(pieces) for _ in range(600_000))
    for junk in (binary, tex_junk):
        started = time.perf_counter()
        strip_comments(junk)
        find_includes(junk)
        parse_graphicspath(junk)
        macros = collect_macros(junk)
        for figure in find_figures(junk, macros)[:200]:
            if figure.caption is not None and len(figure.caption) <= MAX_CAPTION_CHARS:
                with contextlib.suppress(ValueError):
                    caption_to_text(figure.caption, macros)
        caption_to_text(junk[:MAX_CAPTION_CHARS], macros)
        assert time.perf_counter() - started < 30


# --------------------------------------------------------------------------------------------------
# Real arXiv sources
# --------------------------------------------------------------------------------------------------

EXPECTED_FIGURES = {
    "1911.02782.gz": 4,
    "2004.14974.gz": 11,
    "astropy-v2.0-paper.gz": 7,
    "graph-genomics-review.gz": 4,  # 3 in sections/figures.tex + 1 in the journal's template
    "kepler-flares1.gz": 8,
}


def read_package(name: str) -> dict[str, str]:
    """Decoded .tex members of a fixture package (macOS ``._*`` resource files included: real junk)."""
    package = ARXIV_FIXTURES / name
    if not package.exists():
        pytest.skip(f"arXiv fixtures not found at {ARXIV_FIXTURES} (need ../shared/fixtures beside the repo)")
    with tarfile.open(package) as tar:
        return {
            member.name: decode_tex(tar.extractfile(member).read())
            for member in tar.getmembers()
            if member.isfile() and member.name.endswith(".tex")
        }


def paper_figures(name: str) -> tuple[Macros, list[FigureFloat], float]:
    files = read_package(name)
    macros = collect_macros("\n".join(files.values()))
    started = time.perf_counter()
    figures = [figure for _, tex in sorted(files.items()) for figure in find_figures(tex, macros)]
    for figure in figures:
        caption_to_text(figure.caption or "", macros)
    return macros, figures, time.perf_counter() - started


@pytest.mark.fixtures
@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_every_real_caption_is_clean_text(name: str) -> None:
    macros, figures, _ = paper_figures(name)
    assert len(figures) == EXPECTED_FIGURES[name]
    for figure in figures:
        assert figure.graphics, figure
        assert figure.caption is not None, figure
        for caption in [figure.caption] + [sub.caption for sub in figure.subfigures]:
            text = caption_to_text(caption, macros)
            assert text and not re.search(r"[\\{}]", text), (caption, text)


REAL_CAPTIONS = {
    ("kepler-flares1.gz", "fig:lc"): (
        "Two examples of flare star light curves we have analyzed. Kepler SAP_FLUX is shown (black line) with "
        "the final quiescent light curve model overlaid (blue line). Flares recovered in this analysis are "
        "highlighted (red lines). Left: Short cadence data from the well-studied M dwarf, KIC 9726699 (GJ 1243). "
        "The starspot modulations for this rapidly rotating system is very stable over many rotations. Right: "
        "Long cadence data for KIC 6224062. This M dwarf rotates with a moderate period (~8.5 days), and the "
        "starspot configuration evolves significantly in amplitude and phase between subsequent rotations."
    ),
    ("kepler-flares1.gz", "fig:Nvsgi"): (
        "Fraction of stars that pass the final flare sample cuts as a function of their g-i color. Horizontal "
        "bars show the range of color within each bin. Vertical uncertainties shown are computed using the "
        "1-σ (68%) binomial confidence interval. A general, but weak trend of increasing total flare occurrence "
        "with decreasing stellar temperature (redder g-i) is seen."
    ),
    ("astropy-v2.0-paper.gz", "fig:wcsaxes"): (
        "An example of figure made using the astropy.visualization.wcsaxes subpackage, using Spitzer/IRAC "
        "8.0 μm data from the Cygnus-X Spitzer Legacy survey."
    ),
    ("astropy-v2.0-paper.gz", "fig:frame-transform-graph"): (
        "The full graph of possible reference frame transformations implemented in astropy.coordinates. Arrows "
        "indicate transformations from one frame to another. Arrows that point back to the same frame indicate "
        "self-transformations that involve a change of reference frame parameters (e.g., equinox)."
    ),
    ("2004.14974.gz", "fig:teaser"): (
        "A SciFact claim refuted by evidence. To refute this claim, the system must recognize that (1) “CSF” is "
        "an acronym for “cerebral spinal fluid”, found in the brain, (2) “Citalopram” is a type of "
        "antidepressant, but “placebo” is not, and (3) “Slowing by 37%” indicates a reversal in effect relative "
        "to the claim."
    ),
    ("2004.14974.gz", "fig:negation"): (
        "A rationale that Supports one claim and Refutes another. The red claim was created by negating the "
        "meaning of the blue claim."
    ),
    ("graph-genomics-review.gz", "fig:allelebalance"): (
        "The mean alternate allele fraction at heterozygous variants in HG002/NA24385 validated in the Genome in "
        "a Bottle truth set as a function of deletion or insertion size (SNPs at 0). Error bars are ± 1 s.e.m. "
        "Blue points show the allele balance metric across allele lengths for alignments with bwa mem and "
        "variant calls made by freebayes. Variant calls were made with alignment to a variation graph built "
        "from the 1000 Genomes Project variants, followed by variant calling in VG. These are divided into two "
        "groups: calls at variants in the graph used for the alignment (red) and those to variants that are "
        "private to HG002 (green). Reprinted from."
    ),
}


@pytest.mark.fixtures
@pytest.mark.parametrize(("name", "label"), sorted(REAL_CAPTIONS))
def test_real_captions_exact_text(name: str, label: str) -> None:
    macros, figures, _ = paper_figures(name)
    figure = next(figure for figure in figures if figure.label == label)
    assert caption_to_text(figure.caption, macros) == REAL_CAPTIONS[(name, label)]


@pytest.mark.fixtures
def test_real_sub_figures_and_paths() -> None:
    _, figures, _ = paper_figures("2004.14974.gz")
    stats = next(figure for figure in figures if figure.label == "fig:rationale_stats")
    assert paths(stats) == ["figures/n-rationales.pdf", "figures/rationale-length.pdf"]
    assert [(s.label, paths(s)) for s in stats.subfigures] == [
        ("fig:n_rationales", ["figures/n-rationales.pdf"]),
        ("fig:rationale_length", ["figures/rationale-length.pdf"]),
    ]
    _, figures, _ = paper_figures("graph-genomics-review.gz")
    models = next(figure for figure in figures if figure.label == "fig:models")
    assert paths(models) == ["figures/gen_vs_pang.pdf", "figures/data_structures.pdf"]
    assert models.subfigures == []  # sub-figures without sub-captions (commented out)
    _, figures, _ = paper_figures("kepler-flares1.gz")
    assert paths(figures[-2]) == [f"fig7{letter}" for letter in "abcdef"]


@pytest.mark.fixtures
@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_real_paper_is_fast(name: str) -> None:
    best = min(paper_figures(name)[2] for _ in range(3))
    assert best < 0.05, f"find_figures + caption_to_text took {best * 1000:.1f} ms"


def test_removed_citation_after_abbreviation_leaves_one_period() -> None:
    macros = collect_macros("")
    assert caption_to_text(r"Data from Garcia et al.~\citep{g}.", macros) == "Data from Garcia et al."
    assert caption_to_text(r"Spectra, e.g.\ \cite{x}.", macros) == "Spectra, e.g."
    assert caption_to_text(r"Wait\ldots and see...", macros).endswith("see...")
