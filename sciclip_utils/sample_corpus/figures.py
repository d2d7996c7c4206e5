"""Scientific figures of the sample corpus: plots and tissue/microscopy textures (their captions:
:mod:`.captions`).

``sample_figure`` draws every random choice of one figure into a ``FigureSpec``; ``render_figure`` turns a
spec into file bytes (PDF, EPS, PNG, JPG) and ``figure_image`` into a Pillow image. Training figures and
eval images use these same functions with different random draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sciclip_utils.plots import figure_image as _raster
from sciclip_utils.sample_corpus.io import figure_bytes, image_bytes

PLOT_CLASSES = {
    "line": "line plot", "scatter": "scatter plot", "bar": "bar chart", "histogram": "histogram",
    "heatmap": "heatmap", "schematic": "schematic diagram",
}  # fmt: skip
TISSUE_CLASSES = {
    "adipose": "adipose tissue", "tumor": "tumor tissue", "stroma": "stroma", "lymphocytes": "lymphocytes",
    "fluorescent": "fluorescent cells",
}  # fmt: skip
TEXTURE_KINDS = tuple(TISSUE_CLASSES)
DPI, TEXTURE_SIDE = 80, 200

LINE_COLOURS = {
    "blue": "#1f77b4", "orange": "#ff7f0e", "green": "#2ca02c", "red": "#d62728", "purple": "#9467bd",
    "brown": "#8c564b", "pink": "#e377c2", "gray": "#7f7f7f", "black": "#111111", "cyan": "#17becf",
}  # fmt: skip
COLORMAPS = {
    "viridis": "viridis",
    "magma": "magma",
    "coolwarm": "coolwarm",
    "blue": "Blues",
    "inferno": "inferno",
}
BOX_COLOURS = {"light blue": "#aec7e8", "light green": "#98df8a", "orange": "#ffbb78", "pink": "#f7b6d2",
               "gray": "#c7c7c7", "yellow": "#f5e27a"}  # fmt: skip

# (name, unit) per domain; groups name the curves/bars.
VARIABLES: dict[str, list[tuple[str, str]]] = {
    "physics": [("temperature", "K"), ("magnetic field", "T"), ("pressure", "GPa"), ("time", "ns"),
                ("energy", "eV"), ("frequency", "GHz"), ("resistivity", "mOhm cm"), ("strain", "%")],
    "astro": [("redshift", ""), ("time", "days"), ("wavelength", "nm"), ("luminosity", "erg/s"),
              ("distance", "kpc"), ("flux density", "mJy"), ("stellar mass", "solar masses")],
    "ml": [("training epoch", ""), ("validation accuracy", "%"), ("training loss", ""),
           ("number of parameters", "M"), ("batch size", ""), ("inference time", "ms"), ("dataset size", "k")],
    "bio": [("time after treatment", "h"), ("tumor volume", "mm3"), ("relative expression", "a.u."),
            ("drug concentration", "µM"), ("cell viability", "%"), ("body weight", "g"),
            ("survival probability", "")],
}  # fmt: skip
GROUPS = {
    "physics": ("samples", ["sample A", "sample B", "sample C", "sample D"]),
    "astro": ("populations", ["field", "cluster", "simulation", "control"]),
    "ml": ("models", ["baseline", "ours", "ablation", "oracle"]),
    "bio": ("conditions", ["control", "treated", "knockout", "rescue"]),
}
CATEGORIES = {
    "physics": ["Si", "Ge", "GaAs", "InP", "GaN", "SiC"],
    "astro": ["E", "S0", "Sa", "Sb", "Sc", "Irr"],
    "ml": ["ResNet", "ViT", "MLP", "LSTM", "GNN", "CNN"],
    "bio": ["WT", "KO", "HET", "Vehicle", "Drug A", "Drug B"],
}
TRENDS = {  # (plural verb, singular verb)
    "rise": ("increase monotonically", "increases monotonically"),
    "fall": ("decrease steadily", "decreases steadily"),
    "saturate": ("rise quickly and then saturate", "rises quickly and then saturates"),
    "peak": ("peak at intermediate values and decline afterwards", "peaks at intermediate values and declines afterwards"),
    "oscillate": ("oscillate with a slowly decaying amplitude", "oscillates with a slowly decaying amplitude"),
}  # fmt: skip
CELL_LINES = ["HeLa", "U2OS", "MCF-7", "HEK293", "A549", "NIH 3T3", "primary hippocampal"]
MARKERS = ["GFP", "phalloidin", "tubulin", "Ki-67", "E-cadherin", "vimentin"]
ORGANS = ["breast", "colon", "liver", "lung", "lymph node", "skin", "kidney"]
LAYOUTS = {"chain": "in a chain", "column": "in a column", "grid": "in two rows",
           "branch": "branching into parallel paths that merge again", "cycle": "in a cycle"}  # fmt: skip
PIPELINE = ["Input", "Encoder", "Attention", "Decoder", "Output", "Detector", "Filter", "Classifier", "Sampler",
            "Simulator", "Loss", "Memory"]  # fmt: skip


@dataclass(frozen=True)
class FigureSpec:
    """Every random choice of one figure; rendering a spec is deterministic."""

    kind: str
    domain: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The class name of the figure (plot type or tissue texture)."""
        return PLOT_CLASSES.get(self.kind) or TISSUE_CLASSES[self.kind]


