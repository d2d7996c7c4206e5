"""Captions of the sample corpus's scientific figures: ``describe_figure`` writes a long caption (plot type,
colours, variables, trend), ``short_caption`` a sub-caption and ``plain_caption`` an eval retrieval text."""

from __future__ import annotations

import numpy as np

from sciclip_utils.sample_corpus.figures import LAYOUTS, TISSUE_CLASSES, TRENDS, FigureSpec, _pick
from sciclip_utils.sample_corpus.text import Caption, Cite, Emph, Math, Method, Ref, Token, Var


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _unit(variable: tuple[str, str]) -> str:
    return f" ({variable[1]})" if variable[1] else ""


def describe_figure(spec: FigureSpec, rng: np.random.Generator, refs: list[int] | None = None) -> Caption:
    """A long caption that names the plot type or tissue, the colours, variables and trends."""
    p = spec.params
    x, y = p["x"][0], p["y"][0]
    title: list[Token]
    body: list[Token]
    if spec.kind == "line":
        colours = _join(p["colours"])
        title = [_pick(rng, [f"{y.capitalize()} as a function of {x}.", f"Evolution of the {y} with {x}.",
                             f"Dependence of the {y} on the {x}."])]  # fmt: skip
        body = [
            _pick(rng, ["Line plot of the ", "Line plot showing the ", "Curves of the "]),
            Var(y),
            f"{_unit(p['y'])} versus ",
            Var(x),
            f"{_unit(p['x'])}",
        ]
        if len(p["colours"]) > 1:
            body += [f" for {len(p['colours'])} {p['groupword']} ({colours} lines, respectively)"]
        else:
            body += [f" ({colours} line)"]
        plural, singular = TRENDS[p["trend"]]
        body += [f". All curves {plural}" if len(p["colours"]) > 1 else f". The curve {singular}"]
        body += [" on a logarithmic vertical axis." if p["logy"] else "."]
        if p["band"]:
            body += [
                " Shaded bands indicate the ",
                Math(r"1\sigma"),
                " uncertainty over 10 independent runs.",
            ]
        if p["markers"]:
            body += [" Markers show the measured values."]
    elif spec.kind == "scatter":
        sign = "positive" if p["slope"] > 0 else "negative"
        strength = "strong" if p["noise"] < 0.45 else "weak"
        r2 = max(0.05, 0.97 - p["noise"])
        title = [f"Correlation between {x} and {y}."]
        body = [
            _pick(rng, ["Scatter plot of the ", "Scatter plot comparing the "]),
            Var(y),
            f"{_unit(p['y'])} against the ",
            Var(x),
            f"{_unit(p['x'])} for {p['points']} {_pick(rng, ['objects', 'measurements', 'samples', 'runs'])}",
        ]
        if len(p["colours"]) > 1:
            body += [f", with the {p['groupword']} shown as {_join(p['colours'])} dots"]
        else:
            body += [f" ({p['colours'][0]} dots)"]
        body += [f". The two quantities show a {strength} {sign} correlation"]
        body += (
            ["; the dashed black line is a linear fit with ", Math(f"R^2 = {r2:.2f}"), "."]
            if p["fit"]
            else ["."]
        )
    elif spec.kind == "bar":
        metric = y
        title = [
            f"Comparison of the {metric} across {len(p['categories'])} {_pick(rng, ['groups', 'configurations', 'categories'])}."
        ]
        orientation = "Horizontal bar chart" if p["horizontal"] else "Bar chart"
        body = [f"{orientation} of the ", Var(metric), f"{_unit(p['y'])} for {_join(p['categories'])}"]
        if p["grouped"]:
            body += [
                f"; {p['colours'][0]} bars show {p['groups'][0]} and {p['colours'][1]} bars {p['groups'][1]}"
            ]
        else:
            body += [f" ({p['colours'][0]} bars)"]
        body += [
            ". Error bars denote the standard deviation over ",
            Math("n = 5"),
            " repeats." if p["errors"] else ".",
        ]
        if not p["errors"]:
            body[-2:] = ["."]
    elif spec.kind == "histogram":
        shapes = {"normal": "approximately Gaussian and centred near the mean", "right-skewed": "skewed to the right with a long tail",
                  "bimodal": "bimodal, with two well separated peaks"}  # fmt: skip
        title = [f"Distribution of the {x}."]
        body = ["Histogram of the ", Var(x), f"{_unit(p['x'])} for {p['samples']} {_pick(rng, ['events', 'cells', 'galaxies', 'samples'])} "
                f"({p['bins']} bins, {p['colours'][0]} bars). The distribution is {shapes[p['shape']]}."]  # fmt: skip
        if p["overlay"]:
            body += [
                f" The {p['colours'][1]} histogram shows the shifted second {p['groupword'][:-1]} for comparison."
            ]
        if p["median"]:
            body += [" The dashed vertical line marks the median."]
    elif spec.kind == "heatmap":
        n = p["size"]
        what = {"correlation": f"pairwise Pearson correlation between {n} features",
                "confusion": f"confusion matrix of a {n}-class classifier",
                "map": f"{y} as a function of the {x} on a {4 * n} by {4 * n} grid"}[p["matrix"]]  # fmt: skip
        title = [
            f"{_pick(rng, ['Heatmap', 'Colour-coded map'])} of the {what.split(' of ')[0] if p['matrix'] == 'confusion' else what.split(' between ')[0]}."
        ]
        body = [f"Heatmap of the {what}, shown with the {p['cmap']} colour map"]
        body += [" and a colour bar on the right." if p["colorbar"] else "."]
        body += {"correlation": [" Blocks of strongly correlated features appear along the diagonal."],
                 "confusion": [" Most of the mass lies on the diagonal, i.e. correct predictions."],
                 "map": [" A single smooth maximum dominates the map." if p["peaks"] == 1
                         else f" {p['peaks']} separate maxima stand out against a weak periodic background."]}[p["matrix"]]  # fmt: skip
    elif spec.kind == "schematic":
        boxes = p["boxes"]
        title = [
            f"Schematic diagram of the {_pick(rng, ['proposed pipeline', 'processing chain', 'system architecture'])}."
        ]
        shape = {"round": "rounded boxes", "square": "boxes", "ellipse": "ellipses"}[p["shape"]]
        body = [
            f"The diagram shows {len(boxes)} {p['colours'][0]} and {p['colours'][1]} {shape} ({_join(boxes)}) "
            f"arranged {LAYOUTS[p['layout']]} and connected by arrows that indicate the flow of data"
        ]
        body += [", and a dashed arrow marks the feedback loop." if p["feedback"] else "."]
        body += [" The pipeline is implemented in ", Method(), "."]
    elif spec.kind == "fluorescent":
        title = [f"Fluorescence microscopy of {p['cells']} cells."]
        body = [
            f"Fluorescent cells imaged by confocal microscopy, stained with DAPI (blue, nuclei) and {p['marker']} "
            f"(green and red cytoplasm) on a black background. Scale bar, {p['scale']} µm."
        ]
    else:
        texture = {
            "adipose": "adipose tissue with large, empty, polygonal adipocytes separated by thin pink septa",
            "tumor": "tumor tissue with densely packed, enlarged and irregular dark purple nuclei",
            "stroma": "stroma with wavy pink collagen fibres and sparse elongated nuclei",
            "lymphocytes": "lymphocytes: a dense infiltrate of small, round, dark blue nuclei",
        }[spec.kind]
        title = [f"Histology of the {p['organ']}."]
        body = [f"H&E-stained section of the {p['organ']} showing {texture}. Scale bar, {p['scale']} µm."]
    refs = refs or []
    if refs and rng.random() < 0.5:
        body += [" Compare with ", Ref(refs[0]), "."]
    if rng.random() < 0.4:
        author = _pick(rng, ["Smith", "Garcia", "Chen", "Novak", "Okafor", "Müller", "Tanaka"])
        body += [f" Data from {author} and co-workers", Cite(int(rng.integers(1, 30))), "."]
    return Caption(title, body)


def short_caption(spec: FigureSpec) -> list[Token]:
    """A sub-caption naming the figure type and its main variable."""
    p = spec.params
    if spec.kind in TISSUE_CLASSES:
        return [f"{spec.label.capitalize()} ({p['organ'] if spec.kind != 'fluorescent' else p['cells']})."]
    colour = p.get("colours", ["gray"])[0]
    return [f"{spec.label.capitalize()} of the ", Emph(p["y"][0]), f" ({colour})."]


def plain_caption(spec: FigureSpec, rng: np.random.Generator) -> str:
    """A one-sentence plain description, as used in the figure-caption retrieval set."""
    from sciclip_utils.sample_corpus.text import to_plain

    caption = describe_figure(spec, rng)
    return to_plain(caption.body).split(". ")[0].rstrip(".") + "."
