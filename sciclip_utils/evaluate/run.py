"""Evaluate trained CLIP models on a task suite with clip_benchmark, in-process, on local data only.

``evaluate_run`` finds a run's checkpoint and model, checks that every task's data is on disk (before any
model is loaded), then evaluates each task not yet in ``eval_results.jsonl``: clip_benchmark builds the
dataset and the zero-shot classifier and computes the logits (retrieval: the embeddings, scored as its
``zeroshot_retrieval.evaluate`` does), the per-sample predictions are kept (``predictions/<task>.npz``)
and give the metrics and a bootstrap interval of the main metric. One JSON line per task, DataComp's format.
All 38 of DataComp's averaged tasks are scored: FMoW, Dollar Street and GeoDE with their worst-group
metrics (``grouped``), WinoGAViL with DataComp's Jaccard scoring (``winogavil``); FairFace and UTKFace,
which have no main metric, are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sciclip_utils.evaluate import grouped, winogavil
from sciclip_utils.evaluate.bootstrap import JACCARD_SCORES, Predictions, interval, metric, replicates
from sciclip_utils.profiles import add_profile_option, apply_profile, paths
from sciclip_utils.tasks import Task, load_tasks

MODEL_CONFIGS = Path(__file__).resolve().parent.parent / "model_configs"
RESULTS = "eval_results.jsonl"
SUPPORTED = {
    "zeroshot_classification": {"acc1", "mean_per_class_recall", "F1-macro_all"},
    "zeroshot_retrieval": {"mean_recall@1"},
}
FETCH_COMMAND = "sciclip fetch evalsets --dest {root}"


def find_checkpoint(run_dir: Path, model: str | None = None) -> tuple[Path, str]:
    """The latest checkpoint of ``run_dir`` and its model name.

    ``run_dir`` is an open_clip_train run (``checkpoints/epoch_N.pt``, ``epoch_latest.pt``; the model from a
    json with a ``model`` key or from ``params.txt``), or any folder holding a ``.pt`` (then ``model`` is
    required unless a config names it). An explicit ``model`` wins over the config.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    candidates = sorted(run_dir.rglob("*.pt"))
    if not candidates:
        raise FileNotFoundError(f"no checkpoint (*.pt) under {run_dir}")
    latest = [path for path in candidates if path.name == "epoch_latest.pt"]
    checkpoint = latest[0] if latest else max(candidates, key=_epoch_number)
    model = model or _model_from_config(run_dir)
    if model is None:
        raise ValueError(
            f"{run_dir}: no config names the model (json with 'model', params.txt); pass --model"
        )
    return checkpoint, model


def _epoch_number(path: Path) -> tuple[int, float]:
    match = re.fullmatch(r"epoch_(\d+)\.pt", path.name)
    return (int(match.group(1)) if match else -1, path.stat().st_mtime)