def _pick(rng: np.random.Generator, options: list | tuple, n: int | None = None) -> Any:
    if n is None:
        return options[int(rng.integers(len(options)))]
    return [options[i] for i in rng.choice(len(options), size=n, replace=False)]


def sample_figure(rng: np.random.Generator, kind: str, domain: str) -> FigureSpec:
    """Draw the content of one figure of ``kind`` (a key of PLOT_CLASSES or TISSUE_CLASSES)."""
    variables = VARIABLES[domain]
    x, y = _pick(rng, variables, 2)
    groupword, groups = GROUPS[domain]
    p: dict[str, Any] = {"x": x, "y": y, "groupword": groupword}
    if kind == "line":
        n = int(rng.integers(1, 5))
        p.update(
            colours=_pick(rng, list(LINE_COLOURS), n),
            groups=groups[:n],
            trend=_pick(rng, list(TRENDS)),
            logy=bool(rng.random() < 0.25),
            band=bool(rng.random() < 0.4),
            markers=bool(rng.random() < 0.3),
        )
    elif kind == "scatter":
        n = int(rng.integers(1, 4))
        p.update(
            colours=_pick(rng, list(LINE_COLOURS), n),
            groups=groups[:n],
            points=int(rng.integers(40, 160)),
            slope=float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.5)),
            noise=float(rng.uniform(0.1, 0.8)),
            fit=bool(rng.random() < 0.6),
        )
    elif kind == "bar":
        n = int(rng.integers(3, 7))
        grouped = bool(rng.random() < 0.4)
        p.update(
            categories=_pick(rng, CATEGORIES[domain], n),
            colours=_pick(rng, list(LINE_COLOURS), 2 if grouped else 1),
            groups=groups[:2],
            grouped=grouped,
            errors=bool(rng.random() < 0.6),
            horizontal=bool(rng.random() < 0.2),
        )
    elif kind == "histogram":
        p.update(
            shape=_pick(rng, ["normal", "right-skewed", "bimodal"]),
            colours=_pick(rng, list(LINE_COLOURS), 2),
            overlay=bool(rng.random() < 0.35),
            samples=int(rng.integers(200, 5000)),
            median=bool(rng.random() < 0.5),
            bins=int(rng.integers(12, 40)),
        )
    elif kind == "heatmap":
        p.update(
            matrix=_pick(rng, ["correlation", "confusion", "map"]),
            cmap=_pick(rng, list(COLORMAPS)),
            size=int(rng.integers(5, 16)),
            colorbar=bool(rng.random() < 0.7),
            peaks=int(rng.integers(1, 5)),
        )
    elif kind == "schematic":
        layout = _pick(rng, list(LAYOUTS))
        n = int(rng.integers(4, 7)) if layout in ("grid", "branch", "cycle") else int(rng.integers(3, 6))
        p.update(
            boxes=_pick(rng, PIPELINE, n),
            colours=_pick(rng, list(BOX_COLOURS), 2),
            feedback=bool(rng.random() < 0.5) and layout != "cycle",
            layout=layout,
            shape=_pick(rng, ["round", "square", "ellipse"]),
        )
    elif kind in TISSUE_CLASSES:
        p.update(
            organ=_pick(rng, ORGANS),
            cells=_pick(rng, CELL_LINES),
            marker=_pick(rng, MARKERS),
            scale=int(_pick(rng, [10, 20, 50, 100])),
            stain=[float(v) for v in rng.uniform(0.9, 1.1, 3)],
        )
    else:
        raise ValueError(f"unknown figure kind {kind!r}")
    # the look varies between papers (size, margins, grid, frame, background), as it does in real papers
    p["style"] = {
        "figsize": [round(float(v), 2) for v in (rng.uniform(2.6, 3.6), rng.uniform(1.9, 2.8))],
        "margins": [round(float(v), 3) for v in (rng.uniform(0.13, 0.2), rng.uniform(0.15, 0.22))],
        "grid": bool(rng.random() < 0.3),
        "frame": bool(rng.random() < 0.6),
        "face": str(rng.choice(["white", "white", "white", "#eaeaf2", "#f4f4f4"])),
    }
    return FigureSpec(kind, domain, int(rng.integers(2**31)), p)


