"""Figures of the analysis chapter: caption-length distributions, the figure-type mix, the confusion matrix
and example figures per type. Each function returns a matplotlib Figure (the caller saves or shows it)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sciclip_utils.analysis.captions import CONTEXT_LENGTH, caption_lengths
from sciclip_utils.analysis.figure_types import FIGURE_TYPES, TYPE_LABELS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def caption_length_figure(sources: Mapping[str, pd.DataFrame]) -> Figure:
    """Histogram (top) and CDF (bottom) of caption length per source, in characters (left) and words
    (right), on log-spaced x axes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), constrained_layout=True)
    lengths = {source: caption_lengths(metadata) for source, metadata in sources.items()}
    for column, unit in enumerate(("chars", "words")):
        values = [frame[unit].to_numpy() for frame in lengths.values()]
        top = max((v.max() for v in values if len(v)), default=10)
        bins = np.logspace(0, np.log10(max(top, 10) + 1), 40)
        for source, frame in lengths.items():
            data = np.maximum(frame[unit].to_numpy(), 1)
            if not len(data):
                continue
            axes[0, column].hist(data, bins=bins, histtype="step", density=True, label=source, linewidth=1.5)
            ordered = np.sort(data)
            axes[1, column].step(
                ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=source
            )
        label = "caption length (characters)" if unit == "chars" else "caption length (words)"
        for row in (0, 1):
            axes[row, column].set_xscale("log")
            axes[row, column].set_xlabel(label)
        axes[0, column].set_ylabel("density")
        axes[1, column].set_ylabel("share of captions ≤ x")
        axes[1, column].grid(alpha=0.3)
    axes[0, 0].legend()
    return fig


def truncation_figure(tokens: Mapping[str, np.ndarray], context_length: int = CONTEXT_LENGTH) -> Figure:
    """CDF of caption length in CLIP BPE tokens per source, with the context's text budget marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    for source, counts in tokens.items():
        if len(counts):
            ordered = np.sort(np.maximum(counts, 1))
            ax.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=source)
    ax.axvline(context_length - 2, color="black", linestyle="--", linewidth=1)
    ax.text(context_length - 2, 0.03, f" {context_length - 2} text tokens fit", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("caption length (open_clip BPE tokens)")
    ax.set_ylabel("share of captions ≤ x")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def type_mix_figure(shares: pd.DataFrame) -> Figure:
    """Stacked bars: the share of each figure type per source (``shares``: sources x ``share_<type>``)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(shares)), constrained_layout=True)
    left = np.zeros(len(shares))
    for kind in FIGURE_TYPES:
        values = shares[f"share_{kind}"].fillna(0).to_numpy()
        ax.barh(shares.index.astype(str), values, left=left, label=TYPE_LABELS[kind])
        left += values
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the source's figures")
    ax.legend(ncols=len(FIGURE_TYPES), loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.1 / len(shares)))
    return fig


def confusion_figure(table: pd.DataFrame) -> Figure:
    """The confusion matrix (counts, rows: true type) as a heat map."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4), constrained_layout=True)
    ax.imshow(table.to_numpy(), cmap="Blues")
    names = [TYPE_LABELS[t] for t in table.index]
    ax.set_xticks(range(len(names)), [TYPE_LABELS[t] for t in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(int(table.to_numpy().max()), 1)
    for (row, column), value in np.ndenumerate(table.to_numpy()):
        ax.text(
            column, row, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black"
        )
    return fig


def examples_figure(examples: Mapping[str, list[bytes]], per_type: int = 6) -> Figure:
    """A grid of example images, one row per predicted figure type."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(
        len(FIGURE_TYPES), per_type, figsize=(1.6 * per_type, 1.7 * len(FIGURE_TYPES)), squeeze=False
    )
    for row, kind in enumerate(FIGURE_TYPES):
        for column in range(per_type):
            ax = axes[row, column]
            ax.axis("off")
            images = examples.get(kind, [])
            if column < len(images):
                ax.imshow(Image.open(io.BytesIO(images[column])).convert("RGB"))
        axes[row, 0].set_title(TYPE_LABELS[kind], loc="left", fontsize=9)
    fig.tight_layout()
    return fig
