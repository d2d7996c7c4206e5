"""Figures the notebooks show and the package draws: matplotlib figures rendered to images, image grids,
galleries of extracted pairs and ROC panels. matplotlib is imported lazily (headless: Agg canvases)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image


def figure_image(fig: Any) -> Image.Image:
    """Rasterise a matplotlib Figure (Agg) to an RGB Pillow image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


def _as_image(image: Any) -> Any:
    """Pillow images and arrays as they are; encoded bytes decoded."""
    if isinstance(image, (bytes, bytearray)):
        import io

        return Image.open(io.BytesIO(image))
    return image


def _grid(count: int, columns: int, cell: tuple[float, float]) -> tuple[Any, Any]:
    """A pyplot figure of ``count`` cells in rows of ``columns``, every axis off."""
    import matplotlib.pyplot as plt

    rows = max(1, -(-count // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(cell[0] * columns, cell[1] * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def image_grid(
    items: Sequence[tuple[Any, str]],
    columns: int,
    cell: tuple[float, float] = (2.2, 2.4),
    fontsize: float = 7,
) -> Any:
    """A grid of ``(image, title)`` (Pillow images, arrays or encoded bytes), ``columns`` per row."""
    fig, axes = _grid(len(items), columns, cell)
    for ax, (image, title) in zip(axes, items, strict=False):
        ax.imshow(_as_image(image))
        ax.set_title(title, fontsize=fontsize)
    fig.tight_layout()
    return fig


def caption_gallery(
    items: Sequence[tuple[Any, str, str]], columns: int = 4, wrap: int = 48, max_chars: int = 420
) -> Any:
    """``(image, heading, caption)`` cells: the image, its heading, and the caption wrapped beneath."""
    fig, axes = _grid(len(items), columns, (4.2, 4.6))
    for ax, (image, heading, caption) in zip(axes, items, strict=False):
        ax.imshow(_as_image(image))
        ax.set_title(heading, fontsize=8)
        shown = caption if len(caption) <= max_chars else caption[:max_chars] + " ..."
        ax.text(0, -0.04, textwrap.fill(shown, wrap), transform=ax.transAxes, va="top", fontsize=6.5,
                family="monospace")  # fmt: skip
    fig.tight_layout()
    return fig


def pair_gallery(data_dir: str | Path, count: int = 12, per_paper: int = 2, columns: int = 4) -> Any:
    """Up to ``count`` figure-caption pairs of a CommonPool dataset, at most ``per_paper`` per paper from its
    first shard (so the gallery spans several papers); None when it has no pairs."""
    import pandas as pd

    from sciclip_utils.commonpool import iter_samples, read_metadata

    metadata = read_metadata(data_dir)
    if metadata.empty:
        return None
    first_shard = metadata[metadata["shard"] == metadata["shard"].min()]
    picked = first_shard.groupby("paper_id", sort=False).head(per_paper)
    wanted = set(pd.concat([picked, first_shard.drop(picked.index)]).head(count)["key"])
    samples = []
    for sample in iter_samples(data_dir):
        if sample.key in wanted:
            samples.append(sample)
        if len(samples) == len(wanted):
            break
    items = [(s.jpg, f"{s.json.get('paper_id')} {s.json.get('figure_id')}", s.text) for s in samples]
    return caption_gallery(items, columns=columns)


def roc_panel(calibration: Any, reference: float, threshold: float | None = None) -> Any:
    """A descriptor's calibration: the ROC (pair and set level) with ``reference`` and this run's
    ``threshold`` marked, and the score distributions of near-duplicates and distinct pairs."""
    import matplotlib.pyplot as plt
    import numpy as np

    roc = calibration.roc
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(roc["fpr"], roc["tpr"], label="pairs (copy vs one image)")
    left.plot(roc["set_fpr"], roc["set_tpr"], label=f"set (copy vs {(calibration.images + 1) // 2} images)")
    marks = [(reference, "ko", f"threshold {reference}")]
    if threshold is not None and threshold != reference:
        marks.append((threshold, "rs", f"this run's {threshold}"))
    for value, style, label in marks:
        at = roc.iloc[(roc["threshold"] - value).abs().argmin()]
        left.plot([at["fpr"], at["set_fpr"]], [at["tpr"], at["set_tpr"]], style, label=label)
    left.axvline(0.01, color="grey", linestyle=":")
    left.axhline(0.95, color="grey", linestyle=":")
    left.set_xscale("symlog", linthresh=1e-3)
    left.set(xlim=(0, 1), xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    left.legend(fontsize=8)
    bins = np.linspace(-0.2, 1, 61)
    right.hist(calibration.negative_scores, bins=bins, density=True, alpha=0.6, label="distinct pairs")
    right.hist(calibration.positive_scores, bins=bins, density=True, alpha=0.6, label="near-duplicates")
    for (value, style, _), colour in zip(marks, ("k", "r"), strict=False):
        right.axvline(value, color=colour, linestyle="--" if style == "ko" else ":")
    right.set_xlabel("score")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def score_histogram(scores: Any, threshold: float) -> Any:
    """Decontamination scores per source (step histograms) with the threshold."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(min(-0.2, scores["dedup_score"].min()), 1.0, 60)
    for source, group in scores.groupby("source"):
        ax.hist(
            group["dedup_score"], bins=bins, histtype="step", linewidth=1.5, label=f"{source} ({len(group)})"
        )
    ax.axvline(threshold, color="k", linestyle="--", label="threshold")
    ax.set(xlabel="score: max cosine similarity to an evaluation image", ylabel="samples")
    ax.legend()
    return fig
