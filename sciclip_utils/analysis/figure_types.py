"""What the figures are: plot/chart, diagram/drawing, photo/microscopy or other, from image statistics.

``image_features`` turns one image into a short vector of interpretable statistics (white and dark shares,
colour count and dominance, saturation, gradient and line structure, a hue and a luminance histogram, an
8x8 thumbnail). ``FigureTypeClassifier`` is a random forest on these features, trained here on figures
drawn by the sample corpus's own generators with a seed of its own (no download, no pretrained weights);
``labelled_figures`` gives the kinds the generators recorded for a generated corpus, so the classifier is
measured on figures it never saw, through the whole extraction path (render, crop, resize, JPEG).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

FIGURE_TYPES = ("plot", "diagram", "photo", "other")
TYPE_LABELS = {
    "plot": "plot/chart",
    "diagram": "diagram/drawing",
    "photo": "photo/microscopy",
    "other": "other",
}
# The sample corpus's generator kinds (sample_corpus.figures, sample_corpus.natural) and their figure type.
KIND_TYPES = {
    "line": "plot", "scatter": "plot", "bar": "plot", "histogram": "plot", "heatmap": "plot", "chart": "plot",
    "schematic": "diagram", "shape": "diagram", "scene": "diagram", "digit": "diagram",
    "adipose": "photo", "tumor": "photo", "stroma": "photo", "lymphocytes": "photo", "fluorescent": "photo",
    "photo": "photo",
    "texture": "other",
}  # fmt: skip
# Kinds drawn more often for training: web shapes come on nine kinds of background.
DRAWS_PER_KIND = {"shape": 3}
SIDE = 128  # images are analysed with their longest side at this many pixels
_DOMAINS = ("physics", "astro", "ml", "bio")
_WEB_KINDS = ("chart", "shape", "scene", "photo", "texture", "digit")


def decode_small(data: bytes, side: int = SIDE) -> np.ndarray:
    """An RGB uint8 array of the image with its longest side at most ``side`` (JPEGs decoded at reduced
    scale by libjpeg, so large images cost little)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side * 2, side * 2))
        image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.BILINEAR)
        return np.asarray(image)


def image_features(pixels: np.ndarray) -> np.ndarray:
    """Statistics of an RGB uint8 image (see the module docstring) as a float32 vector."""
    rgb = pixels.astype(np.float32) / 255.0
    height, width = rgb.shape[:2]
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    white = low > 0.92
    dark = high < 0.2
    quantised = (
        (pixels[..., 0] >> 4).astype(np.int32) * 256 + (pixels[..., 1] >> 4) * 16 + (pixels[..., 2] >> 4)
    )
    counts = np.sort(np.bincount(quantised.ravel(), minlength=4096))[::-1] / quantised.size
    gy, gx = np.abs(np.diff(luma, axis=0)), np.abs(np.diff(luma, axis=1))
    gradient = np.concatenate([gx.ravel(), gy.ravel()])
    ink = ~white
    rows, columns = ink.mean(axis=1), ink.mean(axis=0)
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    hue = _hue(rgb, high, low)
    hue_histogram = np.histogram(hue, bins=6, range=(0, 1), weights=saturation)[0] / max(
        saturation.sum(), 1e-6
    )
    luma_histogram = np.histogram(luma, bins=8, range=(0, 1))[0] / luma.size
    thumbnail = np.asarray(Image.fromarray(pixels).convert("L").resize((8, 8), Image.Resampling.BOX)) / 255.0
    return np.concatenate(
        [
            [
                white.mean(),
                dark.mean(),
                border.mean(),
                luma.mean(),
                luma.std(),
                saturation.mean(),
                saturation.std(),
                (saturation > 0.4).mean(),
                np.log1p((counts > 0).sum()),
                counts[0],
                counts[:4].sum(),
                counts[:16].sum(),
                gradient.mean(),
                (gradient > 0.25).mean(),
                ((gradient > 0.01) & (gradient < 0.08)).mean(),
                (gradient == 0).mean(),
                gx.mean() / max(gy.mean(), 1e-6),
                (rows > 0.6).mean(),
                (columns > 0.6).mean(),
                rows.std(),
                columns.std(),
                np.log(width / height),
            ],
            hue_histogram,
            luma_histogram,
            thumbnail.ravel(),
        ]  # fmt: skip
    ).astype(np.float32)


