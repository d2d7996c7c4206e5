"""What a training run left behind: per-step curves from its ``out.log``, a summary, quick zero-shot checks."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sciclip_utils.train import CONFIG_FILE, final_checkpoint, register_model_configs

# open_clip_train's per-step line (train.py, train_one_epoch): the text log is written on every run, whatever
# the --report-to target.
_LOG_LINE = re.compile(
    r"Train Epoch: (?P<epoch>\d+) \[\s*(?P<samples>\d+)/(?P<epoch_samples>\d+) .*?"
    r"Data \(t\): (?P<data_time>[\d.]+) Batch \(t\): (?P<batch_time>[\d.]+), (?P<samples_per_s>[\d.e+-]+)/s.*?"
    r"LR: (?P<lr>[\d.e+-]+) .*? Loss: (?P<loss>[\d.e+-]+)"
)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def read_curves(run_dir: str | Path) -> Any:
    """Loss, learning rate and samples/s per logged step from the run's ``out.log`` (a DataFrame).

    ``step`` counts optimizer steps from 1; a resumed run logs its steps again from the checkpoint on, and
    each step keeps its latest line."""
    import pandas as pd

    run_dir = Path(run_dir)
    global_batch = json.loads((run_dir / CONFIG_FILE).read_text())["global_batch"]
    lines = (run_dir / "out.log").read_text().splitlines()
    rows = [match.groupdict() for match in map(_LOG_LINE.search, lines) if match]
    columns = ["epoch", "samples", "epoch_samples", "data_time", "batch_time", "samples_per_s", "lr", "loss"]
    frame = pd.DataFrame(rows, columns=columns).astype(float).astype({"epoch": int, "samples": int})
    frame["samples_seen"] = (frame["epoch"] * frame["epoch_samples"] + frame["samples"]).astype(int)
    frame["step"] = frame["samples_seen"] // global_batch
    return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def run_summary(run_dirs: Mapping[str, str | Path]) -> Any:
    """One row per condition: steps, samples seen, first and final loss, median samples/s, checkpoint."""
    import pandas as pd

    rows = []
    for condition, run_dir in run_dirs.items():
        config = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
        curves = read_curves(run_dir)
        rows.append({
            "condition": condition,
            "sources": " + ".join(config["sources"]),
            "steps": int(curves["step"].max()),
            "samples seen": int(curves["samples_seen"].max()),
            "first loss": round(float(curves["loss"].iloc[0]), 3),
            "final loss (last 10 steps)": round(float(curves["loss"].tail(10).mean()), 3),
            "median samples/s": round(float(curves["samples_per_s"].median()), 1),
            "checkpoint": str(final_checkpoint(run_dir, config["params"]["checkpoints"])),
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("condition")


def plot_curves(run_dirs: Mapping[str, str | Path]) -> Any:
    """Loss, learning rate and samples/s against samples seen, one line per condition (a Figure)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for condition, run_dir in run_dirs.items():
        curves = read_curves(run_dir)
        smooth = curves["loss"].rolling(max(1, len(curves) // 30), min_periods=1).mean()
        axes[0].plot(curves["samples_seen"], smooth, label=condition)
        axes[1].plot(curves["samples_seen"], curves["lr"], label=condition)
        axes[2].plot(curves["samples_seen"], curves["samples_per_s"], label=condition, alpha=0.7)
    for ax, title in zip(axes, ("contrastive loss (smoothed)", "learning rate", "samples/s"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("samples seen")
    axes[0].legend()
    fig.tight_layout()
    return fig


def zero_shot_accuracy(run_dir: str | Path, eval_set: str | Path, batch_size: int = 64) -> float:
    """Top-1 zero-shot accuracy of a run's final model on a clip_benchmark webdataset classification folder
    (``classnames.txt``, ``zeroshot_classification_templates.txt``, ``test/*.tar`` with image + ``.cls``).

    A quick check that training learned something; the study's evaluation runs clip_benchmark."""
    import open_clip
    import torch
    from PIL import Image

    run_dir, eval_set = Path(run_dir), Path(eval_set)
    params = json.loads((run_dir / CONFIG_FILE).read_text())["params"]
    register_model_configs()
    checkpoint = str(final_checkpoint(run_dir, params["checkpoints"]))
    model, _, preprocess = open_clip.create_model_and_transforms(params["model"], pretrained=checkpoint)
    tokenizer = open_clip.get_tokenizer(params["model"])
    classes = (eval_set / "classnames.txt").read_text().splitlines()
    templates = (eval_set / "zeroshot_classification_templates.txt").read_text().splitlines()
    images, labels = [], []
    for tar_path in sorted((eval_set / "test").glob("*.tar")):
        samples: dict[str, dict[str, bytes]] = {}
        with tarfile.open(tar_path) as tar:
            for member in filter(tarfile.TarInfo.isfile, tar.getmembers()):
                key, _, ext = member.name.rpartition(".")
                samples.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()  # type: ignore[union-attr]
        for parts in samples.values():
            image = next(parts[ext] for ext in IMAGE_EXTENSIONS if ext in parts)
            images.append(preprocess(Image.open(io.BytesIO(image)).convert("RGB")))
            labels.append(int(parts["cls"]))
    model.eval()
    with torch.no_grad():
        prompts = tokenizer([template.replace("{c}", name) for name in classes for template in templates])
        text = model.encode_text(prompts, normalize=True).reshape(len(classes), len(templates), -1).mean(1)
        text = text / text.norm(dim=-1, keepdim=True)
        predicted = torch.cat([
            (model.encode_image(torch.stack(images[start : start + batch_size]), normalize=True) @ text.T).argmax(-1)
            for start in range(0, len(images), batch_size)
        ])  # fmt: skip
    return float((predicted == torch.tensor(labels)).float().mean())


def zero_shot_table(run_dirs: Mapping[str, str | Path], evalsets: str | Path) -> Any:
    """Zero-shot top-1 of every condition on every classification eval set under ``evalsets`` (clip_benchmark
    webdataset folders with a ``task.json``), with the chance level."""
    import pandas as pd

    rows = []
    for folder in sorted(Path(evalsets).iterdir()):
        task_file = folder / "task.json"
        if (
            not task_file.is_file()
            or json.loads(task_file.read_text()).get("task") != "zeroshot_classification"
        ):
            continue
        task = json.loads(task_file.read_text())
        row = {
            "eval set": folder.name,
            "group": task.get("group", ""),
            "chance": round(1 / len(task["classes"]), 3),
        }
        for condition, run_dir in run_dirs.items():
            row[condition] = round(zero_shot_accuracy(run_dir, folder), 3)
        rows.append(row)
    return pd.DataFrame(rows).set_index("eval set")
