"""Per-sample predictions of one task and the metrics and bootstrap intervals computed from them.

A classification task keeps, per test sample, the true class and the top-5 predicted classes, and for
DataComp's worst-group tasks (FMoW, Dollar Street, GeoDE; see ``grouped``) the sample's group under each
grouping; a retrieval task keeps, per caption, its image and whether the image was ranked first
(``image_retrieval``), and per image whether one of its captions was ranked first (``text_retrieval``);
WinoGAViL keeps, per instance, the Jaccard index of the picked candidates and the number of candidates.
Every metric is a function of these arrays and a resampling of the task's units (samples; for retrieval,
images with their captions; WinoGAViL instances), so a bootstrap replicate resamples the units and
recomputes the metric without running the model again. Two runs evaluated on the same test set are
compared with a paired bootstrap: the same resampled units for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sciclip_utils.evaluate.grouped import grouped_metric, is_grouped_metric

CONFIDENCE = 0.95
TOP_K = 5
# DataComp's WinoGAViL metrics: mean Jaccard index over the instances with this many candidates (bounds)
JACCARD_SCORES = {
    "avg_jaccard_score": (0, np.inf),
    "jaccard_score_5": (5, 5),
    "jaccard_score_6": (6, 6),
    "jaccard_score_10": (10, 10),
    "jaccard_score_12": (12, 12),
    "jaccard_score_5-6": (0, 6),
    "jaccard_score_10-12": (10, np.inf),
}


@dataclass(frozen=True)
class Predictions:
    """What a task's main metric needs, per test sample (see the module docstring)."""

    kind: str  # "classification" | "retrieval" | "winogavil"
    target: np.ndarray | None = None  # (N,) true class
    top: np.ndarray | None = None  # (N, k) predicted classes, best first
    num_classes: int = 0
    caption_image: np.ndarray | None = None  # (T,) image index of each caption
    image_hit: np.ndarray | None = None  # (T,) the caption's image ranked first among all images
    text_hit: np.ndarray | None = None  # (I,) one of the image's captions ranked first among all captions
    groups: np.ndarray | None = None  # (N, G) the sample's group under each grouping (worst-group tasks)
    group_by: np.ndarray | None = None  # (G,) the metadata field of each grouping ("year", "region")
    jaccard: np.ndarray | None = None  # (I,) WinoGAViL: Jaccard index of picked and true associations
    candidates: np.ndarray | None = None  # (I,) WinoGAViL: number of candidate images of the instance

    @property
    def units(self) -> int:
        """Number of resampled units: test samples, images for retrieval, instances for WinoGAViL."""
        unit_array = {"classification": self.target, "retrieval": self.text_hit, "winogavil": self.jaccard}
        return len(unit_array[self.kind])

    def save(self, path: Path) -> None:
        arrays = {name: value for name, value in self.__dict__.items() if isinstance(value, np.ndarray)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, kind=self.kind, num_classes=self.num_classes, **arrays)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path) as data:
            values = {name: data[name] for name in data.files}
        return cls(kind=str(values.pop("kind")), num_classes=int(values.pop("num_classes")), **values)

    def same_test_set(self, other: Predictions) -> bool:
        """Whether ``other`` is on the same test samples in the same order (required for pairing)."""
        if self.kind != other.kind or self.units != other.units:
            return False
        if self.kind == "classification":
            return bool(
                np.array_equal(self.target, other.target) and np.array_equal(self.groups, other.groups)
            )
        if self.kind == "winogavil":
            return bool(np.array_equal(self.candidates, other.candidates))
        return bool(np.array_equal(self.caption_image, other.caption_image))


def metric(predictions: Predictions, name: str, units: np.ndarray | None = None) -> float:
    """Metric ``name`` over ``units`` (indices into the task's units, repeats allowed; default: all)."""
    if predictions.kind == "retrieval":
        return _retrieval_metric(predictions, name, units)
    if predictions.kind == "winogavil":
        return _winogavil_metric(predictions, name, units)
    target, top, groups = predictions.target, predictions.top, predictions.groups
    if units is not None:
        target, top = target[units], top[units]
        groups = None if groups is None else groups[units]
    if groups is not None and is_grouped_metric(name):
        return grouped_metric(name, target, top, groups, tuple(str(f) for f in predictions.group_by))
    if name == "acc1":
        return float(np.mean(top[:, 0] == target))
    if name == "acc5":
        if predictions.num_classes < TOP_K:
            return float("nan")
        return float(np.mean((top[:, :TOP_K] == target[:, None]).any(axis=1)))
    if name == "mean_per_class_recall":  # sklearn's balanced_accuracy_score: classes present in target
        classes, inverse = np.unique(target, return_inverse=True)
        correct = np.bincount(inverse, weights=top[:, 0] == target, minlength=len(classes))
        return float(np.mean(correct / np.bincount(inverse, minlength=len(classes))))
    if name == "F1-macro_all":
        from sklearn.metrics import f1_score

        return float(f1_score(target, top[:, 0], average="macro"))
    raise ValueError(f"no per-sample definition of metric {name!r}")


def _retrieval_metric(predictions: Predictions, name: str, units: np.ndarray | None) -> float:
    text_hit, image_hit, caption_image = (
        predictions.text_hit,
        predictions.image_hit,
        predictions.caption_image,
    )
    if units is None:
        image_recall, text_recall = float(np.mean(image_hit)), float(np.mean(text_hit))
    else:  # each drawn image brings its captions, as often as it is drawn
        draws = np.bincount(units, minlength=len(text_hit))[caption_image]
        image_recall = float(np.sum(draws * image_hit) / np.sum(draws))
        text_recall = float(np.mean(text_hit[units]))
    values = {
        "image_retrieval_recall@1": image_recall,
        "text_retrieval_recall@1": text_recall,
        "mean_recall@1": (image_recall + text_recall) / 2,
    }
    if name not in values:
        raise ValueError(f"no per-sample definition of retrieval metric {name!r}")
    return values[name]


def _winogavil_metric(predictions: Predictions, name: str, units: np.ndarray | None) -> float:
    if name not in JACCARD_SCORES:
        raise ValueError(f"no per-instance definition of WinoGAViL metric {name!r}")
    jaccard, candidates = predictions.jaccard, predictions.candidates
    if units is not None:
        jaccard, candidates = jaccard[units], candidates[units]
    low, high = JACCARD_SCORES[name]
    chosen = (candidates >= low) & (candidates <= high)
    return float(np.mean(jaccard[chosen])) if chosen.any() else float("nan")


def replicates(predictions: Predictions, name: str, rounds: int, seed: int = 0) -> np.ndarray:
    """``rounds`` bootstrap replicates of metric ``name`` (units drawn with replacement, seeded)."""
    draws = np.random.default_rng(seed).integers(0, predictions.units, (rounds, predictions.units))
    return np.array([metric(predictions, name, units) for units in draws])


def paired_difference(
    first: Predictions, second: Predictions, name: str, rounds: int, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates of ``metric(first) - metric(second)``, both on the same resampled units."""
    if not first.same_test_set(second):
        raise ValueError("paired bootstrap needs both runs on the same test samples in the same order")
    draws = np.random.default_rng(seed).integers(0, first.units, (rounds, first.units))
    return np.array([metric(first, name, units) - metric(second, name, units) for units in draws])


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval holding ``confidence`` of the replicates."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)