# ---- rendering --------------------------------------------------------------------------------------


def render_figure(spec: FigureSpec, fmt: str) -> bytes:
    """The figure as file bytes in ``fmt`` (pdf, eps, png, jpg)."""
    if spec.kind in TISSUE_CLASSES:
        if fmt in ("png", "jpg"):
            return image_bytes(texture_image(spec), fmt, quality=88)
        return figure_bytes(_texture_figure(spec), fmt)
    return figure_bytes(plot_figure(spec), fmt)


def figure_image(spec: FigureSpec) -> Image.Image:
    """The figure as an RGB Pillow image."""
    return texture_image(spec) if spec.kind in TISSUE_CLASSES else _raster(plot_figure(spec))


def _axis_label(variable: tuple[str, str]) -> str:
    name, unit = variable
    return f"{name.capitalize()} ({unit})" if unit else name.capitalize()


def plot_figure(spec: FigureSpec) -> Any:
    """A matplotlib Figure for a plot spec (no pyplot state involved)."""
    import matplotlib
    from matplotlib.figure import Figure

    rng = np.random.default_rng(spec.seed)
    p = spec.params
    with matplotlib.rc_context({"font.size": 6.5, "axes.linewidth": 0.7, "svg.hashsalt": "sciclip",
                                "pdf.fonttype": 42, "ps.fonttype": 42}):  # fmt: skip
        style = p["style"]
        fig = Figure(figsize=style["figsize"], dpi=DPI)
        if spec.kind == "schematic":
            _draw_schematic(fig, p, rng)
            return fig
        left, bottom = style["margins"]
        width = (0.8 if spec.kind == "heatmap" else 0.96) - left
        ax = fig.add_axes((left, bottom, width, 0.95 - bottom), facecolor=style["face"])
        getattr(_PLOTTERS, spec.kind)(fig, ax, p, rng)
        if spec.kind != "heatmap":
            if style["grid"]:
                ax.grid(True, lw=0.4, color="#bbbbbb" if style["face"] == "white" else "white")
                ax.set_axisbelow(True)
            ax.spines[["top", "right"]].set_visible(style["frame"])
        if spec.kind in ("line", "scatter", "histogram"):
            from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

            for axis in (ax.xaxis, ax.yaxis):
                log = axis.get_scale() == "log"
                axis.set_major_locator(LogLocator(numticks=4) if log else MaxNLocator(4))
                axis.set_minor_locator(NullLocator())
        return fig


