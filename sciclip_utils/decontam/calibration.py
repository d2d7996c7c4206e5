"""Calibration of a descriptor's threshold on web-style near-duplicates of a varied population of its own.

The population is drawn here on purpose, not from the sample corpus's generators: calibrating on the
figures decontamination then filters would tune the threshold to that very data.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from sciclip_utils.decontam.descriptors import Descriptor, decode_image, get_descriptor
from sciclip_utils.images import to_rgb
from sciclip_utils.plots import figure_image

WEB_TRANSFORMS = ("resize", "crop", "jpeg", "colour", "pad", "flip")


def web_near_duplicate(img: Image.Image, rng: np.random.Generator, only: str | None = None) -> Image.Image:
    """A near-duplicate as found on the web: crop (<= 20% of each side), flip, colour shift and border, each
    with probability 1/2, then resize (0.5-1.5x) and JPEG re-encode (quality 50-95); ``only`` applies just
    that transform at its strongest setting."""
    img = to_rgb(img)
    chosen = {only} if only else {op for op in ("crop", "flip", "colour", "pad") if rng.random() < 0.5}
    if "crop" in chosen:
        keep_w, keep_h = (0.8, 0.8) if only else rng.uniform(0.8, 1.0, 2)
        width, height = img.size
        crop_w, crop_h = max(1, round(width * keep_w)), max(1, round(height * keep_h))
        x, y = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        img = img.crop((x, y, x + crop_w, y + crop_h))
    if "flip" in chosen:
        img = ImageOps.mirror(img)
    if "colour" in chosen:
        low, high = (0.9, 1.1) if not only else (0.9, 0.9)
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(low, high))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(low, high))
        img = ImageEnhance.Color(img).enhance(rng.uniform(low - 0.05, high + 0.05))
    if "pad" in chosen:
        frac = 0.1 if only else rng.uniform(0.02, 0.1)
        colours = [
            (255, 255, 255),
            (0, 0, 0),
            (128, 128, 128),
            tuple(int(v) for v in rng.integers(0, 256, 3)),
        ]
        fill = colours[int(rng.integers(len(colours)))]
        border = tuple(round(side * frac * rng.uniform(0.3, 1.0)) for side in (*img.size, *img.size))
        img = ImageOps.expand(img, border, fill=fill)
    if only in (None, "resize"):
        scale = 0.5 if only else rng.uniform(0.5, 1.5)
        img = img.resize(
            (max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.Resampling.BICUBIC
        )
    if only in (None, "jpeg"):
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=50 if only else int(rng.integers(50, 96)))
        img = decode_image(buffer.getvalue())
    return img


def calibration_images(
    seed: int = 0,
    *,
    plots: int = 180,
    textures: int = 40,
    digits: int = 40,
    shapes: int = 60,
    stock_plots: int = 12,
) -> list[tuple[str, Image.Image]]:
    """A varied population of distinct ``(category, image)``: photo tiles (scikit-learn and matplotlib
    sample photos), handwritten digits (scikit-learn), geometric shapes on plain backgrounds, textures,
    real and synthetic plots of many kinds drawn in the same styles (so many look alike)."""
    rng = np.random.default_rng(seed)
    population = [("photo", tile) for tile in _photo_tiles()]
    population += [("digit", img) for img in _digit_images(rng, digits)]
    population += [("shape", _shape_image(rng)) for _ in range(shapes)]
    population += [("texture", _texture_image(rng)) for _ in range(textures)]
    population += [("plot", img) for img in _stock_plots(rng, stock_plots)]
    kinds = ("line", "line", "scatter", "bar", "hist", "heatmap", "contour", "multi")
    population += [("plot", _plot_image(rng, kinds[i % len(kinds)])) for i in range(plots)]
    return population


@dataclass
class Calibration:
    """ROC of a descriptor on web-style near-duplicates and the threshold chosen from it.

    Pair level (the ROC): a positive is a near-duplicate scored against its original, a negative a
    near-duplicate scored against a distinct image. Set level (what decontamination sees): the copies of
    the odd-numbered images are scored by their maximum over the even-numbered ones; ``set_fpr`` is the
    share of them above the threshold, ``set_tpr`` the share of copies of even-numbered images above it.
    """

    descriptor: str
    threshold: float
    tpr: float
    fpr: float
    set_tpr: float
    set_fpr: float
    set_threshold: float  # lowest threshold with set-level FPR <= target_fpr
    roc: Any  # DataFrame: threshold, tpr, fpr, set_tpr, set_fpr
    per_transform: dict[str, float]  # pair-level TPR with only that transform (at its strongest)
    per_category: dict[str, dict[str, float]]  # pair-level TPR / FPR per image category
    images: int
    positives: int
    negatives: int
    positive_scores: np.ndarray = field(repr=False)
    negative_scores: np.ndarray = field(repr=False)


def calibrate(
    descriptor: str | Descriptor = "dct",
    *,
    seed: int = 0,
    threshold: float | None = None,
    target_fpr: float = 0.01,
    target_tpr: float = 0.95,
    copies: int = 2,
    population: Sequence[tuple[str, Image.Image]] | None = None,
    transforms_alone: bool = True,
    weights: str | Path | None = None,
) -> Calibration:
    """Measure how well ``descriptor`` separates near-duplicates from distinct images and pick a threshold.

    ``copies`` :func:`web_near_duplicate` copies are made of every image of ``population`` (default
    :func:`calibration_images` of ``seed``); each is scored like decontamination scores a training image
    (maximum over the reference views) against its original (positives) and every other image (negatives).
    The threshold lies midway between the lowest one with pair-level FPR <= ``target_fpr`` and the highest
    one with TPR >= ``target_tpr`` (at the former if both cannot hold); pass ``threshold`` to evaluate a
    given one. ``transforms_alone`` adds the TPR of each transform applied alone.
    """
    import pandas as pd

    model = get_descriptor(descriptor, weights) if isinstance(descriptor, str) else descriptor
    images = list(population) if population is not None else calibration_images(seed)
    rng = np.random.default_rng(seed + 1)
    originals = [img for _, img in images]
    categories = np.array([category for category, _ in images])
    owners = np.repeat(np.arange(len(originals)), copies)
    queries = model.embed([web_near_duplicate(originals[i], rng) for i in owners])
    reference, ref_owner = model.embed_reference(originals)
    sims = _max_per_owner(queries @ reference.T, ref_owner, len(originals))
    rows = np.arange(len(owners))
    positive = sims[rows, owners]
    distinct = np.ones_like(sims, dtype=bool)
    distinct[rows, owners] = False
    negative = sims[distinct]
    in_reference = np.arange(len(originals)) % 2 == 0
    set_scores = sims[:, in_reference].max(axis=1)
    set_positive, set_negative = set_scores[in_reference[owners]], set_scores[~in_reference[owners]]

    if threshold is None:
        lowest_ok_fpr = float(np.quantile(negative, 1 - target_fpr, method="higher"))
        highest_ok_tpr = float(np.quantile(positive, 1 - target_tpr, method="lower"))
        threshold = (lowest_ok_fpr + highest_ok_tpr) / 2 if lowest_ok_fpr < highest_ok_tpr else lowest_ok_fpr
    grid = np.unique(np.round(np.concatenate([positive, negative, [threshold]]), 3))
    roc = pd.DataFrame({
        "threshold": grid,
        "tpr": _share_above(positive, grid),
        "fpr": _share_above(negative, grid),
        "set_tpr": _share_above(set_positive, grid),
        "set_fpr": _share_above(set_negative, grid),
    })  # fmt: skip
    per_transform = {}
    if transforms_alone:
        for op in WEB_TRANSFORMS:
            alone = model.embed([web_near_duplicate(img, rng, only=op) for img in originals])
            alone_sims = _max_per_owner(alone @ reference.T, ref_owner, len(originals))
            per_transform[op] = float((np.diag(alone_sims) > threshold).mean())
    per_category = {}
    for category in sorted(set(categories)):
        mine = categories[owners] == category
        per_category[str(category)] = {
            "tpr": float((positive[mine] > threshold).mean()),
            "fpr": float((sims[mine][distinct[mine]] > threshold).mean()),
        }
    return Calibration(
        descriptor=model.name,
        threshold=float(threshold),
        tpr=float((positive > threshold).mean()),
        fpr=float((negative > threshold).mean()),
        set_tpr=float((set_positive > threshold).mean()),
        set_fpr=float((set_negative > threshold).mean()),
        set_threshold=float(np.quantile(set_negative, 1 - target_fpr, method="higher")),
        roc=roc,
        per_transform=per_transform,
        per_category=per_category,
        images=len(originals),
        positives=len(positive),
        negatives=len(negative),
        positive_scores=positive,
        negative_scores=negative,
    )


def _share_above(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, the share of ``scores`` strictly above it."""
    ordered = np.sort(scores)
    return 1.0 - np.searchsorted(ordered, thresholds, side="right") / max(len(ordered), 1)