def _model_from_config(run_dir: Path) -> str | None:
    for path in sorted(run_dir.rglob("*.json")):
        try:
            config = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(config, dict) and isinstance(config.get("model"), str):
            return config["model"]
    for path in sorted(run_dir.rglob("params.txt")):
        match = re.search(r"^model: (\S+)$", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def required_files(task: Task) -> tuple[str, ...]:
    """What a task's folder must hold: the webdataset's shard count, or WinoGAViL's two mirrored files."""
    if task.task == "winogavil":
        return (winogavil.INSTANCES, winogavil.IMAGES)
    return ("test/nshards.txt",)


def check_task_data(tasks: dict[str, Task], data_root: Path) -> None:
    """Raise one FileNotFoundError naming every task whose data is missing under ``data_root`` (and a clear
    error for a malformed WinoGAViL mirror), before any model is loaded."""
    missing = [
        key
        for key, task in tasks.items()
        if not all((data_root / task.folder / name).is_file() for name in required_files(task))
    ]
    if missing:
        raise FileNotFoundError(
            f"evaluation data missing under {data_root} for {len(missing)} task(s): {', '.join(missing)}; "
            f"fetch it with `{FETCH_COMMAND.format(root=data_root)}` (the sample suite: `sciclip sample-corpus`)"
        )
    for task in tasks.values():
        if task.task == "winogavil":
            winogavil.check(data_root / task.folder)


def scorable(task: Task) -> bool:
    """Whether this evaluator computes ``task``'s main metric."""
    if task.task == "winogavil":
        return task.main_metric in JACCARD_SCORES
    if task.key in grouped.GROUPINGS:
        grouping = grouped.GROUPINGS[task.key]
        return task.main_metric in {grouping.worst_name(field) for field in grouping.by}
    return task.main_metric in SUPPORTED.get(task.task, ())


def unsupported_tasks(tasks: dict[str, Task]) -> dict[str, str]:
    """Tasks this evaluator does not score, with the reason (DataComp: FairFace and UTKFace)."""
    reasons = {}
    for key, task in tasks.items():
        if task.main_metric is None:
            reasons[key] = "no main metric (DataComp reports it without averaging it)"
        elif not scorable(task):
            reasons[key] = f"no evaluation of {task.task} / {task.main_metric}"
    return reasons


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """The lines of an ``eval_results.jsonl`` by task key (empty when the file does not exist)."""
    if not path.is_file():
        return {}
    return {row["key"]: row for row in map(json.loads, path.read_text().splitlines()) if row}


def predictions_path(out_dir: Path, task: Task) -> Path:
    return out_dir / "predictions" / f"{task.key.replace('/', '-')}.npz"


def evaluate_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    suite: str,
    data_root: str | Path,
    batch_size: int = 64,
    bootstrap: int = 1000,
    workers: int = 0,
    model: str | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``run_dir``'s checkpoint on ``suite``; results in ``out_dir/eval_results.jsonl``.

    Tasks already in the results file are kept, not evaluated again. Returns every result line by key.
    ``progress=False`` drops clip_benchmark's progress bars (its other messages still reach stderr).
    """
    tasks = load_tasks(suite)
    if only:
        unknown = sorted(set(only) - set(tasks))
        if unknown:
            raise ValueError(f"unknown {suite} tasks {unknown}; known: {', '.join(tasks)}")
        tasks = {key: task for key, task in tasks.items() if key in only}
    skipped = unsupported_tasks(tasks)
    for key, reason in skipped.items():
        print(f"skipping {key}: {reason}")
    tasks = {key: task for key, task in tasks.items() if key not in skipped}
    out_dir, data_root = Path(out_dir), Path(data_root)
    results_path = out_dir / RESULTS
    results = read_results(results_path)
    todo = {key: task for key, task in tasks.items() if key not in results}
    if not todo:
        return results
    checkpoint, model_name = find_checkpoint(Path(run_dir), model)
    check_task_data(todo, data_root)
    clip, preprocess, tokenizer = load_model(model_name, checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, task in todo.items():
        with contextlib.nullcontext() if progress else _without_progress_bars():
            predictions = predict(
                clip, preprocess, tokenizer, task, data_root / task.folder, batch_size, workers
            )
        predictions.save(predictions_path(out_dir, task))
        row = result_row(task, predictions, bootstrap)
        with results_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        results[key] = row
        print(f"{key}: {task.main_metric} = {row['metrics']['main_metric']:.4f}")
    return results


@contextlib.contextmanager
def _without_progress_bars() -> Iterator[None]:
    """Hold back stderr (where clip_benchmark's tqdm bars go) and pass on every line that is not a bar."""
    held = io.StringIO()
    with contextlib.redirect_stderr(held):
        yield
    lines = [line for line in held.getvalue().replace("\r", "\n").splitlines() if line.strip()]
    for line in lines:
        if not re.search(r"\d+(it|%)\|?|it/s\]", line):
            print(line, file=sys.stderr)


def load_model(model_name: str, checkpoint: Path) -> tuple[Any, Any, Any]:
    """open_clip model (eval mode, CPU or the GPU), its eval transform and tokenizer, package configs known."""
    import open_clip
    import torch

    open_clip.add_model_config(MODEL_CONFIGS)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    clip, _, preprocess = open_clip.create_model_and_transforms(  # strict: every weight from the checkpoint
        model_name, pretrained=str(checkpoint), device=device
    )
    clip.eval()
    return clip, preprocess, open_clip.get_tokenizer(model_name)


def _dataset(task: Task, folder: Path, preprocess: Any) -> Any:
    """clip_benchmark's webdataset of one task's test split (with its classes and templates)."""
    from clip_benchmark.datasets.builder import build_dataset

    return build_dataset(
        dataset_name=f"wds/{task.key}",
        root=str(folder),
        transform=preprocess,
        split="test",
        download=False,
        task="zeroshot_retrieval" if task.retrieval else "zeroshot_classification",  # worst-group tasks too
    )


def batch_loader(dataset: Any, batch_size: int, workers: int) -> Any:
    """A DataLoader over a webdataset's batches, in the dataset's order."""
    import torch

    return torch.utils.data.DataLoader(
        dataset.batched(batch_size), batch_size=None, shuffle=False, num_workers=workers
    )


def predict(
    clip: Any, preprocess: Any, tokenizer: Any, task: Task, folder: Path, batch_size: int, workers: int = 0
) -> Predictions:
    """Run ``clip`` over one task's test set and keep the per-sample predictions."""
    from clip_benchmark.metrics import zeroshot_classification as zsc

    if task.task == "winogavil":
        return winogavil.predict(clip, preprocess, tokenizer, folder, batch_size)
    device = next(clip.parameters()).device.type
    dataset = _dataset(task, folder, preprocess)
    if task.retrieval:
        return _predict_retrieval(clip, tokenizer, batch_loader(dataset, batch_size, workers), device)
    grouping = grouped.GROUPINGS.get(task.key)
    if grouping is not None:  # the same samples in the same order, with their metadata vectors as targets
        loader = batch_loader(grouped.samples(folder, grouping, preprocess), batch_size, workers)
    else:
        loader = batch_loader(dataset, batch_size, workers)
    classifier = zsc.zero_shot_classifier(
        clip, tokenizer, dataset.classes, dataset.templates, device, amp=False
    )
    logits, target = zsc.run_classification(clip, classifier, loader, device, amp=False)
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    target = target.numpy()
    labels, metadata = (target[:, 0], target[:, 1:]) if target.ndim == 2 else (target, None)
    return Predictions(
        "classification",
        target=labels.astype(np.int32),
        top=top.numpy().astype(np.int32),
        num_classes=len(dataset.classes),
        groups=None if grouping is None else grouping.groups(metadata),
        group_by=None if grouping is None else np.array(grouping.by),
    )


def _predict_retrieval(clip: Any, tokenizer: Any, loader: Any, device: str) -> Predictions:
    """clip_benchmark's zero-shot retrieval scoring, keeping each caption's and each image's rank-1 hit."""
    import torch
    import torch.nn.functional as F
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    images, texts, caption_image = [], [], []
    for batch_images, batch_texts in loader:
        start = sum(len(chunk) for chunk in images)
        tokens = tokenizer([text for captions in batch_texts for text in captions]).to(device)
        caption_image += [start + i for i, captions in enumerate(batch_texts) for _ in captions]
        with torch.no_grad():
            images.append(F.normalize(clip.encode_image(batch_images.to(device)), dim=-1).cpu())
            texts.append(F.normalize(clip.encode_text(tokens), dim=-1).cpu())
    scores = torch.cat(texts) @ torch.cat(images).t()
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), caption_image] = True
    size = len(images[0])
    image_hit = batchify(recall_at_k, scores, positive, size, device, k=1) > 0
    text_hit = batchify(recall_at_k, scores.T, positive.T, size, device, k=1) > 0
    return Predictions(
        "retrieval",
        caption_image=np.array(caption_image, dtype=np.int32),
        image_hit=image_hit.numpy(),
        text_hit=text_hit.numpy(),
    )


