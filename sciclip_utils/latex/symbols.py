"""Tables of the caption-to-text conversion: what each LaTeX command becomes in plain text."""

from __future__ import annotations

from functools import cache

from .source import names

TEXT_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304", ".": "\u0307",
    "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328", "r": "\u030a", "d": "\u0323",
    "b": "\u0331", "t": "\u0361",
}  # fmt: skip
MATH_ACCENTS = {
    "hat": "\u0302", "widehat": "\u0302", "check": "\u030c", "breve": "\u0306", "acute": "\u0301",
    "grave": "\u0300", "tilde": "\u0303", "widetilde": "\u0303", "bar": "\u0304", "overline": "\u0305",
    "vec": "\u20d7", "dot": "\u0307", "ddot": "\u0308", "dddot": "\u20db", "mathring": "\u030a",
}  # fmt: skip
RELATIONS = names(
    "le leq ge geq leqslant geqslant ll gg neq ne approx sim simeq cong equiv propto lesssim gtrsim la ga "
    "times pm mp cdot to rightarrow leftarrow Rightarrow Leftarrow leftrightarrow Leftrightarrow mapsto "
    "longrightarrow in notin ni owns subset subseteq supset supseteq subsetneq supsetneq subseteqq supseteqq "
    "subsetneqq supsetneqq nsubset nsupset nsubseteq nsupseteq sqsubset sqsupset sqsubseteq sqsupseteq div"
)
OPERATOR_NAMES = names(
    "log ln lg exp sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh coth max min sup inf lim "
    "limsup liminf det dim ker arg deg gcd Pr hom mod bmod"
)
TEXT_LETTERS = names("ss o O ae AE oe OE aa AA l L i j")
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
    "percent": "%", "textpercent": "%", "textdollar": "$", "textsterling": "£",
    "texteuro": "€", "euro": "€", "textyen": "¥", "AA": "Å", "angstrom": "Å", "textohm": "Ω", "ohm": "Ω",
    # set relations pinned here, whatever pylatexenc's table says: \subset is ⊂, \subseteq is ⊆
    "subset": "⊂", "supset": "⊃", "subseteq": "⊆", "supseteq": "⊇", "subsetneq": "⊊", "supsetneq": "⊋",
    "subseteqq": "⫅", "supseteqq": "⫆", "subsetneqq": "⫋", "supsetneqq": "⫌", "nsubset": "⊄", "nsupset": "⊅",
    "nsubseteq": "⊈", "nsupseteq": "⊉", "sqsubset": "⊏", "sqsupset": "⊐", "sqsubseteq": "⊑", "sqsupseteq": "⊒",
}  # fmt: skip
DROP = names(
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
SPACES = names("newline linebreak par space nobreakspace thinspace medspace thickspace negthinspace break")
REFS = names(
    "ref eqref autoref Autoref cref Cref pageref vref Vref nameref subref autopageref cpageref Cpageref "
    "labelcref crefrange Crefrange fref Fref figref Figref tabref secref eqnref"
)
_CITES = names(
    "cite citep citet citealt citealp citeauthor citeyear citeyearpar citenum Cite Citep Citet Citealt "
    "Citealp Citeauthor parencite Parencite textcite Textcite autocite Autocite footcite smartcite "
    "supercite cites citetext citeNP citeA nocite shortcite shortciteN citeN"
)
# arguments of commands whose last mandatory argument is kept: "*" star, "[" optional, "{" mandatory;
# the mode letter says how the kept argument is read: t(ext), m(ath) or s(ame as around)
KEEP_LAST = {
    **{name: ("{", "t") for name in names(
        "textbf textit textsl textsc textsf texttt textrm textup textmd textnormal emph uline uuline uwave "
        "sout xout hl ul textsuperscript textsubscript mbox hbox fbox text intertext reflectbox lowercase "
        "uppercase MakeUppercase MakeLowercase MakeTextUppercase MakeTextLowercase textls")},
    **{name: ("{", "s") for name in names(
        "mathrm mathbf mathit mathsf mathtt mathcal mathscr mathfrak mathnormal boldsymbol bm pmb "
        "mathop mathbin mathrel mathord substack llap rlap clap mathllap mathrlap mathclap boxed "
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
DROP_ARGS = {
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
FRACTIONS = names("frac dfrac tfrac cfrac nicefrac sfrac xfrac flatfrac")
ENV_ARGS = {
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
MATH_ENVS = names(
    "equation equation* align align* alignat alignat* gather gather* multline multline* flalign flalign* "
    "eqnarray eqnarray* displaymath math dmath dmath*"
)
SI_UNITS = {
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
ROMAN = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
DOUBLE_STRUCK = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ", "H": "ℍ", "E": "𝔼", "1": "𝟙"}

SI_PREFIXES = names("yocto zepto atto femto pico nano micro milli centi deci kilo mega giga tera peta")


@cache
def symbol_table() -> dict[str, str]:
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
