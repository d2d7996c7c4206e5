"""Eval sets (clip_benchmark webdataset layout), the web-style pool, and planted near-duplicates.

Eval images come from the same generators as the training data, with draws from their own random stream,
so they never occur in a training pool, except the planted near-duplicates (``PlantedDuplicate``): an eval
image resized/cropped/flipped/colour-shifted/re-encoded and placed into an arXiv figure, a PMC figure or
the web pool, which decontamination must catch.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageOps

from sciclip_utils.sample_corpus.captions import plain_caption
from sciclip_utils.sample_corpus.figures import (
    PLOT_CLASSES,
    TISSUE_CLASSES,
    FigureSpec,
    figure_image,
    sample_figure,
)
from sciclip_utils.sample_corpus.io import image_bytes, rng_for, tar_bytes
from sciclip_utils.sample_corpus.natural import (
    COLOURS,
    SHAPES,
    NaturalSpec,
    alt_text,
    natural_image,
    sample_natural,
)
from sciclip_utils.tasks import load_tasks


@dataclass(frozen=True)
class EvalTask:
    """One eval set: zero-shot classification (classes + templates) or image-text retrieval."""

    name: str
    task: str  # "zeroshot_classification" | "zeroshot_retrieval"
    group: str  # "natural" | "scientific"
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    ext: str


EVAL_TASKS: dict[str, EvalTask] = {
    key: EvalTask(key, task.task, task.group, task.classnames, task.templates, str(task.format))
    for key, task in load_tasks("sample").items()
}  # the sample suite of tasklist.yml
_GENERATOR_CLASSES = {
    "shapes": SHAPES, "colors": tuple(COLOURS), "digits": tuple(str(d) for d in range(10)),
    "plot_types": tuple(PLOT_CLASSES.values()), "tissue_textures": tuple(TISSUE_CLASSES.values()),
    "figure_retrieval": (),
}  # fmt: skip
for _name, _classes in _GENERATOR_CLASSES.items():
    if EVAL_TASKS[_name].classes != _classes:
        raise ValueError(f"tasklist.yml: {_name} classnames must be {list(_classes)} (the generator's order)")
_TASK_IDS = {name: number for number, name in enumerate(EVAL_TASKS)}
_DOMAINS = ("physics", "astro", "ml", "bio")
NOISE_SHARE = 0.2  # web alt texts that are junk or unrelated, as in crawled data


@dataclass(frozen=True)
class PlantedDuplicate:
    """An eval image copied (transformed) into a training source; ``figure_id`` as the extractor names it."""

    eval_task: str
    eval_index: int
    eval_key: str
    target: str  # "arxiv" | "pmc" | "commonpool"
    paper_id: str
    figure_id: str
    transform: str


def eval_key(index: int) -> str:
    return f"s{index:06d}"


def eval_spec(seed: int, task: str, index: int) -> tuple[FigureSpec | NaturalSpec | None, int | None]:
    """The drawn content and class index (None for retrieval) of eval sample ``index``."""
    definition = EVAL_TASKS[task]
    rng = rng_for(seed, "eval", _TASK_IDS[task], index)
    label = index % len(definition.classes) if definition.classes else None
    if task == "digits":  # printed digits as the web pool draws them (house numbers, signs), own stream
        spec = sample_natural(rng, "digit")
        spec.params["digit"] = label
        return spec, label
    if task in ("shapes", "colors"):
        spec = sample_natural(rng, "shape")
        if task == "shapes":
            spec.params["shape"] = SHAPES[label]
        else:
            if spec.params["other"] == definition.classes[label]:
                spec.params["other"] = spec.params["colour"]
            spec.params["colour"] = definition.classes[label]
        return spec, label
    if task == "plot_types":
        return sample_figure(rng, list(PLOT_CLASSES)[label], _DOMAINS[int(rng.integers(4))]), label
    if task == "tissue_textures":
        return sample_figure(rng, list(TISSUE_CLASSES)[label], "bio"), label
    kinds = list(PLOT_CLASSES) + list(TISSUE_CLASSES)
    return sample_figure(rng, kinds[index % len(kinds)], _DOMAINS[int(rng.integers(4))]), None


def eval_sample(seed: int, task: str, index: int) -> tuple[Image.Image, int | None, list[str]]:
    """Image, class index (None for retrieval) and captions (retrieval only) of eval sample ``index``."""
    spec, label = eval_spec(seed, task, index)
    if isinstance(spec, NaturalSpec):
        return natural_image(spec), label, []
    captions = []
    if label is None:
        captions = [plain_caption(spec, rng_for(seed, "eval", _TASK_IDS[task], index, 1)),
                    f"A {spec.label} from a scientific figure."]  # fmt: skip
    return figure_image(spec), label, captions


def eval_sample_bytes(seed: int, task: str, index: int) -> tuple[str, bytes, int | None, list[str]]:
    """``(key, encoded image, label, captions)`` of one eval sample (picklable worker job)."""
    image, label, captions = eval_sample(seed, task, index)
    return eval_key(index), image_bytes(image, EVAL_TASKS[task].ext, quality=92), label, captions


def write_eval_task(
    out_dir: Path, task: str, samples: list[tuple[str, bytes, int | None, list[str]]]
) -> dict:
    """Write one task folder: classnames/templates (or dataset_type), ``test/nshards.txt``, ``test/0.tar``."""
    definition = EVAL_TASKS[task]
    folder = out_dir / task
    (folder / "test").mkdir(parents=True, exist_ok=True)
    members: dict[str, bytes] = {}
    for key, data, label, captions in samples:
        members[f"{key}.{definition.ext}"] = data
        if definition.task == "zeroshot_retrieval":
            members[f"{key}.txt"] = "\n".join(captions).encode()
        else:
            members[f"{key}.cls"] = str(label).encode()
    (folder / "test" / "0.tar").write_bytes(tar_bytes(members, directories=False))
    (folder / "test" / "nshards.txt").write_text("1\n")
    if definition.task == "zeroshot_retrieval":
        (folder / "dataset_type.txt").write_text("retrieval\n")
    else:
        (folder / "classnames.txt").write_text("\n".join(definition.classes) + "\n")
        (folder / "zeroshot_classification_templates.txt").write_text("\n".join(definition.templates) + "\n")
    info = {key: value for key, value in asdict(definition).items() if key not in ("templates",)}
    info.update(samples=len(samples), format=definition.ext)
    (folder / "task.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


# ---- near-duplicates --------------------------------------------------------------------------------


def transform_image(image: Image.Image, transform: str) -> tuple[Image.Image, str]:
    """Apply ``transform`` (``+``-joined steps: ``resize125``, ``crop10``, ``flip``, ``colour``, ``jpeg80``,
    ``png``) and return the image and the output format."""
    fmt = "png"
    quality = 90
    for step in transform.split("+"):
        if step.startswith("resize"):
            factor = int(step[6:]) / 100
            image = image.resize(
                (round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC
            )
        elif step.startswith("crop"):
            margin = int(step[4:]) / 200
            w, h = image.size
            image = image.crop(
                (round(w * margin), round(h * margin), round(w * (1 - margin)), round(h * (1 - margin)))
            )
        elif step == "flip":
            image = ImageOps.mirror(image)
        elif step == "colour":
            image = ImageEnhance.Color(ImageEnhance.Brightness(image).enhance(1.08)).enhance(0.9)
        elif step.startswith("jpeg"):
            fmt, quality = "jpg", int(step[4:])
        elif step != "png":
            raise ValueError(f"unknown transform step {step!r}")
    return image, f"{fmt}:{quality}"


def planted_image_bytes(seed: int, eval_task: str, eval_index: int, transform: str) -> tuple[bytes, str]:
    """The transformed eval image, encoded; returns ``(bytes, extension)``."""
    image, _, _ = eval_sample(seed, eval_task, eval_index)
    image, encoding = transform_image(image, transform)
    fmt, quality = encoding.split(":")
    return image_bytes(image, fmt, quality=int(quality)), fmt


# ---- web pool ---------------------------------------------------------------------------------------


def web_sample(seed: int, index: int, plant: dict[str, Any] | None = None) -> tuple[bytes, str, str, bool]:
    """``(jpeg bytes, alt text, kind, noisy)`` of web pool image ``index``; ``plant`` puts a near-duplicate there."""
    rng = rng_for(seed, "web", index)
    if plant:
        data, _ = planted_image_bytes(seed, plant["eval_task"], plant["eval_index"], plant["transform"])
        spec, _ = eval_spec(seed, plant["eval_task"], plant["eval_index"])
        assert isinstance(spec, NaturalSpec)
        return data, f"{spec.params['colour']} {spec.params['shape']}", "near-duplicate", False
    spec = sample_natural(rng)
    noisy = bool(rng.random() < NOISE_SHARE)
    text = alt_text(spec, rng, noise=1.0 if noisy else 0.0)
    buffer = io.BytesIO()
    natural_image(spec).save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
    return buffer.getvalue(), text, spec.kind, noisy
