"""arXiv part of the sample corpus: LaTeX projects in arXiv bulk tars, plus ``arXiv_src_manifest.xml``.

Each paper is planned as a list of floats (``FloatPlan``), each with its constructs and expected number of
figure-caption pairs under LaTeX semantics: one pair per image-bearing figure, one per sub-figure with its
own sub-caption, one composite pair for several images without sub-captions, none for TikZ-only or
image-less floats; floats inside comments, ``\\iffalse`` and ``comment`` blocks and in dead draft files
do not exist. PDF-only submissions and single-file ``.tex`` submissions without images give no pair.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from sciclip_utils.sample_corpus.captions import describe_figure, short_caption
from sciclip_utils.sample_corpus.eval import eval_spec, planted_image_bytes
from sciclip_utils.sample_corpus.figures import (
    PLOT_CLASSES,
    TISSUE_CLASSES,
    VARIABLES,
    FigureSpec,
    render_figure,
    sample_figure,
)
from sciclip_utils.sample_corpus.io import gzip_bytes, minimal_pdf, rng_for, tar_bytes
from sciclip_utils.sample_corpus.text import (
    Caption,
    Cite,
    LatexStyle,
    Math,
    Method,
    Ref,
    Token,
    caption_latex,
    to_latex,
)

DOMAINS = {"physics": 0.3, "astro": 0.22, "ml": 0.36, "bio": 0.12}
PLOT_WEIGHTS = {
    "line": 0.3,
    "scatter": 0.17,
    "bar": 0.14,
    "histogram": 0.13,
    "heatmap": 0.14,
    "schematic": 0.12,
}
BIO_WEIGHTS = {"line": 0.12, "scatter": 0.1, "bar": 0.12, "histogram": 0.06, "heatmap": 0.08, "schematic": 0.06,
               "adipose": 0.09, "tumor": 0.09, "stroma": 0.09, "lymphocytes": 0.09, "fluorescent": 0.1}  # fmt: skip
CONSTRUCTS = {"single": 0.4, "composite": 0.14, "subfigures": 0.22, "tikz": 0.04, "noimage": 0.04,
              "eps-asked-pdf-shipped": 0.04, "wrapfigure": 0.04, "epsfig": 0.04, "plotone": 0.04}  # fmt: skip
CLASSES = {"physics": ("revtex4-2", "aps,prb,twocolumn"), "astro": ("aastex631", "twocolumn"),
           "ml": ("article", "10pt"), "bio": ("article", "11pt,a4paper")}  # fmt: skip
METHOD_NAMES = ["FluxNet", "GraphFormer", "SpecTra", "DeepHalo", "CellSeg", "QuBit", "NeuroMap", "StarFlow",
                "PhaseNet", "TissueGAN", "LensFit", "SparseMix"]  # fmt: skip
TOPICS = {"physics": ["superconducting films", "spin chains", "topological insulators", "granular flows"],
          "astro": ["dwarf galaxies", "stellar flares", "galaxy clusters", "exoplanet transits"],
          "ml": ["contrastive learning", "graph neural networks", "vision transformers", "sparse attention"],
          "bio": ["tumor microenvironments", "cell migration", "tissue classification", "gene expression"]}  # fmt: skip
SPECIAL_EVERY = 45  # one block of papers; special submissions sit at fixed offsets in each block
SPECIALS = {3: "pdf-only", 11: "single-tex-tikz", 25: "pdf-only-gz", 37: "single-tex-noimage"}
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(16) + b"\x00\x02" + bytes(40)


@dataclass
class Panel:
    """One image file of a float."""

    path: str  # member path in the package
    include: str  # the path as written in LaTeX
    fmt: str
    data: bytes
    spec: FigureSpec | None
    subcaption: list[Token] | None = None


@dataclass
class FloatPlan:
    """One float of a paper and what extraction should make of it."""

    number: int
    construct: str
    env: str
    caption: Caption
    panels: list[Panel] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        if self.construct in ("tikz", "noimage"):
            return 0
        return len(self.panels) if self.construct == "subfigures" else 1


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    probabilities = np.asarray(list(weights.values()))
    return keys[int(rng.choice(len(keys), p=probabilities / probabilities.sum()))]


def arxiv_ids(seed: int, count: int, per_month: int) -> list[str]:
    """Increasing new-style ids (``2301.00042``), ``per_month`` per month starting January 2023."""
    rng = rng_for(seed, "ids", 0)
    ids = []
    for start in range(0, count, per_month):
        month = start // per_month
        yymm = f"{23 + month // 12:02d}{month % 12 + 1:02d}"
        numbers = np.sort(rng.choice(np.arange(1, 30000), size=min(per_month, count - start), replace=False))
        ids += [f"{yymm}.{number:05d}" for number in numbers]
    return ids


def build_paper(
    seed: int, index: int, arxiv_id: str, plant: dict[str, Any] | None
) -> tuple[str, bytes, dict]:
    """One submission: ``(member name in the bulk tar, file bytes, info)`` (a picklable worker job)."""
    rng = rng_for(seed, "arxiv", index)
    yymm = arxiv_id.split(".")[0]
    special = None if plant else SPECIALS.get(index % SPECIAL_EVERY)
    info: dict[str, Any] = {"id": arxiv_id, "pairs": 0, "figures": 0, "formats": {}, "constructs": {},
                            "skip": None, "figure_skips": [], "near_duplicate": None}  # fmt: skip
    if special in ("pdf-only", "pdf-only-gz"):
        lines = [
            f"arXiv:{arxiv_id}",
            "A PDF-only submission of the sample corpus.",
            "No LaTeX source is available.",
        ]
        info.update(kind="pdf-only", skip="pdf-only submission")
        suffix = ".pdf" if special == "pdf-only" else ".gz"  # some tools name every e-print .gz
        return f"{yymm}/{arxiv_id}{suffix}", minimal_pdf(lines), info
    paper = _PaperWriter(seed, rng, arxiv_id)
    if special:
        tex = paper.single_file(special)
        info.update(kind="single-tex", skip="no figures with images", figures=len(paper.floats))
        info["figure_skips"] = [[f.number, f.construct] for f in paper.floats]
        info["constructs"] = dict(Counter(f.construct for f in paper.floats))
        return f"{yymm}/{arxiv_id}.gz", gzip_bytes(tex.encode()), info
    files = paper.project(plant)
    floats = paper.floats
    info.update(
        kind="latex",
        layout=paper.layout,
        main_file=paper.main_name,
        figures=len(floats),
        pairs=sum(f.pairs for f in floats),
        pairs_by_figure={f"fig{f.number}": f.pairs for f in floats},
        kinds_by_figure={f"fig{f.number}": [panel.spec.kind for panel in f.panels] for f in floats},
        formats=dict(Counter(panel.fmt for f in floats for panel in f.panels)),
        constructs=dict(
            Counter([f.construct for f in floats] + [f"env:{f.env}" for f in floats] + paper.extras)
        ),
        figure_skips=[[f.number, f.construct] for f in floats if not f.pairs],
    )
    if plant:
        info["near_duplicate"] = "fig1"
    return f"{yymm}/{arxiv_id}.gz", gzip_bytes(tar_bytes(files)), info


class _PaperWriter:
    """Plans and writes one LaTeX project."""

    def __init__(self, seed: int, rng: np.random.Generator, arxiv_id: str) -> None:
        self.seed, self.rng, self.arxiv_id = seed, rng, arxiv_id
        self.domain = _weighted(rng, DOMAINS)
        method = str(rng.choice(METHOD_NAMES))
        authors = [
            "smith2019",
            "garcia2020",
            "chen2021",
            "novak2018",
            "okafor2022",
            "tanaka2017",
            "mueller2016",
        ]
        self.style = LatexStyle(
            method, macros=bool(rng.random() < 0.6), cite_keys=authors, xspace=bool(rng.random() < 0.7)
        )
        self.layout = str(rng.choice(["sections", "flat", "figfiles"], p=[0.5, 0.3, 0.2]))
        self.subpackage = str(rng.choice(["subcaption", "subfig"]))
        self.image_dir = {"sections": "figures/", "flat": "", "figfiles": "figs/"}[self.layout]
        self.graphicspath = self.layout == "sections" and bool(rng.random() < 0.7)
        self.extensionless = bool(rng.random() < 0.5)
        self.naming = str(rng.choice(["fig{n}{s}", "figure_{n}{s}", "Fig{n}{s}", "{kind}{n}{s}"]))
        self.main_name = str(rng.choice(["main.tex", "ms.tex", "paper.tex", f"{method.lower()}.tex"]))
        self.floats: list[FloatPlan] = []
        self.files: dict[str, bytes] = {}
        self.extras: list[str] = []
        self.packages = {"graphicx", "amsmath", "xspace"}

    # ---- planning ---------------------------------------------------------------------------------

    def _kind(self) -> str:
        return _weighted(self.rng, BIO_WEIGHTS if self.domain == "bio" else PLOT_WEIGHTS)

    def _fmt(self, kind: str) -> str:
        if kind in TISSUE_CLASSES:
            return str(self.rng.choice(["jpg", "png", "pdf"], p=[0.6, 0.3, 0.1]))
        return str(self.rng.choice(["pdf", "png", "eps", "jpg"], p=[0.55, 0.25, 0.12, 0.08]))

    def _panel(self, number: int, suffix: str, kind: str | None = None, fmt: str | None = None) -> Panel:
        kind = kind or self._kind()
        spec = sample_figure(self.rng, kind, self.domain)
        fmt = fmt or self._fmt(kind)
        stem = self.naming.format(n=number, s=suffix, kind=kind if kind in PLOT_CLASSES else "micrograph")
        path = f"{self.image_dir}{stem}.{fmt}"
        written = stem if self.graphicspath else f"{self.image_dir}{stem}"
        include = written if self.extensionless and fmt != "eps" else f"{written}.{fmt}"
        return Panel(path, include, fmt, render_figure(spec, fmt), spec)

    def _plan_float(self, number: int, construct: str) -> FloatPlan:
        rng = self.rng
        env = (
            "figure*"
            if construct in ("composite", "subfigures", "single") and rng.random() < 0.15
            else "figure"
        )
        refs = [number - 1] if number > 1 else []
        if construct in ("tikz", "noimage"):
            kind = "schematic" if construct == "tikz" else "bar"
            caption = describe_figure(sample_figure(rng, kind, self.domain), rng, refs)
            if construct == "noimage":
                caption = Caption(["Pseudo-code of the training procedure."],
                                  ["Algorithm used to fit ", Method(), " to the data; the loop stops when the loss "
                                   "changes by less than ", Math(r"10^{-4}"), "."])  # fmt: skip
            return FloatPlan(number, construct, env, caption)
        if construct == "composite":
            panels = [self._panel(number, chr(97 + i)) for i in range(int(rng.integers(2, 4)))]
        elif construct == "subfigures":
            panels = [self._panel(number, chr(97 + i)) for i in range(int(rng.integers(2, 4)))]
            for panel in panels:
                panel.subcaption = short_caption(panel.spec)
        elif construct == "eps-asked-pdf-shipped":
            panels = [self._panel(number, "", fmt="pdf")]
            panels[0].include = panels[0].include.removesuffix(".pdf") + ".eps"
        elif construct == "epsfig":
            panels = [self._panel(number, "", fmt="eps")]
        elif construct == "plotone":
            panels = [self._panel(number, "", fmt=str(rng.choice(["pdf", "png"])))]
        else:
            panels = [self._panel(number, "")]
        caption = describe_figure(panels[0].spec, rng, refs)
        if construct == "composite":
            caption.body = ["Left: "] + caption.body
            for panel in panels[1:]:
                caption.body += [" Right: " if panel is panels[-1] else " Middle: "] + short_caption(
                    panel.spec
                )
        return FloatPlan(number, construct, env, caption, panels)

    def _plant_float(self, plant: dict[str, Any]) -> FloatPlan:
        data, fmt = planted_image_bytes(
            self.seed, plant["eval_task"], plant["eval_index"], plant["transform"]
        )
        spec, _ = eval_spec(self.seed, plant["eval_task"], plant["eval_index"])
        stem = self.naming.format(n=1, s="", kind="plot")
        written = stem if self.graphicspath else f"{self.image_dir}{stem}"
        panel = Panel(f"{self.image_dir}{stem}.{fmt}", f"{written}.{fmt}", fmt, data, spec)
        return FloatPlan(1, "single", "figure", describe_figure(spec, self.rng), [panel])

    def _plan(self, plant: dict[str, Any] | None) -> None:
        rng = self.rng
        count = int(rng.integers(3, 7))
        for number in range(1, count + 1):
            if plant and number == 1:
                self.floats.append(self._plant_float(plant))
                continue
            construct = _weighted(rng, CONSTRUCTS)
            if construct == "plotone" and self.domain != "astro":
                construct = "single"
            if construct == "epsfig" and self.domain != "physics":
                construct = "single"
            self.floats.append(self._plan_float(number, construct))
        if not any(f.pairs for f in self.floats):
            self.floats[0] = self._plan_float(1, "single")

    # ---- LaTeX ------------------------------------------------------------------------------------

    def _graphics_options(self) -> str:
        return str(self.rng.choice(["[width=\\linewidth]", "[width=0.9\\columnwidth]", "[scale=0.5]", "",
                                    "[width=0.45\\textwidth, trim=10 0 10 0, clip]", "[height=4cm,keepaspectratio]"]))  # fmt: skip

    def _include(self, panel: Panel, options: str | None = None) -> str:
        options = self._graphics_options() if options is None else options
        if self.rng.random() < 0.1:
            return f"\\includegraphics{options}%\n    {{{panel.include}}}"
        return f"\\includegraphics{options}{{{panel.include}}}"

    def _caption(self, plan: FloatPlan) -> str:
        text = caption_latex(plan.caption, self.style)
        label = f"\\label{{fig:f{plan.number}}}"
        short = f"[{to_latex(plan.caption.title, self.style)}]" if self.rng.random() < 0.15 else ""
        if self.rng.random() < 0.2:
            return f"  \\caption{short}{{{text}{label}}}\n"
        return f"  \\caption{short}{{{text}}}\n  {label}\n"

    def float_latex(self, plan: FloatPlan) -> str:
        rng = self.rng
        placement = str(rng.choice(["[htbp]", "[t]", "[!ht]", "", "[h]"]))
        env = plan.env
        lines: list[str] = []
        if plan.construct == "wrapfigure":
            self.packages.add("wrapfig")
            env, placement = "wrapfigure", "{r}{0.45\\textwidth}"
            lines.append("  " + self._include(plan.panels[0], "[width=0.43\\textwidth]"))
        elif plan.construct == "tikz":
            self.packages.add("tikz")
            boxes = ["Data", "Model", "Loss"]
            nodes = "\n".join(
                f"    \\node[draw, rounded corners] (n{i}) at ({3 * i},0) {{{b}}};"
                for i, b in enumerate(boxes)
            )
            lines.append(f"  \\begin{{tikzpicture}}[>=stealth]\n{nodes}\n    \\draw[->] (n0) -- (n1);\n"
                         "    \\draw[->] (n1) -- (n2);\n  \\end{tikzpicture}")  # fmt: skip
        elif plan.construct == "noimage":
            self.packages.update({"algorithm", "algpseudocode"})
            lines.append("  \\begin{algorithmic}[1]\n    \\State $\\theta \\gets \\theta_0$\n"
                         "    \\While{not converged}\n      \\State $\\theta \\gets \\theta - \\eta \\nabla L$\n"
                         "    \\EndWhile\n  \\end{algorithmic}")  # fmt: skip
        elif plan.construct == "subfigures":
            width = f"{0.96 / len(plan.panels):.2f}"
            for panel in plan.panels:
                sub = to_latex(panel.subcaption or [], self.style)
                if self.subpackage == "subcaption":
                    graphic = self._include(panel, "[width=\\linewidth]")
                    lines.append(f"  \\begin{{subfigure}}[b]{{{width}\\linewidth}}\n    \\centering\n"
                                 f"    {graphic}\n    \\caption{{{sub}}}\n  \\end{{subfigure}}\\hfill")  # fmt: skip
                else:
                    graphic = self._include(panel, f"[width={width}\\linewidth]")
                    lines.append(f"  \\subfloat[{sub}]{{{graphic}}}\\hfil")
        elif plan.construct == "composite":
            separator = str(rng.choice(["\\hfill", "\\quad", "", "\\\\"]))
            options = f"[width={0.96 / len(plan.panels):.2f}\\textwidth]"
            for index, panel in enumerate(plan.panels):
                tail = separator if index < len(plan.panels) - 1 else ""
                lines.append(f"  {self._include(panel, options)}{tail}")
        elif plan.construct == "epsfig":
            lines.append(f"  \\epsfig{{file={plan.panels[0].include},width=0.9\\columnwidth}}")
        elif plan.construct == "plotone":
            lines.append(f"  \\plotone{{{plan.panels[0].include}}}")
        else:
            lines.append("  " + self._include(plan.panels[0]))
        body = "\n".join(lines)
        centering = "  \\centering\n" if rng.random() < 0.8 else ""
        return f"\\begin{{{env}}}{placement}\n{centering}{body}\n{self._caption(plan)}\\end{{{env}}}\n"

    def _sentence(self) -> str:
        rng, style = self.rng, self.style
        number = int(rng.integers(1, len(self.floats) + 1)) if self.floats else 1
        variables = VARIABLES[self.domain]
        x, y = (variables[i][0] for i in rng.choice(len(variables), 2, replace=False))
        options: list[list[Token]] = [
            ["We study the ", y, " as a function of the ", x, " using ", Method(), "."],
            ["As shown in ", Ref(number), ", the ", y, " depends strongly on the ", x, "."],
            ["Previous work", Cite(int(rng.integers(0, 7))), " measured the ", y, " only for small samples."],
            ["The residuals stay below ", Math(r"3\sigma"), " for all ", x, " values (", Ref(number), ")."],
            [
                Method(),
                " reduces the error by 12% compared to the baseline",
                Cite(int(rng.integers(0, 7))),
                ".",
            ],
            ["We fix ", Math(r"\alpha = 0.05"), " and vary the ", x, " between 1 and 10."],
            ["A linear fit gives ", Math(r"R^2 = 0.91"), ", in line with earlier estimates", Cite(1), "."],
        ]
        text = to_latex(options[int(rng.integers(len(options)))], style)
        if style.macros and rng.random() < 0.2:
            text += " This holds \\eg for the \\vq{reference} sample."
        return text

    def _paragraph(self) -> str:
        sentences = [self._sentence() for _ in range(int(self.rng.integers(2, 6)))]
        if self.rng.random() < 0.3:
            sentences.insert(1, "% TODO: check this number again\n")
        return " ".join(sentences).replace("\n ", "\n") + "\n"

    def _macros(self) -> str:
        style = self.style
        if not style.macros:
            return ""
        method = (f"\\newcommand{{\\method}}{{\\textsc{{{style.method_name}}}\\xspace}}" if style.xspace
                  else f"\\def\\method{{\\textsc{{{style.method_name}}}}}")  # fmt: skip
        return "\n".join([
            "% custom macros", method, "\\newcommand{\\vq}[1]{\\emph{#1}}", "\\def\\eg{e.g.\\xspace}",
            "\\providecommand{\\figref}[1]{Fig.~\\ref{#1}}", "\\newcommand{\\sigmaX}[1][8]{\\ensuremath{\\sigma_{#1}}}",
            "\\DeclareMathOperator{\\argmax}{arg\\,max}", "",
        ])  # fmt: skip

    def _dead_figure(self, path: str) -> str:
        return (f"\\begin{{figure}}\n  \\includegraphics[width=\\linewidth]{{{path}}}\n"
                "  \\caption{Preliminary version of the results, superseded.}\n\\end{figure}\n")  # fmt: skip

    def _dead_image(self, stem: str) -> str:
        """An image file that no live float uses (referenced only from dead code, or not at all)."""
        spec = sample_figure(self.rng, self._kind(), self.domain)
        path = f"{self.image_dir}{stem}.png"
        self.files[path] = render_figure(spec, "png")
        return path

    def project(self, plant: dict[str, Any] | None) -> dict[str, bytes]:
        """Plan the floats and write every file of the project."""
        rng = self.rng
        self._plan(plant)
        floats_tex = [self.float_latex(plan) for plan in self.floats]
        sections = ["introduction", "method", "results", "conclusion"]
        bodies: dict[str, list[str]] = {name: [self._paragraph()] for name in sections}
        for index, tex in enumerate(floats_tex):  # floats go into sections in order
            bodies[sections[min(3, 1 + index * 3 // len(floats_tex))]].append(tex + self._paragraph())
        results = bodies["results"]
        if rng.random() < 0.25:
            path = self._dead_image("draft_plot")
            results.append(f"\\iffalse\n{self._dead_figure(path)}\\fi\n")
            self.extras.append("iffalse-figure")
        if rng.random() < 0.25:
            path = self._dead_image("old_plot")
            results.append("".join(f"% {line}\n" for line in self._dead_figure(path).splitlines()))
            self.extras.append("commented-figure")
        if rng.random() < 0.1:
            self.packages.add("comment")
            path = self._dead_image("rejected_plot")
            results.append(f"\\begin{{comment}}\n{self._dead_figure(path)}\\end{{comment}}\n")
            self.extras.append("comment-env-figure")
        if rng.random() < 0.3:
            self._dead_image("unused_plot")
            self.extras.append("unreferenced-image")
        files = self._write_layout(bodies)
        self.files.update(files)
        for plan in self.floats:
            for panel in plan.panels:
                self.files[panel.path] = panel.data
        stem = self.main_name.removesuffix(".tex")
        if rng.random() < 0.6:
            self.files[f"{stem}.bbl"] = _bbl(self.style.cite_keys).encode()
        if self.layout == "sections" and rng.random() < 0.35:
            name = str(rng.choice([f"_old-{stem}.tex", f"{stem}_old.tex", "draft_v1.tex"]))
            old_path = self._dead_image("old_fig1")
            self.files[name] = ("\\documentclass{article}\n\\usepackage{graphicx}\n\\begin{document}\n"
                                f"Old draft.\n{self._dead_figure(old_path)}\\end{{document}}\n").encode()  # fmt: skip
            self.extras.append("old-draft-tex")
        if rng.random() < 0.08:
            self.files[f"._{self.main_name}"] = APPLEDOUBLE
            self.extras.append("macos-resource-fork")
        ordered = dict(sorted(self.files.items(), key=lambda item: (item[0].count("/"), item[0])))
        if rng.random() < 0.1:
            self.extras.append("dot-slash-members")
            return {f"./{name}": data for name, data in ordered.items()}
        return ordered

    def _write_layout(self, bodies: dict[str, list[str]]) -> dict[str, bytes]:
        rng = self.rng
        files: dict[str, bytes] = {}
        if self.layout == "figfiles":
            for name, parts in bodies.items():
                kept = []
                for part in parts:
                    end = re.search(r"\\end\{(figure\*?|wrapfigure)\}", part)
                    if end and part.startswith(("\\begin{figure", "\\begin{wrapfigure")):
                        number = len(files) + 1
                        float_end = end.end()
                        files[f"figs/fig_{number}.tex"] = part[:float_end].encode() + b"\n"
                        kept.append(f"\\input{{figs/fig_{number}}}\n" + part[float_end:])
                    else:
                        kept.append(part)
                bodies[name] = kept
        text = {
            name: f"\\section{{{name.capitalize()}}}\n" + "\n".join(parts) for name, parts in bodies.items()
        }
        if self.layout == "sections":
            include = ""
            for name in text:
                target = f"sections/{name}" if rng.random() < 0.6 else f"sections/{name}.tex"
                command = "include" if name == "conclusion" and rng.random() < 0.3 else "input"
                include += (
                    f"\\{command}{{{target.removesuffix('.tex') if command == 'include' else target}}}\n"
                )
                files[f"sections/{name}.tex"] = text[name].encode()
            body = include
        else:
            body = "\n".join(text.values())
        macros = self._macros()
        if macros and rng.random() < 0.3:
            files["macros.tex"] = macros.encode()
            macros = "\\input{macros}\n"
            self.extras.append("macros-file")
        if "\\subfloat" in body + "".join(text.values()) + "".join(f.decode() for f in files.values()):
            self.packages.add("subfig")
        if "subfigure}" in body + "".join(text.values()) + "".join(f.decode() for f in files.values()):
            self.packages.add("subcaption")
        files[self.main_name] = self._document(macros, body).encode()
        return files

    def _document(self, macros: str, body: str) -> str:
        cls, options = CLASSES[self.domain]
        packages = "".join(f"\\usepackage{{{name}}}\n" for name in sorted(self.packages))
        graphicspath = f"\\graphicspath{{{{{self.image_dir}}}}}\n" if self.graphicspath else ""
        topic = str(self.rng.choice(TOPICS[self.domain]))
        title = f"{self.style.method_name}: a study of {topic}"
        return (f"\\documentclass[{options}]{{{cls}}}\n{packages}{graphicspath}{macros}\n"
                f"\\title{{{title}}}\n\\author{{A. Author and B. Author}}\n\\begin{{document}}\n\\maketitle\n"
                f"\\begin{{abstract}}\nWe present {topic} measurements. % short abstract\n\\end{{abstract}}\n\n"
                f"{body}\n\\bibliographystyle{{plain}}\n\\bibliography{{refs}}\n\\end{{document}}\n")  # fmt: skip

    def single_file(self, special: str) -> str:
        """A one-file submission whose only float is TikZ or an algorithm: no figure with an image."""
        construct = "tikz" if special == "single-tex-tikz" else "noimage"
        self.floats = [self._plan_float(1, construct)]
        float_tex = self.float_latex(self.floats[0])
        body = f"\\section{{Introduction}}\n{self._paragraph()}\n{float_tex}\n{self._paragraph()}"
        return self._document(self._macros(), body)


def _bbl(keys: list[str]) -> str:
    items = "".join(
        f"\\bibitem{{{key}}} {key[:-4].capitalize()}, A. {key[-4:]}, J. Synth. Res., 1, 1\n" for key in keys
    )
    return f"\\begin{{thebibliography}}{{{len(keys)}}}\n{items}\\end{{thebibliography}}\n"


def write_bulk(out_dir: Path, members: list[tuple[str, bytes]], per_tar: int) -> list[dict]:
    """Write ``arXiv_src_YYMM_NNN.tar`` files (at most ``per_tar`` papers each) and the manifest XML."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_month: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in members:
        by_month.setdefault(name.split("/")[0], []).append((name, data))
    entries = []
    for yymm, papers in sorted(by_month.items()):
        for seq, start in enumerate(range(0, len(papers), per_tar), start=1):
            chunk = papers[start : start + per_tar]
            data = tar_bytes(dict(chunk), directories=False)
            filename = f"arXiv_src_{yymm}_{seq:03d}.tar"
            (out_dir / filename).write_bytes(data)
            content = hashlib.md5(b"".join(member for _, member in chunk)).hexdigest()
            items = [Path(name).stem for name, _ in chunk]
            entries.append({"content_md5sum": content, "filename": f"src/{filename}", "first_item": items[0],
                            "last_item": items[-1], "md5sum": hashlib.md5(data).hexdigest(), "num_items": len(chunk),
                            "seq_num": seq, "size": len(data),
                            "timestamp": f"20{yymm[:2]}-{yymm[2:]}-28 03:14:15", "yymm": yymm})  # fmt: skip
    xml = "".join(
        "  <file>\n"
        + "".join(f"    <{key}>{escape(str(value))}</{key}>\n" for key, value in entry.items())
        + "  </file>\n"
        for entry in entries
    )
    (out_dir / "arXiv_src_manifest.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<arXivSRC>\n{xml}</arXivSRC>\n'
    )
    return entries
