"""Image descriptors for near-duplicate search. ``isc`` rebuilds DataComp's ISC21 copy-detection network
(Yokoo's ``isc_ft_v107``) with timm and loads the published checkpoint from a local file; ``dct`` is an
offline descriptor that needs no weights (multi-scale DCT, colour, gradient and spectrum blocks,
mirror-symmetrised) with its own threshold, calibrated by :func:`~sciclip_utils.decontam.calibration.calibrate`
on web-style near-duplicates."""

from __future__ import annotations

import argparse
import io
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sciclip_utils.images import to_rgb

ISC_THRESHOLD = 0.604169  # DataComp: keep samples whose ISC score is <= this
ISC_ARCH = "tf_efficientnetv2_m.in21k_ft_in1k"  # timm's current name of ISC21's tf_efficientnetv2_m_in21ft1k
ISC_CHECKPOINT = "isc_ft_v107.pth.tar"
# ``calibrate("dct", seed=0)``: 359 images, 718 near-duplicates, 257,044 distinct pairs; midway between
# FPR <= 1% (0.723) and TPR >= 95% (0.790): TPR 0.974, FPR 0.005. Held out (seeds 1, 2; 143 images each):
# TPR 0.958 / 0.959, FPR 0.0065 / 0.0045. Against a set of 180 images, 29% of distinct copies score above it.
DCT_THRESHOLD = 0.757


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

    def embed_jpegs(self, jpegs: Sequence[bytes], batch_size: int) -> np.ndarray:
        """Descriptors of encoded training images (JPEG decoded at reduced size), ``batch_size`` at a time."""
        rows = [
            self.embed([decode_image(data, draft=256) for data in jpegs[start : start + batch_size]])
            for start in range(0, len(jpegs), batch_size)
        ]
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

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
        device: str | None = "cpu",
        loader_workers: int | None = None,
    ) -> None:
        if weights is None:
            raise FileNotFoundError(
                f"the isc descriptor needs the {ISC_CHECKPOINT} checkpoint: pass its path with --weights "
                "(github.com/lyakaap/ISC21-Descriptor-Track-1st releases); nothing is downloaded"
            )
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"ISC checkpoint not found: {self.weights}")

        self.device = resolve_device(device)
        self.input_size, self.batch_size = input_size, batch_size
        self.amp = self.device.startswith("cuda")  # float16 autocast on the GPU
        cores = os.cpu_count() or 1
        self.loader_workers = min(8, cores) if loader_workers is None and self.amp else loader_workers or 0
        self.network = build_isc_network(gem_p=gem_p)
        self.network.load_state_dict(load_isc_state_dict(self.weights))
        self.network.to(self.device).eval()

    @property
    def cache_id(self) -> str:
        stat = self.weights.stat()
        return f"isc-{self.weights.stem}-{stat.st_size}-{self.input_size}" + ("-amp" if self.amp else "")

    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        """Resize to ``input_size`` squared (bilinear), scale to [-1, 1]; a ``(N, 3, S, S)`` tensor."""
        import torch

        size = (self.input_size, self.input_size)
        batch = np.stack([np.asarray(to_rgb(img).resize(size, Image.Resampling.BILINEAR)) for img in images])
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        return tensor.sub_(0.5).div_(0.5).contiguous()  # the layout DataLoader batches have

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        starts = range(0, len(images), self.batch_size)
        return self._run(self.preprocess(images[start : start + self.batch_size]) for start in starts)

    def embed_jpegs(self, jpegs: Sequence[bytes], batch_size: int) -> np.ndarray:
        """Decoding and resizing run in ``loader_workers`` DataLoader processes (GPU: up to 8) that feed
        the network ``batch_size`` images at a time on the GPU, ``self.batch_size`` on the CPU."""
        import torch

        size = batch_size if self.amp else self.batch_size
        loader = torch.utils.data.DataLoader(
            _EncodedImages(jpegs, self.input_size),
            batch_size=size,
            num_workers=self.loader_workers if len(jpegs) > size else 0,
            pin_memory=self.amp,
        )
        return self._run(iter(loader))

    def _run(self, batches: Any) -> np.ndarray:
        """Unit-row descriptors of preprocessed ``(N, 3, S, S)`` batches (float16 autocast on the GPU)."""
        import torch

        outputs = []
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            for tensor in batches:
                outputs.append(self.network(tensor.to(self.device, non_blocking=True)).float().cpu().numpy())
        if not outputs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit_rows(np.concatenate(outputs)).astype(np.float32)


class _EncodedImages:
    """A map-style dataset of encoded images, decoded and preprocessed like :meth:`ISCDescriptor.preprocess`."""

    def __init__(self, jpegs: Sequence[bytes], input_size: int) -> None:
        self.jpegs, self.size = jpegs, (input_size, input_size)

    def __len__(self) -> int:
        return len(self.jpegs)

    def __getitem__(self, index: int) -> Any:
        import torch

        img = decode_image(self.jpegs[index], draft=self.size[0]).resize(self.size, Image.Resampling.BILINEAR)
        return (
            torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255.0).sub_(0.5).div_(0.5)
        )


def resolve_device(device: str | None) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; ``None`` or ``auto`` picks ``cuda`` when a GPU is visible. ``cuda``
    without one is an error."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and device.split(":")[0] != "cuda":
        raise ValueError(f"unknown device {device!r}; known: cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda asked for, but torch sees no GPU (use --device cpu)")
    return device


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
