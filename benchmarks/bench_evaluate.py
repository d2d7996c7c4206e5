"""Evaluation speed: seconds per task of clip_benchmark (zero-shot classification or retrieval, the way
DataComp's evaluation calls it) on the sample corpus's eval sets, with an untrained ``sciclip-tiny`` model
(the time does not depend on the weights) at the ``tiny`` profile's batch size.

Written against clip_benchmark directly; ``sciclip_utils.evaluate`` (when present) is not needed here.

Run: ``.venv/bin/python benchmarks/bench_evaluate.py [--json OUT]``
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchlib import Report, arguments, sample_corpus

from sciclip_utils.profiles import stage_params

GROUP = "evaluation"
MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "sciclip_utils" / "model_configs"


def evaluate_task(model: object, preprocess: object, tokenizer: object, folder: Path, batch_size: int) -> int:
    """One task through clip_benchmark; the number of test images."""
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    task = json.loads((folder / "task.json").read_text())
    dataset = build_dataset(f"wds/{folder.name}", root=str(folder), transform=preprocess, split="test",
                            download=False, task=task["task"])  # fmt: skip
    loader = torch.utils.data.DataLoader(dataset.batched(batch_size), batch_size=None, num_workers=0)
    if task["task"] == "zeroshot_retrieval":
        zeroshot_retrieval.evaluate(model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5])
    else:
        zeroshot_classification.evaluate(
            model, loader, tokenizer, dataset.classes, dataset.templates, "cpu", amp=False
        )
    return task["samples"]


def main() -> None:
    args = arguments(__doc__)
    report = Report("bench_evaluate")
    import open_clip
    import torch

    open_clip.add_model_config(MODEL_CONFIGS)
    params = stage_params("tiny", "evaluate")
    model, _, preprocess = open_clip.create_model_and_transforms("sciclip-tiny")
    model.eval()
    tokenizer = open_clip.get_tokenizer("sciclip-tiny")
    tasks = sorted(
        p for p in (sample_corpus(args.corpus) / "evalsets").iterdir() if (p / "task.json").is_file()
    )
    total = 0.0
    with torch.no_grad():
        evaluate_task(model, preprocess, tokenizer, tasks[0], params["batch_size"])  # warm-up
        for folder in tasks:
            start = time.perf_counter()
            images = evaluate_task(model, preprocess, tokenizer, folder, params["batch_size"])
            seconds = time.perf_counter() - start
            total += seconds
            report.add(GROUP, f"{folder.name} ({images} images)", seconds, "s/task")
    report.add(GROUP, f"all {len(tasks)} tasks", total, "s")
    report.write(args.json)


if __name__ == "__main__":
    main()