class _PLOTTERS:
    @staticmethod
    def line(fig: Any, ax: Any, p: dict, rng: np.random.Generator) -> None:
        x = np.linspace(0, 10, 40)
        for index, colour in enumerate(p["colours"]):
            scale = 1 + 0.5 * index
            y = {
                "rise": scale * x / 10 + 0.2, "fall": scale * (1 - x / 12) + 0.3,
                "saturate": scale * (1 - np.exp(-x / 2)) + 0.1, "peak": scale * np.exp(-((x - 5) ** 2) / 6) + 0.1,
                "oscillate": scale * (1 + np.exp(-x / 6) * np.sin(2 * x + index)) / 2 + 0.2,
            }[p["trend"]] + rng.normal(0, 0.03, x.size)  # fmt: skip
            ax.plot(
                x,
                y,
                color=LINE_COLOURS[colour],
                lw=1.3,
                marker="o" if p["markers"] else None,
                markevery=4,
                ms=2.5,
                label=p["groups"][index],
            )
            if p["band"]:
                ax.fill_between(
                    x, y - 0.08 * scale, y + 0.08 * scale, color=LINE_COLOURS[colour], alpha=0.2, lw=0
                )
        if p["logy"]:
            ax.set_yscale("log")
        if len(p["colours"]) > 1:
            ax.legend(frameon=False, fontsize=5.5)
        ax.set_xlabel(_axis_label(p["x"]))
        ax.set_ylabel(_axis_label(p["y"]))

    @staticmethod
    def scatter(fig: Any, ax: Any, p: dict, rng: np.random.Generator) -> None:
        for index, colour in enumerate(p["colours"]):
            x = rng.uniform(0, 10, p["points"] // len(p["colours"]))
            y = p["slope"] * x + index * 2 + rng.normal(0, 1 + 6 * p["noise"], x.size)
            ax.scatter(x, y, s=5, color=LINE_COLOURS[colour], alpha=0.8, label=p["groups"][index], lw=0)
        if p["fit"]:
            grid = np.linspace(0, 10, 2)
            ax.plot(grid, p["slope"] * grid + len(p["colours"]) - 1, "k--", lw=1)
        if len(p["colours"]) > 1:
            ax.legend(frameon=False, fontsize=5.5, markerscale=2)
        ax.set_xlabel(_axis_label(p["x"]))
        ax.set_ylabel(_axis_label(p["y"]))

    @staticmethod
    def bar(fig: Any, ax: Any, p: dict, rng: np.random.Generator) -> None:
        positions = np.arange(len(p["categories"]))
        width = 0.38 if p["grouped"] else 0.7
        for index, colour in enumerate(p["colours"]):
            values = rng.uniform(0.3, 1.0, positions.size) * 80
            errors = rng.uniform(2, 8, positions.size) if p["errors"] else None
            offset = (index - (len(p["colours"]) - 1) / 2) * width
            draw = ax.barh if p["horizontal"] else ax.bar
            kwargs = {"xerr" if p["horizontal"] else "yerr": errors}
            draw(
                positions + offset,
                values,
                width,
                color=LINE_COLOURS[colour],
                label=p["groups"][index],
                capsize=1.5,
                error_kw={"lw": 0.7},
                **kwargs,
            )
        (ax.set_yticks if p["horizontal"] else ax.set_xticks)(positions, p["categories"])
        (ax.set_xlabel if p["horizontal"] else ax.set_ylabel)(_axis_label(p["y"]))
        if p["grouped"]:
            ax.legend(frameon=False, fontsize=5.5)

    @staticmethod
    def histogram(fig: Any, ax: Any, p: dict, rng: np.random.Generator) -> None:
        for index in range(2 if p["overlay"] else 1):
            n = p["samples"]
            if p["shape"] == "normal":
                values = rng.normal(5 + 2 * index, 1.2, n)
            elif p["shape"] == "right-skewed":
                values = rng.gamma(2.0, 1.2, n) + 2 * index
            else:
                values = np.concatenate([rng.normal(3, 0.8, n // 2), rng.normal(7 + index, 0.9, n - n // 2)])
            ax.hist(
                values,
                bins=p["bins"],
                color=LINE_COLOURS[p["colours"][index]],
                alpha=0.65 if p["overlay"] else 0.9,
                histtype="stepfilled",
            )
            if p["median"] and index == 0:
                ax.axvline(float(np.median(values)), color="k", ls="--", lw=1)
        ax.set_xlabel(_axis_label(p["x"]))
        ax.set_ylabel("Count")

    @staticmethod
    def heatmap(fig: Any, ax: Any, p: dict, rng: np.random.Generator) -> None:
        n = p["size"]
        if p["matrix"] == "correlation":
            base = rng.normal(size=(n, 3))
            data = np.corrcoef(base @ rng.normal(size=(3, 40)) + rng.normal(0, 0.6, (n, 40)))
        elif p["matrix"] == "confusion":
            data = np.eye(n) * rng.uniform(40, 90, n) + rng.uniform(0, 12, (n, n))
            for _ in range(int(rng.integers(0, 4))):  # pairs of classes the classifier confuses
                a, b = rng.choice(n, 2, replace=False)
                data[a, b] += rng.uniform(15, 45)
            if n <= 8:
                for (row, column), value in np.ndenumerate(data):
                    ax.text(column, row, f"{value:.0f}", ha="center", va="center", fontsize=4.5, color="w")
        else:
            grid = np.linspace(-3, 3, 4 * n)
            xx, yy = np.meshgrid(grid, grid)
            data = rng.normal(0, 0.03, xx.shape)
            for _ in range(p["peaks"]):
                (cx, cy), (sx, sy) = rng.uniform(-2.5, 2.5, 2), rng.uniform(0.3, 1.4, 2)
                data += rng.uniform(0.4, 1) * np.exp(
                    -((xx - cx) ** 2 / (2 * sx**2) + (yy - cy) ** 2 / (2 * sy**2))
                )
            angle, frequency = rng.uniform(0, np.pi), rng.uniform(0.5, 3)
            data += rng.uniform(0, 0.3) * np.sin(frequency * (np.cos(angle) * xx + np.sin(angle) * yy))
        image = ax.imshow(data, cmap=COLORMAPS[p["cmap"]], aspect="auto", interpolation="nearest")
        if p["colorbar"]:
            position = ax.get_position()
            fig.colorbar(image, cax=fig.add_axes((position.x1 + 0.03, position.y0, 0.04, position.height)))
        ax.set_xticks([])
        ax.set_yticks([])
        labels = {"correlation": ("Feature", "Feature"), "confusion": ("Predicted class", "True class")}
        xlabel, ylabel = labels.get(p["matrix"], (_axis_label(p["x"]), _axis_label(p["y"])))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)


def _schematic_layout(layout: str, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Box centres (axes fraction) for a layout, jittered so no two diagrams line up exactly."""
    if layout == "chain":
        centres = [((i + 0.5) / n, 0.5) for i in range(n)]
    elif layout == "column":
        centres = [(0.5, 1 - (i + 0.5) / n) for i in range(n)]
    elif layout == "grid":
        per_row = -(-n // 2)
        centres = [((i % per_row + 0.5) / per_row, 0.72 if i < per_row else 0.28) for i in range(n)]
    elif layout == "branch":
        middle = n - 2
        centres = [(0.12, 0.5)] + [(0.5, 1 - (i + 0.5) / middle) for i in range(middle)] + [(0.88, 0.5)]
    else:
        angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n
        centres = [(0.5 + 0.36 * np.cos(a), 0.5 + 0.36 * np.sin(a)) for a in angles]
    return [(float(x + rng.normal(0, 0.015)), float(y + rng.normal(0, 0.03))) for x, y in centres]


def _schematic_edges(layout: str, n: int) -> list[tuple[int, int]]:
    if layout == "branch":
        return [(0, i) for i in range(1, n - 1)] + [(i, n - 1) for i in range(1, n - 1)]
    if layout == "cycle":
        return [(i, (i + 1) % n) for i in range(n)]
    return [(i - 1, i) for i in range(1, n)]


def _draw_schematic(fig: Any, p: dict, rng: np.random.Generator) -> None:
    from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch

    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    boxes, layout = p["boxes"], p["layout"]
    n = len(boxes)
    centres = _schematic_layout(layout, n, rng)
    columns = {"chain": n, "column": 1, "grid": -(-n // 2), "branch": 3, "cycle": 3}[layout]
    rows = {"chain": 1, "column": n, "grid": 2, "branch": max(1, n - 2), "cycle": 3}[layout]
    w, h = min(0.7 / columns, 0.42) * rng.uniform(0.8, 1.0), min(0.6 / rows, 0.28) * rng.uniform(0.8, 1.0)
    for label, (cx, cy) in zip(boxes, centres, strict=True):
        colour = BOX_COLOURS[p["colours"][int(rng.random() < 0.5)]]
        if p["shape"] == "ellipse":
            ax.add_patch(Ellipse((cx, cy), w, h, fc=colour, ec="k", lw=0.8))
        else:
            style = "round,pad=0.01" if p["shape"] == "round" else "square,pad=0.0"
            ax.add_patch(
                FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle=style, fc=colour, ec="k", lw=0.8)
            )
        ax.text(cx, cy, label, ha="center", va="center", fontsize=5.5)
    edges = _schematic_edges(layout, n)
    if p["feedback"]:
        edges.append((n - 1, 0))
    for number, (start, end) in enumerate(edges):
        feedback = p["feedback"] and number == len(edges) - 1
        ax.add_patch(FancyArrowPatch(centres[start], centres[end], arrowstyle="-|>", mutation_scale=7, lw=0.9,
                                     shrinkA=14, shrinkB=14, ls="--" if feedback else "-",
                                     connectionstyle="arc3,rad=0.4" if feedback else "arc3,rad=0.0",
                                     color="#444444" if feedback else "k"))  # fmt: skip


def _texture_figure(spec: FigureSpec) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.6, 2.6), dpi=DPI)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    ax.imshow(np.asarray(texture_image(spec)), interpolation="nearest")
    ax.axis("off")
    return fig


def texture_image(spec: FigureSpec) -> Image.Image:
    """An H&E-like tissue texture or a fluorescence micrograph, with a scale bar."""
    rng = np.random.default_rng(spec.seed)
    side = TEXTURE_SIDE
    kind = spec.kind
    background = {"adipose": (236, 178, 206), "tumor": (196, 132, 186), "stroma": (236, 160, 192),
                  "lymphocytes": (242, 204, 222), "fluorescent": (4, 4, 8)}[kind]  # fmt: skip
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    if kind == "adipose":
        step = rng.uniform(26, 40)
        for gy in np.arange(-step / 2, side + step, step * 0.87):
            shift = step / 2 if int(gy / step) % 2 else 0
            for gx in np.arange(-step / 2 + shift, side + step, step):
                cx, cy = gx + rng.normal(0, step * 0.12), gy + rng.normal(0, step * 0.12)
                r = step * rng.uniform(0.44, 0.52)
                draw.ellipse((cx - r, cy - r * rng.uniform(0.85, 1.1), cx + r, cy + r), fill=(250, 246, 250))
        _nuclei(draw, rng, int(rng.integers(4, 12)), (2, 3.5), (110, 50, 140), side)
    elif kind == "tumor":
        _nuclei(draw, rng, int(rng.integers(160, 260)), (3.5, 7.5), (72, 28, 110), side, elongation=1.6)
    elif kind == "stroma":
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        t = np.linspace(-side, side, 80)
        for offset in np.arange(-side, side, rng.uniform(5, 9)):
            phase, amp = rng.uniform(0, 6), rng.uniform(2, 6)
            points = (
                side / 2 + np.outer(t, direction) + np.outer(offset + amp * np.sin(t / 14 + phase), normal)
            )
            draw.line([tuple(pt) for pt in points], fill=(208, 98, 150), width=int(rng.integers(2, 4)))
        for _ in range(int(rng.integers(10, 25))):
            cx, cy = rng.uniform(0, side, 2)
            dx, dy = direction * 8
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=(90, 40, 120), width=3)
    elif kind == "lymphocytes":
        _nuclei(draw, rng, int(rng.integers(380, 620)), (2.2, 3.4), (58, 36, 120), side)
    else:
        for _ in range(int(rng.integers(8, 22))):
            cx, cy = rng.uniform(10, side - 10, 2)
            r = rng.uniform(10, 20)
            colour = (
                (30, int(rng.uniform(150, 230)), 40)
                if rng.random() < 0.6
                else (int(rng.uniform(160, 230)), 30, 40)
            )
            draw.ellipse((cx - r, cy - r * rng.uniform(0.7, 1.2), cx + r, cy + r), fill=colour)
            rn = r * rng.uniform(0.35, 0.55)
            draw.ellipse((cx - rn, cy - rn, cx + rn, cy + rn), fill=(40, 60, 235))
    image = image.filter(ImageFilter.GaussianBlur(2.0 if kind == "fluorescent" else 0.9))
    pixels = np.asarray(image, dtype=np.float32)
    stain = np.asarray(spec.params["stain"], dtype=np.float32)
    # stain strength varies like optical density: white (no stain) stays white, black stays black
    pixels = pixels * stain if kind == "fluorescent" else 255 - (255 - pixels) * stain
    pixels += rng.normal(0, 5, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    bar = ImageDraw.Draw(image)
    bar_colour = (255, 255, 255) if kind == "fluorescent" else (20, 20, 20)
    bar.rectangle((side - 12 - spec.params["scale"] // 2, side - 12, side - 10, side - 9), fill=bar_colour)
    return image


def _nuclei(draw: ImageDraw.ImageDraw, rng: np.random.Generator, count: int, radius: tuple[float, float],
            colour: tuple[int, int, int], side: int, elongation: float = 1.15) -> None:  # fmt: skip
    for _ in range(count):
        cx, cy = rng.uniform(-4, side + 4, 2)
        rx = rng.uniform(*radius)
        ry = rx * rng.uniform(1 / elongation, elongation)
        shade = rng.uniform(0.8, 1.2)
        draw.ellipse(
            (cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(min(255, c * shade)) for c in colour)
        )
