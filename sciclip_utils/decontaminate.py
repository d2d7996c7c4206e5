"""Decontamination: drop training samples whose image is a near-duplicate of an evaluation image.

DataComp's recipe (used by the paper): embed every image with the ISC21 copy-detection descriptor
(Yokoo's ``isc_ft_v107``), score each training sample by the maximum cosine similarity against all
evaluation images, and drop samples scoring above 0.604169. ``isc`` rebuilds that network with timm and
loads the published checkpoint from a local file. ``dct`` is an offline descriptor that needs no weights
(multi-scale DCT, colour, gradient and spectrum blocks, mirror-symmetrised) with its own threshold,
calibrated by :func:`calibrate` on web-style near-duplicates.

Entry point: :func:`decontaminate`; CLI ``sciclip decontaminate DATA_DIR --against EVAL_DIR... --out OUT``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import pickle
import shutil
import tarfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from sciclip_utils import commonpool
from sciclip_utils.images import to_rgb
from sciclip_utils.plots import figure_image

ISC_THRESHOLD = 0.604169  # DataComp: keep samples whose ISC score is <= this
ISC_ARCH = "tf_efficientnetv2_m.in21k_ft_in1k"  # timm's current name of ISC21's tf_efficientnetv2_m_in21ft1k
ISC_CHECKPOINT = "isc_ft_v107.pth.tar"
# ``calibrate("dct", seed=0)``: 359 images, 718 near-duplicates, 257,044 distinct pairs; midway between
# FPR <= 1% (0.723) and TPR >= 95% (0.790): TPR 0.974, FPR 0.005. Held out (seeds 1, 2; 143 images each):
# TPR 0.958 / 0.959, FPR 0.0065 / 0.0045. Against a set of 180 images, 29% of distinct copies score above it.
DCT_THRESHOLD = 0.757
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
SCORE_COLUMNS = (
    "uid",
    "key",
    "shard",
    "source",
    "dedup_score",
    "dedup_eval_set",
    "dedup_eval_image",
    "removed",
)


# ---- descriptors ------------------------------------------------------------------------------------


class Descriptor(ABC):
    """An image descriptor: ``embed`` returns L2-normalised float32 rows, compared by dot product."""

    name: str
    dim: int
    default_threshold: float

    @abstractmethod
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Descriptors of ``images``, shape ``(len(images), dim)``, float32, unit rows."""

    def embed_reference(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors of evaluation images, possibly several rows (views) per image: ``(rows, owner)``."""
        return self.embed(images), np.arange(len(images))

    @property
    def cache_id(self) -> str:
        """Names the embedding cache; changes whenever embeddings would."""
        return self.name


def decode_image(data: bytes, draft: int | None = None) -> Image.Image:
    """Decode image bytes to RGB; ``draft`` lets JPEG decode at a reduced size (>= ``draft`` pixels)."""
    img = Image.open(io.BytesIO(data))
    if draft:
        img.draft("RGB", (draft, draft))
    return to_rgb(img)


def _unit_rows(x: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), floor)


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix.astype(np.float32)


def trim_border(arr: np.ndarray, tol: float = 24.0, max_frac: float = 0.12, passes: int = 3) -> np.ndarray:
    """Remove uniform outer rows/columns (padding, borders, margins) from an ``HxWx3`` array, at most
    ``max_frac`` of the height/width from each side."""
    height, width, _ = arr.shape
    max_rows, max_cols = int(height * max_frac), int(width * max_frac)
    top = bottom = left = right = 0
    for _ in range(passes):
        view = arr[top : height - bottom, left : width - right]
        if min(view.shape[:2]) < 8:
            break
        frame = np.concatenate([view[0], view[-1], view[:, 0], view[:, -1]])
        far = np.abs(view - np.median(frame, axis=0)).max(axis=2) > tol
        rows, cols = np.flatnonzero(far.mean(axis=1) > 0.02), np.flatnonzero(far.mean(axis=0) > 0.02)
        if rows.size == 0 or cols.size == 0:
            break
        cut = (
            min(rows[0], max_rows - top),
            min(view.shape[0] - 1 - rows[-1], max_rows - bottom),
            min(cols[0], max_cols - left),
            min(view.shape[1] - 1 - cols[-1], max_cols - right),
        )
        if not any(cut):
            break
        top, bottom, left, right = top + cut[0], bottom + cut[1], left + cut[2], right + cut[3]
    return arr[top : height - bottom, left : width - right]


class DCTDescriptor(Descriptor):
    """Offline descriptor, no weights: blocks of a border-trimmed image in opponent colour space.

    ``mean`` colour, ``thumb`` 16x16 thumbnail, ``dct`` low 8x8 DCT coefficients of the 32x32 thumbnail,
    ``edge`` 16x16 gradient energy, ``hog`` 4x4 cells x 8 orientations, ``spec`` log-polar amplitude
    spectrum (shift invariant), ``hist`` colour histogram. Each block is mirror-symmetrised (the sum with the mirrored
    image's block, plus the magnitude of the difference), so a horizontal flip leaves the descriptor
    unchanged. Evaluation images are also embedded as 9 crops (85%) so crops of up to 20% still match.
    """

    name = "dct"
    default_threshold = DCT_THRESHOLD
    work_size = 64
    thumb_size = 16
    dct_size = 32
    dct_keep = 8
    hog_cells = 4
    hog_bins = 8
    spec_bins = 8
    colour_weight = 0.5
    # Spatial blocks whose energy falls below floor*sqrt(dim) (flat or aliased content) lose weight.
    floor = 0.1
    anti = 1.0
    weights = {"thumb": 1.5, "dct": 1.0, "hog": 1.0, "edge": 0.25, "spec": 1.0, "hist": 2.0, "mean": 1.0}
    reference_keep = 0.85
    version = 2

    def __init__(self) -> None:
        self._dct = _dct_matrix(self.dct_size)[: self.dct_keep]
        self._opponent = np.array([[1 / 3, 1 / 3, 1 / 3], [1, -1, 0], [0.5, 0.5, -1]], dtype=np.float32).T
        self._channel_weight = np.array([1.0, self.colour_weight, self.colour_weight], dtype=np.float32)
        self.dim = self._describe([Image.new("RGB", (8, 8))]).shape[1]

    @property
    def cache_id(self) -> str:
        return f"{self.name}-v{self.version}"

    def trimmed(self, img: Image.Image) -> Image.Image:
        """The image at <= 256 px with its uniform border removed."""
        img = to_rgb(img)
        if max(img.size) > 256:
            img = img.copy()
            img.thumbnail((256, 256), Image.Resampling.BILINEAR)
        arr = trim_border(np.asarray(img, dtype=np.float32))
        return Image.fromarray(arr.astype(np.uint8))

    def views(self, img: Image.Image) -> list[Image.Image]:
        """The trimmed image and its 3x3 grid of crops keeping ``reference_keep`` of each side."""
        base = self.trimmed(img)
        width, height = base.size
        crop_w, crop_h = (
            max(1, round(width * self.reference_keep)),
            max(1, round(height * self.reference_keep)),
        )
        crops = [base]
        for y in (0, (height - crop_h) // 2, height - crop_h):
            for x in (0, (width - crop_w) // 2, width - crop_w):
                crops.append(base.crop((x, y, x + crop_w, y + crop_h)))
        return crops

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._describe([self.trimmed(img) for img in images])

    def embed_reference(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        views = [self.views(img) for img in images]
        owner = np.repeat(np.arange(len(images)), [len(v) for v in views])
        return self._describe([view for group in views for view in group]), owner

    def _describe(self, trimmed: Sequence[Image.Image]) -> np.ndarray:
        sizes = (self.work_size, self.thumb_size, self.dct_size)
        stacks = {
            size: np.stack(
                [np.asarray(img.resize((size, size), Image.Resampling.BICUBIC)) for img in trimmed]
            )
            for size in sizes
        }
        opponent = {
            size: (stack.astype(np.float32) / 255.0) @ self._opponent for size, stack in stacks.items()
        }
        parts = []
        for name, (plain, mirrored) in self._blocks(opponent).items():
            weight = self.weights[name]
            if name == "mean":  # absolute colour, kept unnormalised
                parts.append(weight * plain)
                continue
            spatial = name in ("thumb", "dct", "edge")
            floor = self.floor * np.sqrt(plain.shape[1]) if spatial else 1e-3
            parts.append(weight * _unit_rows(plain + mirrored, floor))
            if name not in ("hist", "mean"):
                diff = np.abs(plain - mirrored)
                parts.append(weight * self.anti * _unit_rows(diff - diff.mean(axis=1, keepdims=True), floor))
        return _unit_rows(np.concatenate(parts, axis=1)).astype(np.float32)

    def _blocks(self, opponent: dict[int, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each block's features of the image and of its mirror image, both ``(N, d)``."""
        cw = self._channel_weight
        blocks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        thumb = opponent[self.thumb_size]
        n = thumb.shape[0]
        mean = thumb.mean(axis=(1, 2)) - np.array([0.5, 0.0, 0.0], dtype=np.float32)
        blocks["mean"] = (mean, mean)
        thumb = (thumb - thumb.mean(axis=(1, 2), keepdims=True)) * cw
        blocks["thumb"] = (thumb.reshape(n, -1), thumb[:, :, ::-1].reshape(n, -1))
        coeffs = (
            np.einsum("ui,nijc,vj->nuvc", self._dct, opponent[self.dct_size], self._dct, optimize=True) * cw
        )
        coeffs[:, 0, 0] = 0
        mirror_sign = ((-1.0) ** np.arange(self.dct_keep)).astype(np.float32)[None, None, :, None]
        blocks["dct"] = (coeffs.reshape(n, -1), (coeffs * mirror_sign).reshape(n, -1))
        work = opponent[self.work_size]
        size = work.shape[1]
        grad_y, grad_x = np.gradient(work, axis=(1, 2))
        magnitude = np.hypot(grad_x, grad_y) * cw
        strongest = magnitude.argmax(axis=3)[..., None]
        mag = np.take_along_axis(magnitude, strongest, 3)[..., 0]
        angle = (
            np.arctan2(
                np.take_along_axis(grad_y, strongest, 3)[..., 0],
                np.take_along_axis(grad_x, strongest, 3)[..., 0],
            )
            % np.pi
        )
        blocks["hog"] = self._hog(mag, angle)
        edge = np.sqrt(mag.reshape(n, 16, size // 16, 16, size // 16).mean(axis=(2, 4)))
        edge -= edge.mean(axis=(1, 2), keepdims=True)
        blocks["edge"] = (edge.reshape(n, -1), edge[:, :, ::-1].reshape(n, -1))
        blocks["spec"] = self._spectrum(work[..., 0])
        hist = self._histogram(work.reshape(n, -1, 3))
        blocks["hist"] = (hist, hist)
        return blocks

    def _hog(self, mag: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, size = mag.shape[0], mag.shape[1]
        cells, bins = self.hog_cells, self.hog_bins
        position = angle / np.pi * bins - 0.5
        lower = np.floor(position).astype(np.int64)
        frac = (position - lower).astype(np.float32)
        cell = np.arange(size) * cells // size
        base = (
            np.arange(n)[:, None, None] * cells * cells + (cell[:, None] * cells + cell[None, :])[None]
        ) * bins
        total = n * cells * cells * bins
        hog = np.bincount((base + lower % bins).ravel(), (mag * (1 - frac)).ravel(), total)
        hog += np.bincount((base + (lower + 1) % bins).ravel(), (mag * frac).ravel(), total)
        hog = np.sqrt(hog.reshape(n, cells, cells, bins))
        hog -= hog.mean(axis=(1, 2, 3), keepdims=True)
        # mirroring reverses the cell columns and maps orientation bin b to bins-1-b
        return hog.reshape(n, -1), hog[:, :, ::-1, ::-1].reshape(n, -1)

    def _spectrum(self, luminance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, size = luminance.shape[0], luminance.shape[1]
        window = np.hanning(size).astype(np.float32)
        centred = luminance - luminance.mean(axis=(1, 2), keepdims=True)
        amplitude = np.abs(np.fft.fft2(centred * window[None, :, None] * window[None, None, :]))
        fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
        radius = np.hypot(fx, fy) * size
        valid = (radius >= 1).ravel()
        radial = np.floor(np.log2(np.maximum(radius, 1)) * 2).astype(np.int64)
        orient = np.floor((np.arctan2(fy, fx) % np.pi) / np.pi * self.spec_bins + 0.5).astype(np.int64)
        index = (radial * self.spec_bins + orient % self.spec_bins).ravel()[valid]
        n_bins = (int(radial.max()) + 1) * self.spec_bins
        counts = np.maximum(np.bincount(index, minlength=n_bins), 1).astype(np.float32)
        flat = amplitude.reshape(n, -1)[:, valid]
        offsets = (np.arange(n)[:, None] * n_bins + index[None, :]).ravel()
        sums = np.bincount(offsets, flat.ravel(), n * n_bins).reshape(n, n_bins)
        spec = np.log1p(sums / counts).reshape(n, -1, self.spec_bins).astype(np.float32)
        spec -= spec.mean(axis=(1, 2), keepdims=True)
        mirrored = spec[
            :, :, (-np.arange(self.spec_bins)) % self.spec_bins
        ]  # orientation theta -> pi - theta
        return spec.reshape(n, -1), mirrored.reshape(n, -1)

    @staticmethod
    def _histogram(pixels: np.ndarray) -> np.ndarray:
        n, count = pixels.shape[0], pixels.shape[1]
        lum = np.clip((pixels[..., 0] * 6).astype(np.int64), 0, 5)
        red_green = np.clip(((pixels[..., 1] + 1) * 2.5).astype(np.int64), 0, 4)
        yellow_blue = np.clip(((pixels[..., 2] + 1) * 2.5).astype(np.int64), 0, 4)
        index = np.arange(n)[:, None] * 150 + lum * 25 + red_green * 5 + yellow_blue
        hist = np.sqrt(np.bincount(index.ravel(), minlength=n * 150).reshape(n, 150) / count).astype(
            np.float32
        )
        return hist - hist.mean(axis=1, keepdims=True)


class ISCDescriptor(Descriptor):
    """Yokoo's ISC21 descriptor (``isc_ft_v107``) rebuilt with timm; loads a local checkpoint, never downloads.

    Network: EfficientNetV2-M feature backbone, GeM pooling, bias-free Linear(512, 256), BatchNorm1d, L2
    normalisation; input resized to 512x512, mean/std 0.5 (as DataComp's dataset2metadata). ``gem_p``
    defaults to 1.0: dataset2metadata calls ``isc_feature_extractor.create_model("isc_ft_v107")`` whose
    default ``eval_p`` is 1.0 (the ISC21 training script used p=3 for training, 4 for its own evaluation).
    """

    name = "isc"
    dim = 256
    default_threshold = ISC_THRESHOLD

    def __init__(
        self,
        weights: str | Path | None,
        *,
        input_size: int = 512,
        gem_p: float = 1.0,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        if weights is None:
            raise FileNotFoundError(
                f"the isc descriptor needs the {ISC_CHECKPOINT} checkpoint: pass its path with --weights "
                "(github.com/lyakaap/ISC21-Descriptor-Track-1st releases); nothing is downloaded"
            )
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"ISC checkpoint not found: {self.weights}")

        self.input_size, self.batch_size, self.device = input_size, batch_size, device
        self.network = build_isc_network(gem_p=gem_p)
        self.network.load_state_dict(load_isc_state_dict(self.weights))
        self.network.to(device).eval()

    @property
    def cache_id(self) -> str:
        stat = self.weights.stat()
        return f"isc-{self.weights.stem}-{stat.st_size}-{self.input_size}"

    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        """Resize to ``input_size`` squared (bilinear), scale to [-1, 1]; a ``(N, 3, S, S)`` tensor."""
        import torch

        size = (self.input_size, self.input_size)
        batch = np.stack([np.asarray(to_rgb(img).resize(size, Image.Resampling.BILINEAR)) for img in images])
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return tensor.sub_(0.5).div_(0.5)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                tensor = self.preprocess(images[start : start + self.batch_size]).to(self.device)
                outputs.append(self.network(tensor).float().cpu().numpy())
        if not outputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit_rows(np.concatenate(outputs)).astype(np.float32)


def build_isc_network(gem_p: float = 1.0) -> Any:
    """The ISC21 network (random weights): timm backbone, GeM, Linear(512, 256, bias=False), BatchNorm1d."""
    import timm
    import torch
    import torch.nn.functional as functional

    class ISCNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = timm.create_model(ISC_ARCH, features_only=True, pretrained=False)
            self.fc = torch.nn.Linear(self.backbone.feature_info.channels()[-1], 256, bias=False)
            self.bn = torch.nn.BatchNorm1d(256)
            self.p = gem_p

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.backbone(x)[-1]
            pooled = functional.avg_pool2d(features.clamp(min=1e-6).pow(self.p), features.shape[-2:]).pow(
                1 / self.p
            )
            return functional.normalize(self.bn(self.fc(pooled.flatten(1))))

    return ISCNet()


def load_isc_state_dict(path: str | Path) -> dict[str, Any]:
    """The network weights of an ISC21 checkpoint (``{"state_dict": {"module.…": …}, "arch", "args"}``)."""
    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: not loadable as weights only (re-save its state_dict): {exc}") from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an ISC21 checkpoint (no state_dict)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def get_descriptor(name: str, weights: str | Path | None = None, **options: Any) -> Descriptor:
    """``dct`` (offline) or ``isc`` (needs ``weights``, the local ``isc_ft_v107.pth.tar``)."""
    if name == "dct":
        return DCTDescriptor()
    if name == "isc":
        return ISCDescriptor(weights, **options)
    raise ValueError(f"unknown descriptor {name!r}; known: dct, isc")


# ---- evaluation sets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: a clip_benchmark webdataset (``DIR/test/*.tar``) or an ImageFolder tree."""

    name: str
    path: Path
    layout: str  # "webdataset" | "imagefolder"

    def files(self) -> list[Path]:
        """The files this set is read from (their sizes key the embedding cache)."""
        if self.layout == "webdataset":
            return sorted((self.path / "test").glob("*.tar"))
        return sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())

    def images(self) -> Iterator[tuple[str, bytes]]:
        """``(image id, encoded bytes)`` for every image, in a stable order."""
        if self.layout == "imagefolder":
            for path in self.files():
                yield path.relative_to(self.path).as_posix(), path.read_bytes()
            return
        for shard in self.files():
            with tarfile.open(shard) as tar:
                for member in tar:
                    if member.isfile() and Path(member.name).suffix.lower() in IMAGE_EXTENSIONS:
                        handle = tar.extractfile(member)
                        if handle is not None:
                            yield f"{shard.name}/{member.name}", handle.read()


def find_eval_sets(paths: Sequence[str | Path]) -> list[EvalSet]:
    """Eval sets under ``paths``: each path is a set (named after its folder) or a folder of sets (named by
    their path below it, searched recursively)."""
    found: list[EvalSet] = []
    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            raise FileNotFoundError(f"eval set folder not found: {root}")
        before = len(found)
        if _layout(root):
            found.append(EvalSet(root.name, root, _layout(root)))
        else:
            for sub in _subdirs(root):
                _collect_eval_sets(sub, sub.name, found)
        if len(found) == before:
            raise ValueError(f"{root}: no eval set (expected test/*.tar or class folders of images)")
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise ValueError(f"eval set names are not unique: {sorted(names)}")
    return found


def _collect_eval_sets(folder: Path, name: str, found: list[EvalSet]) -> None:
    layout = _layout(folder)
    if layout:
        found.append(EvalSet(name, folder, layout))
        return
    for sub in _subdirs(folder):
        _collect_eval_sets(sub, f"{name}/{sub.name}", found)


def _layout(folder: Path) -> str:
    """``webdataset``, ``imagefolder`` or ``""`` (not an eval set)."""
    if any((folder / "test").glob("*.tar")):
        return "webdataset"
    if _has_images(folder) or any(_has_images(sub) for sub in _subdirs(folder)):
        return "imagefolder"
    return ""


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


# ---- search -----------------------------------------------------------------------------------------


def nearest(
    queries: np.ndarray, reference: np.ndarray, *, use_faiss: bool = False, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum inner product and its row in ``reference`` for every query row (exact; FAISS IndexFlatIP
    or batched matrix products)."""
    if len(reference) == 0:
        return np.full(len(queries), -np.inf, dtype=np.float32), np.full(len(queries), -1, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(reference.shape[1])
        index.add(np.ascontiguousarray(reference, dtype=np.float32))
        scores, rows = index.search(queries, 1)
        return scores[:, 0], rows[:, 0].astype(np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    rows = np.empty(len(queries), dtype=np.int64)
    reference_t = np.ascontiguousarray(reference.T, dtype=np.float32)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ reference_t
        best = sims.argmax(axis=1)
        rows[start : start + chunk] = best
        scores[start : start + chunk] = sims[np.arange(len(best)), best]
    return scores, rows


# ---- the stage --------------------------------------------------------------------------------------


@dataclass
class DecontaminationReport:
    """What :func:`decontaminate` did; ``scores`` has one row per input sample."""

    out_dir: Path
    descriptor: str
    threshold: float
    samples: int
    removed: int
    removed_per_source: dict[str, dict[str, int]]
    removed_per_eval_set: dict[str, int]
    eval_images: dict[str, int]
    search: str
    seconds: float
    scores: Any = field(repr=False, default=None)

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` content."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "scores"}


def decontaminate(
    data_dir: str | Path,
    against: Sequence[str | Path],
    out_dir: str | Path,
    *,
    descriptor: str = "dct",
    threshold: float | None = None,
    weights: str | Path | None = None,
    batch_size: int = 256,
    faiss_min_rows: int = 200_000,
    samples_per_shard: int | None = None,
    closest_pairs: int = 8,
    progress: bool = True,
) -> DecontaminationReport:
    """Score every sample of the CommonPool dataset ``data_dir`` against the eval sets ``against`` and write
    the kept samples to ``out_dir``.

    Writes ``shards/`` and ``sizes.json`` (kept samples, CommonPool format), ``scores.parquet`` (every
    sample: ``dedup_score``, ``dedup_eval_set``, ``dedup_eval_image``, ``removed``), ``kept_uids.npy``
    (DataComp subset), ``report.json`` and ``closest_pairs.png``. A sample is removed when its score
    exceeds ``threshold`` (default: the descriptor's). Embeddings are cached per eval set and per shard under
    ``out_dir/.cache`` so an interrupted run resumes. FAISS (IndexFlatIP) is used once the eval side has at
    least ``faiss_min_rows`` rows, batched matrix products below that.
    """
    import pandas as pd

    started = time.time()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not commonpool.shard_paths(data_dir):
        raise FileNotFoundError(f"no CommonPool shards (*.tar) in {data_dir}")
    eval_sets = find_eval_sets(against)
    model = get_descriptor(descriptor, weights)
    threshold = model.default_threshold if threshold is None else float(threshold)
    cache = out_dir / ".cache" / model.cache_id
    reference, ref_set, ref_image, eval_counts = _embed_eval_sets(
        model, eval_sets, cache, batch_size, progress
    )
    use_faiss = len(reference) >= faiss_min_rows

    metadata = commonpool.read_metadata(data_dir)
    frames = []
    for shard, uids, keys, vectors in _embed_shards(model, data_dir, metadata, cache, batch_size, progress):
        scores, rows = nearest(vectors, reference, use_faiss=use_faiss)
        matched = rows >= 0
        frames.append(pd.DataFrame({
            "uid": uids, "key": keys, "shard": shard,
            "dedup_score": scores.astype(np.float32),
            "dedup_eval_set": np.where(matched, ref_set[np.maximum(rows, 0)], None),
            "dedup_eval_image": np.where(matched, ref_image[np.maximum(rows, 0)], None),
        }))  # fmt: skip
    table = pd.concat(frames, ignore_index=True)
    sources = dict(zip(metadata["uid"], metadata["source"], strict=True)) if "source" in metadata else {}
    table.insert(3, "source", [sources.get(uid) or "unknown" for uid in table["uid"]])
    table["removed"] = table["dedup_score"] > threshold
    table = table[list(SCORE_COLUMNS)]

    out_dir.mkdir(parents=True, exist_ok=True)
    kept = table.loc[~table["removed"], "uid"].tolist()
    per_shard = metadata.groupby("shard").size().max() if len(metadata) else 10_000
    _write_filtered(data_dir, kept, out_dir, samples_per_shard or int(per_shard))
    _atomic_parquet(table, out_dir / "scores.parquet")
    commonpool.save_uid_subset(kept, out_dir / "kept_uids.npy")
    save_closest_pairs(table, data_dir, eval_sets, out_dir / "closest_pairs.png", threshold, closest_pairs)

    removed = table[table["removed"]]
    report = DecontaminationReport(
        out_dir=out_dir,
        descriptor=descriptor,
        threshold=threshold,
        samples=len(table),
        removed=len(removed),
        removed_per_source={
            source: {"samples": int(len(group)), "removed": int(group["removed"].sum())}
            for source, group in table.groupby("source")
        },
        removed_per_eval_set={str(k): int(v) for k, v in removed["dedup_eval_set"].value_counts().items()},
        eval_images=eval_counts,
        search="faiss" if use_faiss else "exact",
        seconds=round(time.time() - started, 2),
        scores=table,
    )
    report_text = json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    commonpool.atomic_write(out_dir / "report.json", report_text.encode())
    return report


def _embed_eval_sets(
    model: Descriptor, eval_sets: Sequence[EvalSet], cache: Path, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """All eval sets' reference rows with, per row, the set name and image id (cached per set)."""
    vectors, set_names, image_ids, counts = [], [], [], {}
    for eval_set in eval_sets:
        digest = hashlib.sha256(
            json.dumps([[str(p.resolve()), p.stat().st_size] for p in eval_set.files()]).encode()
        ).hexdigest()[:16]
        path = cache / "eval" / f"{eval_set.name.replace('/', '__')}-{digest}.npz"
        if not path.is_file():
            ids, rows, owners = [], [], []
            for chunk in _batches(
                _progress(eval_set.images(), progress, f"embed eval {eval_set.name}"), batch_size
            ):
                embedded, owner = model.embed_reference([decode_image(data) for _, data in chunk])
                rows.append(embedded)
                owners.append(owner + len(ids))
                ids.extend(image_id for image_id, _ in chunk)
            empty = np.zeros((0, model.dim), dtype=np.float32)
            _atomic_npz(path, vectors=np.concatenate(rows) if rows else empty,
                        owner=np.concatenate(owners) if owners else np.zeros(0, np.int64), ids=np.array(ids, dtype=str))  # fmt: skip
        with np.load(path) as stored:
            vectors.append(stored["vectors"])
            image_ids.append(stored["ids"][stored["owner"]])
            set_names.append(np.full(len(stored["vectors"]), eval_set.name, dtype=object))
            counts[eval_set.name] = int(len(stored["ids"]))
    return (
        np.concatenate(vectors).astype(np.float32),
        np.concatenate(set_names),
        np.concatenate(image_ids).astype(object),
        counts,
    )


def _embed_shards(
    model: Descriptor, data_dir: Path, metadata: Any, cache: Path, batch_size: int, progress: bool
) -> Iterator[tuple[str, list[str], list[str], np.ndarray]]:
    """``(shard, uids, keys, vectors)`` per shard, reading and embedding only shards without a cache file."""
    known = set(metadata["uid"]) if len(metadata) else set()
    cached = {
        path: cache / "train" / f"{path.stem}-{path.stat().st_size}.npz"
        for path in commonpool.shard_paths(data_dir)
    }
    todo = [path for path, npz in cached.items() if not npz.is_file()]
    samples = itertools.chain.from_iterable(
        ((path, sample) for sample in commonpool.iter_shard(path)) for path in todo
    )
    total = int(metadata["shard"].isin({path.stem for path in todo}).sum()) if len(metadata) else 0
    samples = _progress(samples, progress, "embed training images", total)
    for path, group in itertools.groupby(samples, key=lambda item: item[0]):
        uids, keys, vectors = [], [], []
        for batch in _batches((sample for _, sample in group), batch_size):
            for sample in batch:
                if sample.uid not in known:
                    raise ValueError(
                        f"{data_dir}: sample {sample.key} (uid {sample.uid}) is not in the parquet metadata"
                    )
            vectors.append(model.embed([decode_image(sample.jpg, draft=256) for sample in batch]))
            uids += [sample.uid for sample in batch]
            keys += [sample.key for sample in batch]
        _atomic_npz(cached[path], uids=np.array(uids, dtype=str), keys=np.array(keys, dtype=str),
                    vectors=np.concatenate(vectors))  # fmt: skip
    for path in todo:
        if not cached[path].is_file():  # a shard without samples
            _atomic_npz(cached[path], uids=np.array([], dtype=str), keys=np.array([], dtype=str),
                        vectors=np.zeros((0, model.dim), dtype=np.float32))  # fmt: skip
    for path, npz in cached.items():
        with np.load(npz) as stored:
            yield path.stem, stored["uids"].tolist(), stored["keys"].tolist(), stored["vectors"]


def _write_filtered(data_dir: Path, kept: list[str], out_dir: Path, samples_per_shard: int) -> None:
    """Write the kept samples to ``out_dir/shards`` + ``sizes.json``, replacing old outputs only when done."""
    staging = out_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    commonpool.apply_uid_subset(data_dir, commonpool.uids_to_array(kept), staging, samples_per_shard)
    shutil.rmtree(out_dir / "shards", ignore_errors=True)
    os.replace(staging / "shards", out_dir / "shards")
    os.replace(staging / "sizes.json", out_dir / "sizes.json")
    shutil.rmtree(staging)


def save_closest_pairs(
    scores: Any, data_dir: Path, eval_sets: Sequence[EvalSet], path: Path, threshold: float, count: int = 8
) -> None:
    """A grid of the ``count`` highest-scoring training images next to their closest eval images."""
    from matplotlib.figure import Figure

    top = scores.dropna(subset=["dedup_eval_image"]).nlargest(count, "dedup_score")
    wanted_train = set(top["uid"])
    train = (
        {s.uid: s.jpg for s in commonpool.iter_samples(data_dir) if s.uid in wanted_train} if count else {}
    )
    wanted_eval = set(zip(top["dedup_eval_set"], top["dedup_eval_image"], strict=True))
    evals: dict[tuple[str, str], bytes] = {}
    for eval_set in eval_sets:
        if any(name == eval_set.name for name, _ in wanted_eval):
            evals.update(
                {(eval_set.name, i): d for i, d in eval_set.images() if (eval_set.name, i) in wanted_eval}
            )
    rows = max(1, len(top))
    fig = Figure(figsize=(4.4, 2.2 * rows), dpi=100)
    axes = fig.subplots(rows, 2, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (_, row), (left, right) in zip(top.iterrows(), axes, strict=False):
        left.imshow(decode_image(train[row["uid"]]))
        verdict = "removed" if row["removed"] else "kept"
        left.set_title(f"{row['source']} {row['key']}\n{row['dedup_score']:.3f} ({verdict})", fontsize=7)
        right.imshow(decode_image(evals[(row["dedup_eval_set"], row["dedup_eval_image"])]))
        right.set_title(f"{row['dedup_eval_set']}\n{Path(row['dedup_eval_image']).name}", fontsize=7)
    if len(top) == 0:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center")
    fig.suptitle(f"closest train/eval pairs (threshold {threshold:.3f})", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    commonpool.atomic_write(path, buffer.getvalue())


# ---- calibration ------------------------------------------------------------------------------------

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


# ---- helpers ----------------------------------------------------------------------------------------


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress(items: Any, enabled: bool, desc: str, total: int | None = None) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="img", total=total)


def _atomic_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    commonpool.atomic_write(path, buffer.getvalue())


def _atomic_parquet(frame: Any, path: Path) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    commonpool.atomic_write(path, buffer.getvalue())


# ---- CLI --------------------------------------------------------------------------------------------


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip decontaminate DATA_DIR --against EVAL_DIR... --out OUT_DIR [...]``."""
    parser.add_argument("data_dir", help="CommonPool-format dataset (folder with shards/ or *.tar)")
    parser.add_argument("--against", nargs="+", required=True, metavar="EVAL_DIR",
                        help="eval sets: clip_benchmark webdataset folders (test/*.tar), ImageFolder trees, "
                             "or folders holding several of them")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder (filtered shards, scores, report)")
    parser.add_argument("--descriptor", choices=("dct", "isc"), default="dct",
                        help="dct: offline, no weights (default); isc: ISC21 isc_ft_v107, needs --weights")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"remove samples scoring above this (default: dct {DCT_THRESHOLD}, isc {ISC_THRESHOLD})")  # fmt: skip
    parser.add_argument("--weights", default=None, help=f"path of the local {ISC_CHECKPOINT} (isc only)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per embedding batch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def cli_run(args: argparse.Namespace) -> int:
    """Run :func:`decontaminate` and print the report."""
    report = decontaminate(
        args.data_dir,
        args.against,
        args.out,
        descriptor=args.descriptor,
        threshold=args.threshold,
        weights=args.weights,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"{report.removed} of {report.samples} samples removed ({report.descriptor}, threshold "
          f"{report.threshold:.4f}, {sum(report.eval_images.values())} eval images, {report.search} search)")  # fmt: skip
    for source, counts in report.removed_per_source.items():
        print(f"  {source}: {counts['removed']} of {counts['samples']} removed")
    for eval_set, removed in report.removed_per_eval_set.items():
        print(f"  matched {eval_set}: {removed}")
    print(f"outputs in {report.out_dir}")
    return 0