def _max_per_owner(sims: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Column-wise maximum of ``sims`` over the reference rows of each owner image: ``(queries, count)``."""
    out = np.full((sims.shape[0], count), -np.inf, dtype=np.float32)
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    out[:, sorted_owner[starts]] = np.maximum.reduceat(sims[:, order], starts, axis=1)
    return out


# ---- calibration population generators ------------------------------------------------------------

_WORDS = [
    "time",
    "loss",
    "accuracy",
    "energy",
    "density",
    "epoch",
    "flux",
    "error",
    "signal",
    "mass",
    "rate",
    "count",
]


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    kernel = np.exp(-(fx**2 + fy**2) * scale**2 * 2 * np.pi**2)
    field_ = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * kernel))
    return (field_ - field_.min()) / (np.ptp(field_) + 1e-9)


def _photo_tiles(grid: int = 3) -> list[Image.Image]:
    import matplotlib.cbook as cbook
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(array) for array in load_sample_images().images]
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(Image.open(handle).convert("RGB"))
    tiles = []
    for photo in photos:
        w, h = photo.size
        for i in range(grid):
            for j in range(grid):
                tiles.append(
                    photo.crop((j * w // grid, i * h // grid, (j + 1) * w // grid, (i + 1) * h // grid))
                )
    return tiles


def _digit_images(rng: np.random.Generator, count: int) -> list[Image.Image]:
    from sklearn.datasets import load_digits

    digits = load_digits().images
    chosen = rng.choice(len(digits), count, replace=False)
    return [
        Image.fromarray((255 - digits[i] / 16 * 255).astype(np.uint8))
        .resize((32, 32), Image.Resampling.BILINEAR)
        .convert("RGB")
        for i in chosen
    ]


def _shape_image(rng: np.random.Generator) -> Image.Image:
    from PIL import ImageDraw

    size = int(rng.integers(96, 257))
    background = tuple(int(v) for v in rng.integers(225, 256, 3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    for index in range(1 + int(rng.random() < 0.3)):
        radius = size * (rng.uniform(0.12, 0.35) if index == 0 else rng.uniform(0.05, 0.1))
        cx, cy = rng.uniform(radius, size - radius, 2)
        colour = tuple(int(v) for v in rng.integers(0, 220, 3)) if index == 0 else (150, 150, 150)
        sides = int(rng.integers(2, 9))
        if sides == 2:
            draw.ellipse(
                (cx - radius, cy - radius * rng.uniform(0.5, 1), cx + radius, cy + radius), fill=colour
            )
        else:
            angles = rng.uniform(0, 2 * np.pi) + np.arange(sides) * 2 * np.pi / sides
            draw.polygon([(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles], fill=colour)
    return img


def _texture_image(rng: np.random.Generator) -> Image.Image:
    shape = (int(rng.integers(64, 300)), int(rng.integers(64, 300)))
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    kind = int(rng.integers(4))
    if kind == 0:
        theta, freq = rng.uniform(0, np.pi), rng.uniform(3, 30)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy))
    elif kind == 1:
        cells = rng.uniform(3, 16)
        pattern = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(float)
    elif kind == 2:
        pattern = _smooth_field(rng, shape, rng.uniform(2, 20))
    else:
        pattern = (_smooth_field(rng, shape, rng.uniform(1, 4)) > 0.5).astype(float)
    colours = rng.uniform(0, 255, (2, 3))
    rgb = colours[0] * (1 - pattern[..., None]) + colours[1] * pattern[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def _stock_plots(rng: np.random.Generator, count: int) -> list[Image.Image]:
    import matplotlib.cbook as cbook
    from matplotlib.figure import Figure

    close = cbook.get_sample_data("goog.npz")["price_data"]["adj_close"]
    images = []
    for _ in range(count):
        start = int(rng.integers(0, len(close) - 200))
        length = int(rng.integers(100, len(close) - start))
        fig = Figure(figsize=(5, 3.5), dpi=80)
        ax = fig.add_subplot()
        ax.plot(close[start : start + length])
        ax.set_ylabel("price")
        images.append(figure_image(fig))
    return images


def _plot_image(rng: np.random.Generator, kind: str) -> Image.Image:
    import matplotlib.style
    from matplotlib.figure import Figure

    styles = ("default", "default", "seaborn-v0_8-whitegrid", "ggplot", "bmh", "classic")
    sizes = ((4, 3), (5, 3.5), (4.5, 4), (6, 3), (3.5, 3.5))
    with matplotlib.style.context(styles[int(rng.integers(len(styles)))]):
        fig = Figure(figsize=sizes[int(rng.integers(len(sizes)))], dpi=int(rng.integers(60, 100)))
        if kind == "multi":
            panels = int(rng.choice([2, 3, 4]))
            axes = fig.subplots(1, panels) if panels < 4 else fig.subplots(2, 2).ravel()
            for ax in axes:
                _draw(rng, ax, ("line", "scatter", "bar", "hist")[int(rng.integers(4))], fig)
        else:
            _draw(rng, fig.add_subplot(), kind, fig)
        if rng.random() < 0.6:
            fig.tight_layout()
        return figure_image(fig)


def _draw(rng: np.random.Generator, ax: Any, kind: str, fig: Any) -> None:
    x = np.linspace(0, rng.uniform(1, 20), 200)
    if kind == "line":
        for _ in range(int(rng.integers(1, 5))):
            form = int(rng.integers(4))
            if form == 0:
                y = np.cumsum(rng.standard_normal(x.size))
            elif form == 1:
                y = sum(
                    rng.uniform(0.2, 1) * np.sin(rng.uniform(0.2, 3) * x + rng.uniform(0, 6))
                    for _ in range(3)
                )
            elif form == 2:
                y = rng.uniform(0.5, 3) * np.exp(-x / rng.uniform(1, 10)) + 0.05 * rng.standard_normal(x.size)
            else:
                y = np.polyval(rng.standard_normal(4), x / x.max())
            ax.plot(x, y, label=_WORDS[int(rng.integers(len(_WORDS)))], lw=rng.uniform(1, 2.5))
        if rng.random() < 0.5:
            ax.legend()
        if rng.random() < 0.3:
            ax.set_yscale("symlog")
    elif kind == "scatter":
        for _ in range(int(rng.integers(1, 4))):
            points = rng.standard_normal((int(rng.integers(20, 300)), 2)) @ rng.uniform(-1, 1, (2, 2))
            points += rng.uniform(-3, 3, 2)
            ax.scatter(points[:, 0], points[:, 1], s=rng.uniform(3, 30), alpha=rng.uniform(0.4, 1))
    elif kind == "bar":
        bars, groups = int(rng.integers(3, 12)), int(rng.integers(1, 4))
        for group in range(groups):
            errors = rng.uniform(0, 0.1, bars) if rng.random() < 0.4 else None
            ax.bar(
                np.arange(bars) + group * 0.8 / groups,
                rng.uniform(0.1, 1, bars),
                width=0.8 / groups,
                yerr=errors,
            )
    elif kind == "hist":
        for _ in range(int(rng.integers(1, 3))):
            data = rng.gamma(rng.uniform(1, 5), 1, 500) if rng.random() < 0.5 else rng.standard_normal(500)
            ax.hist(data, bins=int(rng.integers(10, 40)), alpha=0.7)
    elif kind == "heatmap":
        field_ = _smooth_field(rng, (int(rng.integers(20, 80)), int(rng.integers(20, 80))), rng.uniform(1, 8))
        cmaps = ("viridis", "magma", "coolwarm", "gray", "jet")
        shown = ax.imshow(field_, cmap=cmaps[int(rng.integers(len(cmaps)))])
        if rng.random() < 0.6:
            fig.colorbar(shown, ax=ax)
    elif kind == "contour":
        cmaps = ("viridis", "RdBu", "plasma")
        ax.contourf(_smooth_field(rng, (60, 60), rng.uniform(3, 10)), levels=int(rng.integers(5, 15)),
                    cmap=cmaps[int(rng.integers(len(cmaps)))])  # fmt: skip
    ax.set_xlabel(_WORDS[int(rng.integers(len(_WORDS)))])
    ax.set_ylabel(_WORDS[int(rng.integers(len(_WORDS)))])
    if rng.random() < 0.4:
        ax.set_title(" ".join(rng.choice(_WORDS, 2)))