def _hue(rgb: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    delta = np.maximum(high - low, 1e-6)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(
        high == r, ((g - b) / delta) % 6, np.where(high == g, (b - r) / delta + 2, (r - g) / delta + 4)
    )
    return hue / 6.0


def features_of(images: Iterable[bytes]) -> np.ndarray:
    """The feature matrix of encoded images (one row each)."""
    rows = [image_features(decode_small(data)) for data in images]
    return np.stack(rows) if rows else np.empty((0, len(image_features(np.zeros((8, 8, 3), np.uint8)))))


def generated_figures(seed: int, per_kind: int) -> tuple[list[bytes], list[str]]:
    """``per_kind`` figures of every generator kind, drawn with ``seed`` and stored as DataComp JPEGs,
    with their kinds: the classifier's training set."""
    from sciclip_utils.images import prepare_image
    from sciclip_utils.sample_corpus.figures import figure_image, sample_figure
    from sciclip_utils.sample_corpus.natural import natural_image, sample_natural

    rng = np.random.default_rng([seed, 18])
    images, kinds = [], []
    for kind in KIND_TYPES:
        for _ in range(per_kind * DRAWS_PER_KIND.get(kind, 1)):
            if kind in _WEB_KINDS:
                image = natural_image(sample_natural(rng, kind))
            else:
                domain = "bio" if KIND_TYPES[kind] == "photo" else str(rng.choice(_DOMAINS))
                image = figure_image(sample_figure(rng, kind, domain))
            images.append(prepare_image(image).jpeg)
            kinds.append(kind)
    return images, kinds


@dataclass
class FigureTypeClassifier:
    """A random forest over :func:`image_features`, predicting one of :data:`FIGURE_TYPES`."""

    model: Any

    @classmethod
    def fit(cls, features: np.ndarray, types: Iterable[str], seed: int = 0) -> FigureTypeClassifier:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1)
        model.fit(features, list(types))
        return cls(model)

    @classmethod
    def train(cls, seed: int = 0, per_kind: int = 30) -> FigureTypeClassifier:
        """Train on :func:`generated_figures` (about half a minute on one core for 30 per kind)."""
        images, kinds = generated_figures(seed, per_kind)
        return cls.fit(features_of(images), [KIND_TYPES[kind] for kind in kinds], seed)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The figure type of each feature row."""
        if len(features) == 0:
            return np.array([], dtype=object)
        return self.model.predict(features)


def labelled_figures(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The figures whose kind the sample corpus generator recorded (``corpus_summary.json`` as a dict):
    ``source``, ``paper_id``, ``figure_id`` as extraction names them, ``kind`` and ``type``.

    A sub-figure ``fig2b`` has the kind of panel b; a composite float (several panels, one image) is
    labelled only when all its panels are of one type. Web-pool near-duplicates (kind ``near-duplicate``)
    are left out.
    """
    rows = []
    for paper in summary["arxiv"].get("papers_detail", []):
        for figure_id, kinds in paper.get("kinds_by_figure", {}).items():
            types = {KIND_TYPES.get(kind) for kind in kinds}
            if len(kinds) > 1:  # sub-figures: one pair per panel, or a composite image of all panels
                for index, kind in enumerate(kinds):
                    rows.append(("arxiv", paper["id"], f"{figure_id}{chr(97 + index)}", kind))
            if len(types) == 1 and None not in types:
                rows.append(("arxiv", paper["id"], figure_id, kinds[0]))
    for article, kinds in summary["pmc"].get("kinds_by_figure", {}).items():
        rows += [("pmc", article, figure_id, kind) for figure_id, kind in kinds.items()]
    web = summary["commonpool"].get("kind_by_index", [])
    rows += [("commonpool", "web", str(index), kind) for index, kind in enumerate(web) if kind in KIND_TYPES]
    frame = pd.DataFrame(rows, columns=["source", "paper_id", "figure_id", "kind"])
    frame["type"] = frame["kind"].map(KIND_TYPES)
    return frame.dropna(subset=["type"])


def confusion(truth: Iterable[str], predicted: Iterable[str]) -> pd.DataFrame:
    """Counts of true (rows) against predicted (columns) figure types."""
    table = pd.crosstab(
        pd.Categorical(list(truth), FIGURE_TYPES), pd.Categorical(list(predicted), FIGURE_TYPES), dropna=False
    )
    return table.rename_axis(index="true", columns="predicted")
