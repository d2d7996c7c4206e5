"""Evaluation: tasklist, clip_benchmark metrics against hand computation, results file, tables, bootstrap."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sciclip_utils.cli import main
from sciclip_utils.evaluate.bootstrap import Predictions, interval, metric, paired_difference, replicates
from sciclip_utils.evaluate.run import find_checkpoint
from sciclip_utils.tasks import load_tasks

MODEL_CONFIGS = Path(__file__).resolve().parent.parent / "sciclip_utils" / "model_configs"
CLASSES = ["circle", "square", "triangle"]
TEMPLATES = ["a photo of a {c}.", "a {c} shape."]
CAPTIONS = [["a red circle", "a round thing"], ["a blue square", "a box", "four corners"], ["a green star"],
            ["a yellow triangle", "three sides"], ["a purple hexagon"]]  # fmt: skip


def test_tasklist_has_datacomps_40_entries_and_the_sample_suite() -> None:
    tasks = load_tasks("datacomp")
    assert len(tasks) == 40
    main_metrics = {key: task.main_metric for key, task in tasks.items() if task.main_metric}
    assert len(main_metrics) == 38 and set(tasks) - set(main_metrics) == {
        "fairness/fairface",
        "fairness/utkface",
    }
    groups = [task.group for task in tasks.values() if task.main_metric]
    assert {g: groups.count(g) for g in set(groups)} == {
        "ImageNet": 1, "ImageNet distribution shifts": 6, "VTAB": 13, "Retrieval": 3, "Other": 15,
    }  # fmt: skip
    assert (
        main_metrics["vtab/caltech101"] == "mean_per_class_recall"
        and main_metrics["wilds/fmow"] == "acc_worst_region"
    )
    assert tasks["vtab/pcam"].random_score == 0.5 and tasks["mnist"].random_score == pytest.approx(0.10035)
    from sciclip_utils.sample_corpus.eval import EVAL_TASKS

    sample = load_tasks("sample")
    assert list(sample) == list(EVAL_TASKS) and {t.group for t in sample.values()} == {
        "natural",
        "scientific",
    }
    assert all(EVAL_TASKS[key].templates == task.templates for key, task in sample.items())
    with pytest.raises(ValueError, match="known suites"):
        load_tasks("imagenet")


def _tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _image(rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    image = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return image, buffer.getvalue()


def _datasets(root: Path) -> tuple[list[Image.Image], list[int], list[Image.Image]]:
    """A classification set (``shapes``: 3 classes, ``.cls``) and a retrieval set (``figure_retrieval``:
    several captions per image) in clip_benchmark's webdataset layout, both split over two shards."""
    rng = np.random.default_rng(7)
    images, labels, members = [], [], [{}, {}]
    for index in range(24):
        image, data = _image(rng)
        label = int(rng.integers(len(CLASSES)))
        images.append(image)
        labels.append(label)
        members[index // 12].update({f"s{index:04d}.png": data, f"s{index:04d}.cls": str(label).encode()})
    folder = root / "shapes"
    for shard, content in enumerate(members):
        _tar(folder / "test" / f"{shard}.tar", content)
    (folder / "test" / "nshards.txt").write_text("2\n")
    (folder / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    pictures, members = [], [{}, {}]
    for index, captions in enumerate(CAPTIONS):
        image, data = _image(rng)
        pictures.append(image)
        members[index % 2].update(
            {f"r{index:04d}.png": data, f"r{index:04d}.txt": "\n".join(captions).encode()}
        )
    folder = root / "figure_retrieval"
    for shard, content in enumerate(members):
        _tar(folder / "test" / f"{shard}.tar", content)
    (folder / "test" / "nshards.txt").write_text("2\n")
    (folder / "dataset_type.txt").write_text("retrieval\n")
    return images, labels, [pictures[i] for i in (0, 2, 4, 1, 3)]  # shard 0 first, then shard 1


def _checkpoint(run: Path) -> object:
    """A fixed (seeded, untrained) sciclip-tiny saved as open_clip_train saves it, with its params.txt."""
    import open_clip
    import torch

    open_clip.add_model_config(MODEL_CONFIGS)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("sciclip-tiny")
    (run / "checkpoints").mkdir(parents=True)
    torch.save(
        {"epoch": 1, "name": "fixed", "state_dict": model.state_dict()}, run / "checkpoints" / "epoch_1.pt"
    )
    (run / "params.txt").write_text("batch_size: 64\nmodel: sciclip-tiny\nseed: 0\n")
    return model.eval(), preprocess, open_clip.get_tokenizer("sciclip-tiny")


@pytest.mark.slow
def test_evaluate_matches_metrics_computed_by_hand(tmp_path: Path) -> None:
    import torch

    images, labels, pictures = _datasets(tmp_path / "data")
    model, preprocess, tokenizer = _checkpoint(tmp_path / "run")
    argv = ["evaluate", str(tmp_path / "run"), "--suite", "sample", "--data-root", str(tmp_path / "data"),
            "--eval-dir", str(tmp_path / "eval"), "--task", "shapes", "--task", "figure_retrieval",
            "--bootstrap", "200", "--batch-size", "5"]  # fmt: skip
    assert main(argv) == 0
    results_file = tmp_path / "eval" / "run" / "eval_results.jsonl"
    rows = {row["key"]: row for row in map(json.loads, results_file.read_text().splitlines())}
    assert set(rows) == {"shapes", "figure_retrieval"}

    def embed_images(batch: list[Image.Image]) -> np.ndarray:
        with torch.no_grad():
            features = model.encode_image(torch.stack([preprocess(image) for image in batch])).numpy()
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    def embed_texts(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            features = model.encode_text(tokenizer(texts)).numpy()
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    prototypes = []
    for name in CLASSES:
        mean = embed_texts([template.format(c=name) for template in TEMPLATES]).mean(axis=0)
        prototypes.append(mean / np.linalg.norm(mean))
    predicted = (embed_images(images) @ np.array(prototypes).T).argmax(axis=1)
    labels = np.array(labels)
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    shapes = rows["shapes"]["metrics"]
    assert rows["shapes"]["dataset"] == "Shapes"
    assert shapes["acc1"] == pytest.approx(np.mean(predicted == labels))
    assert shapes["mean_per_class_recall"] == pytest.approx(np.mean(recalls))
    assert shapes["main_metric"] == shapes["acc1"]
    low, high = shapes["main_metric_ci95"]
    assert low <= shapes["acc1"] <= high

    captions = [c for i in (0, 2, 4, 1, 3) for c in CAPTIONS[i]]
    owner = np.array([j for j, i in enumerate((0, 2, 4, 1, 3)) for _ in CAPTIONS[i]])
    scores = embed_texts(captions) @ embed_images(pictures).T  # captions x images
    image_r1 = np.mean(scores.argmax(axis=1) == owner)
    text_r1 = np.mean([owner[scores[:, j].argmax()] == j for j in range(len(pictures))])
    retrieval = rows["figure_retrieval"]["metrics"]
    assert retrieval["image_retrieval_recall@1"] == pytest.approx(image_r1)
    assert retrieval["text_retrieval_recall@1"] == pytest.approx(text_r1)
    assert retrieval["main_metric"] == pytest.approx((image_r1 + text_r1) / 2)

    before = results_file.read_text()  # evaluated tasks are not evaluated again
    assert main(argv) == 0
    assert results_file.read_text() == before


def test_missing_task_data_is_named_before_any_model_is_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    (run / "epoch_latest.pt").write_bytes(b"not a checkpoint: loading it would fail differently")
    (tmp_path / "data" / "colors" / "test").mkdir(parents=True)
    (tmp_path / "data" / "colors" / "test" / "nshards.txt").write_text("1\n")
    argv = ["evaluate", str(tmp_path / "run"), "--suite", "sample", "--data-root", str(tmp_path / "data"),
            "--eval-dir", str(tmp_path / "eval"), "--model", "sciclip-tiny"]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "5 task(s): shapes, digits, plot_types, tissue_textures, figure_retrieval" in error
    assert f"sciclip fetch evalsets --dest {tmp_path / 'data'}" in error
    assert not (tmp_path / "eval" / "run" / "eval_results.jsonl").exists()


def test_checkpoint_and_model_are_found_in_run_folders(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("epoch_2.pt", "epoch_10.pt"):
        (run / "checkpoints" / name).write_bytes(b"")
    (run / "train_config.json").write_text(json.dumps({"model": "ViT-B-32", "lr": 5e-4}))
    assert find_checkpoint(run) == (run / "checkpoints" / "epoch_10.pt", "ViT-B-32")
    (run / "checkpoints" / "epoch_latest.pt").write_bytes(b"")
    assert find_checkpoint(run, "sciclip-tiny") == (run / "checkpoints" / "epoch_latest.pt", "sciclip-tiny")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="--model"):
        find_checkpoint(bare)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        find_checkpoint(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_checkpoint(tmp_path / "none")


def test_tables_give_datacomps_group_means_and_average(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = load_tasks("datacomp")
    scored = [key for key, task in tasks.items() if task.main_metric]
    values = {key: round(0.01 * (index + 1), 2) for index, key in enumerate(scored)}
    folder = tmp_path / "mix"
    folder.mkdir()
    lines = [
        {"key": k, "dataset": tasks[k].name, "metrics": {"main_metric": v, "acc1": v}}
        for k, v in values.items()
    ]
    (folder / "eval_results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["tables", str(folder), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    by_group = {
        group: [values[k] for k in scored if tasks[k].group == group]
        for group in ("ImageNet", "ImageNet distribution shifts", "VTAB", "Retrieval")
    }
    assert row["run"] == "mix" and row["tasks"] == 38
    assert row["imagenet"] == pytest.approx(values["imagenet1k"])
    assert row["imagenet_dist_shifts"] == pytest.approx(np.mean(by_group["ImageNet distribution shifts"]))
    assert row["vtab"] == pytest.approx(np.mean(by_group["VTAB"])) and len(by_group["VTAB"]) == 13
    assert row["retrieval"] == pytest.approx(np.mean(by_group["Retrieval"]))
    assert row["average"] == pytest.approx(np.mean(list(values.values())))
    assert row["average_ci95"] == [None, None]  # no per-sample predictions, no interval

    (folder / "eval_results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:-1]))
    assert main(["tables", str(folder), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["tasks"] == 37 and row["average"] is None and row["imagenet"] == pytest.approx(0.01)
    assert main(["tables", str(folder), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("run,imagenet,imagenet_low,imagenet_high,")


def test_bootstrap_interval_covers_the_exact_metric() -> None:
    rng = np.random.default_rng(0)
    target = np.repeat(np.arange(4), 50)
    correct = np.zeros(200, dtype=bool)
    correct[rng.choice(200, 140, replace=False)] = True  # acc1 exactly 0.7
    top1 = np.where(correct, target, (target + 1) % 4)
    top = np.stack([top1, (top1 + 1) % 4, (top1 + 2) % 4, (top1 + 3) % 4], axis=1)
    predictions = Predictions("classification", target=target, top=top, num_classes=4)
    assert metric(predictions, "acc1") == pytest.approx(0.7)
    low, high = interval(replicates(predictions, "acc1", 2000))
    standard_error = np.sqrt(0.7 * 0.3 / 200)  # binomial: the interval is about +-1.96 of it
    assert low < 0.7 < high
    assert (high - low) / 2 == pytest.approx(1.96 * standard_error, rel=0.15)
    assert np.array_equal(paired_difference(predictions, predictions, "acc1", 50), np.zeros(50))

    hits = np.array([True, False, True, True, False])  # retrieval: 5 images, 8 captions
    caption_image = np.array([0, 0, 1, 2, 2, 3, 4, 4])
    image_hit = np.array([True, True, False, True, False, True, False, False])
    retrieval = Predictions("retrieval", caption_image=caption_image, image_hit=image_hit, text_hit=hits)
    exact = (4 / 8 + 3 / 5) / 2
    assert metric(retrieval, "mean_recall@1") == pytest.approx(exact)
    assert metric(retrieval, "mean_recall@1", np.arange(5)) == pytest.approx(exact)
    low, high = interval(replicates(retrieval, "mean_recall@1", 500))
    assert low <= exact <= high


def _synthetic_run(folder: Path, accuracy: dict[str, float], seed: int) -> None:
    """Per-sample predictions of the sample suite with the given accuracy per group, written by the real
    result writer (``result_row``), as ``sciclip evaluate`` leaves them."""
    from sciclip_utils.evaluate.run import RESULTS, predictions_path, result_row

    rng = np.random.default_rng(seed)
    lines = []
    for task in load_tasks("sample").values():
        right = rng.random(100) < accuracy[task.group]
        if task.retrieval:
            predictions = Predictions("retrieval", caption_image=np.repeat(np.arange(50), 2),
                                      image_hit=right, text_hit=right[::2])  # fmt: skip
        else:
            classes = len(task.classnames)
            target = np.arange(100) % classes
            top1 = np.where(right, target, (target + 1) % classes)
            top = np.stack([(top1 + shift) % classes for shift in range(min(5, classes))], axis=1)
            predictions = Predictions("classification", target=target, top=top, num_classes=classes)
        predictions.save(predictions_path(folder, task))
        lines.append(json.dumps(result_row(task, predictions, 100)))
    (folder / RESULTS).write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_chapter_renders_tables_and_the_verdict_from_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat

    from sciclip_utils.notebooks import execute_notebook

    monkeypatch.setenv("SCICLIP_RUNS", str(tmp_path / "runs"))
    eval_dir = tmp_path / "runs" / "tiny" / "eval"
    for seed, (name, accuracy) in enumerate(
        {
            "commonpool": {"natural": 0.8, "scientific": 0.3},
            "sci": {"natural": 0.3, "scientific": 0.8},
            "mix": {"natural": 0.75, "scientific": 0.7},
        }.items()  # fmt: skip
    ):
        _synthetic_run(eval_dir / name, accuracy, seed)
    root = Path(__file__).resolve().parent.parent
    target = tmp_path / "07_evaluate.ipynb"
    execute_notebook(
        root / "notebooks" / "07_evaluate.ipynb", target, {"profile": "tiny", "bootstrap": 200}, root
    )
    glued = {
        output["metadata"]["scrapbook"]["name"]: output["data"].get(
            "application/papermill.record/text/plain", ""
        )
        for cell in nbformat.read(target, as_version=4).cells
        for output in cell.get("outputs", [])
        if "scrapbook" in output.get("metadata", {})
    }
    assert {"table3", "table4", "group_bars", "task_deltas"} <= set(glued)
    assert glued["verdict_sci_helps"] == "'holds, beyond the interval'"
    assert glued["verdict_sci_costs"] == "'holds, beyond the interval'"
    assert glued["sci_scientific_diff"].startswith("'+0.")
