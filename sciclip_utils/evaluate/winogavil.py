"""WinoGAViL, scored as DataComp's ``eval_utils/wino_eval.py`` scores it, from the local Hub mirror.

Data: ``sciclip fetch evalsets`` mirrors the ``nlphuji/winogavil`` Hub dataset repo into the task's folder
as is. That repo (at DataComp's pinned revision ``51e1265`` and on ``main``) holds a loading script
``winogavil.py``, the instances ``winogavil_dataset.csv`` and the images ``winogavil_images.zip`` (4.7 GB).
The loading script reads the csv (columns ``ID``, ``cue``, ``candidates`` and ``associations`` as JSON
lists of image names, ``num_associations``, ``num_candidates``, ...) and takes candidate ``x``'s image from
``winogavil_images/x.jpg`` inside the extracted zip. We read the same two files in place (the zip is not
extracted; its members are found by that path, else by file name), so nothing is downloaded at evaluation.

Scoring, per instance: the prompt is ``A <cue>`` or ``An <cue>`` (cue lowercased, ``An`` before a vowel);
the candidates are ranked by the cosine similarity of their image embedding to the prompt's; the model
picks as many as there are true associations, and the instance scores the Jaccard index of the picked and
the true sets. The metrics (``bootstrap.JACCARD_SCORES``) average it over instances by number of candidates
(5, 6, 10 or 12); the main metric ``jaccard_score_10-12`` over those with 10 or 12.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sciclip_utils.evaluate.bootstrap import Predictions

INSTANCES = "winogavil_dataset.csv"
IMAGES = "winogavil_images.zip"
IMAGE_FOLDER = "winogavil_images"  # inside the zip
IMAGE_EXTENSION = ".jpg"
VOWELS = "aeiou"


@dataclass(frozen=True)
class Instance:
    """One WinoGAViL instance: a cue, its candidate images (by name) and the associated ones among them."""

    id: str
    cue: str
    candidates: tuple[str, ...]
    associations: tuple[str, ...]

    @property
    def truth(self) -> np.ndarray:
        """Per candidate, whether it is one of the associations."""
        return np.isin(self.candidates, self.associations)


def prompt(cue: str) -> str:
    """DataComp's text for a cue: ``A <cue>`` / ``An <cue>``, lowercased."""
    cue = cue.lower()
    return f"{'An' if cue[:1] in VOWELS else 'A'} {cue}"


def jaccard(truth: np.ndarray, picked: np.ndarray) -> float:
    """Jaccard index of two boolean masks over the same candidates (0 when both are empty)."""
    union = np.sum(truth | picked)
    return float(np.sum(truth & picked) / union) if union else 0.0


def pick(similarity: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` candidates most similar to the prompt."""
    picked = np.zeros(len(similarity), dtype=bool)
    picked[np.argsort(-similarity, kind="stable")[:count]] = True
    return picked


def read_instances(folder: Path) -> list[Instance]:
    """The instances of ``folder/winogavil_dataset.csv``, in file order; malformed rows are an error."""
    path = Path(folder) / INSTANCES
    instances, problems = [], []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"cue", "candidates", "associations"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column(s) {sorted(missing)}; columns: {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            label = f"line {line} (ID {row.get('ID', '?')})"
            try:
                candidates, associations = json.loads(row["candidates"]), json.loads(row["associations"])
            except json.JSONDecodeError as error:
                problems.append(f"{label}: candidates/associations are not JSON lists ({error})")
                continue
            if not row["cue"].strip():
                problems.append(f"{label}: empty cue")
            elif len(set(candidates)) != len(candidates) or not candidates:
                problems.append(f"{label}: candidates missing or repeated: {candidates}")
            elif not associations or not set(associations) <= set(candidates):
                problems.append(f"{label}: associations {associations} not among candidates {candidates}")
            else:
                instances.append(
                    Instance(str(row.get("ID", line)), row["cue"], tuple(candidates), tuple(associations))
                )
    if problems:
        raise ValueError(f"{path}: {len(problems)} malformed instance(s): " + "; ".join(problems[:5]))
    if not instances:
        raise ValueError(f"{path}: no instances")
    return instances


class ImageArchive:
    """The candidate images inside ``winogavil_images.zip``, read without extracting it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path)
        by_name: dict[str, list[str]] = {}
        for member in self._zip.namelist():
            parts = PurePosixPath(member)
            if member.endswith("/") or "__MACOSX" in parts.parts or parts.name.startswith("._"):
                continue
            by_name.setdefault(parts.name, []).append(member)
        self._members = by_name

    def member(self, name: str) -> str | None:
        """The zip member holding candidate ``name``'s image (``winogavil_images/<name>.jpg`` first)."""
        file_name = f"{name}{IMAGE_EXTENSION}"
        found = self._members.get(file_name, [])
        preferred = f"{IMAGE_FOLDER}/{file_name}"
        return preferred if preferred in found else (found[0] if len(found) == 1 else None)

    def missing(self, names: set[str]) -> list[str]:
        return sorted(name for name in names if self.member(name) is None)

    def image(self, name: str) -> Any:
        from PIL import Image

        member = self.member(name)
        if member is None:
            raise FileNotFoundError(f"{self.path}: no image {IMAGE_FOLDER}/{name}{IMAGE_EXTENSION}")
        return Image.open(io.BytesIO(self._zip.read(member))).convert("RGB")

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check(folder: Path) -> None:
    """Raise a clear error when the mirror's instances are malformed or name images the zip lacks."""
    instances = read_instances(folder)
    with ImageArchive(Path(folder) / IMAGES) as archive:
        missing = archive.missing({name for instance in instances for name in instance.candidates})
    if missing:
        raise FileNotFoundError(
            f"{Path(folder) / IMAGES}: {len(missing)} candidate image(s) missing, e.g. {', '.join(missing[:5])}"
        )


def predict(clip: Any, preprocess: Any, tokenizer: Any, folder: Path, batch_size: int = 64) -> Predictions:
    """Score every instance of ``folder``'s WinoGAViL mirror with ``clip``; per-instance Jaccard indices."""
    import torch
    import torch.nn.functional as F

    device = next(clip.parameters()).device
    instances = read_instances(folder)
    prompts = []
    with torch.no_grad():
        for start in range(0, len(instances), batch_size):
            tokens = tokenizer([prompt(instance.cue) for instance in instances[start : start + batch_size]])
            prompts.append(F.normalize(clip.encode_text(tokens.to(device)), dim=-1).cpu())
    prompt_features = torch.cat(prompts)
    scores = []
    with ImageArchive(Path(folder) / IMAGES) as archive, torch.no_grad():
        for instance, text in zip(instances, prompt_features, strict=True):
            images = torch.stack([preprocess(archive.image(name)) for name in instance.candidates])
            features = F.normalize(clip.encode_image(images.to(device)), dim=-1).cpu()
            similarity = (features @ text).numpy()
            truth = instance.truth
            scores.append(jaccard(truth, pick(similarity, int(truth.sum()))))
    return Predictions(
        "winogavil",
        jaccard=np.array(scores, dtype=np.float64),
        candidates=np.array([len(instance.candidates) for instance in instances], dtype=np.int32),
    )