def result_row(task: Task, predictions: Predictions, bootstrap: int) -> dict[str, Any]:
    """One ``eval_results.jsonl`` line: DataComp's key/dataset/metrics plus the main metric's interval."""
    if predictions.kind == "retrieval":
        names = ["image_retrieval_recall@1", "text_retrieval_recall@1", "mean_recall@1"]
    elif predictions.kind == "winogavil":
        names = list(JACCARD_SCORES)
    else:
        names = ["acc1", "acc5", "mean_per_class_recall"] + (
            ["F1-macro_all"] if task.main_metric == "F1-macro_all" else []
        )
        if predictions.groups is not None:
            names += grouped.metric_names(grouped.GROUPINGS[task.key], predictions.groups)
    metrics: dict[str, Any] = {name: metric(predictions, name) for name in names}
    metrics["main_metric"] = metrics[task.main_metric]
    if bootstrap:
        metrics["main_metric_ci95"] = list(interval(replicates(predictions, task.main_metric, bootstrap)))
    return {
        "key": task.key,
        "dataset": task.name,
        "metrics": metrics,
        "samples": predictions.units,
        "bootstrap": bootstrap,
    }


# ---- CLI --------------------------------------------------------------------------------------------


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip evaluate RUN_DIR... --suite sample|datacomp [--data-root DIR] [--profile P]``."""
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="training run folder(s) or checkpoint folder(s)"
    )
    parser.add_argument(
        "--suite", choices=["sample", "datacomp"], default=None, help="task suite (tasklist.yml)"
    )
    parser.add_argument("--data-root", dest="data_root", default=None,
                        help="folder of the suite's webdataset eval sets (default: the profile's)")  # fmt: skip
    parser.add_argument("--eval-dir", dest="eval_dir", default=None,
                        help="results go to EVAL_DIR/<run name>/ (default: the profile's eval folder)")  # fmt: skip
    parser.add_argument("--model", default=None, help="open_clip model name when the run folder names none")
    parser.add_argument("--task", action="append", dest="only", help="evaluate only this task (repeatable)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    parser.add_argument(
        "--bootstrap", type=int, default=None, help="bootstrap rounds for the intervals (0: none)"
    )
    parser.add_argument("--workers", type=int, default=None, help="data loader workers")
    add_profile_option(parser)


def default_data_root(profile: str, suite: str) -> Path:
    """The sample suite's eval sets live in the sample corpus; DataComp's under ``<run root>/datacomp_evalsets``."""
    run = paths(profile)
    return run.suite_evalsets(suite)


def cli_run(args: argparse.Namespace) -> int:
    """Evaluate each run folder; print where its results went."""
    apply_profile(args, "evaluate")
    data_root = Path(args.data_root) if args.data_root else default_data_root(args.profile, args.suite)
    eval_dir = Path(args.eval_dir) if args.eval_dir else paths(args.profile).eval
    for run_dir in map(Path, args.run_dirs):  # all checks first: nothing is evaluated if one run is broken
        find_checkpoint(run_dir, args.model)
    for run_dir in map(Path, args.run_dirs):
        out = eval_dir / run_dir.resolve().name
        evaluate_run(run_dir, out, suite=args.suite, data_root=data_root, batch_size=args.batch_size,
                     bootstrap=args.bootstrap, workers=args.workers, model=args.model, only=args.only)  # fmt: skip
        print(f"{run_dir}: {out / RESULTS}")
    return 0
