"""DataComp's own metrics: FMoW / Dollar Street / GeoDE worst-group accuracy from ``.cls`` + ``.npy``
webdatasets, WinoGAViL's Jaccard score from the Hub mirror's csv and image zip, against values computed by
hand from a fixed model's own embeddings; all 38 averaged tasks scored and tabled."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_evaluate import _checkpoint, _image, _tar

from sciclip_utils.cli import main
from sciclip_utils.evaluate.bootstrap import Predictions, interval, metric, replicates
from sciclip_utils.evaluate.run import predictions_path, result_row
from sciclip_utils.evaluate.winogavil import jaccard, prompt, read_instances
from sciclip_utils.tasks import load_tasks

CLASSES = ["cat", "dog", "car", "tree", "house", "boat", "bird", "fish"]
TEMPLATES = ["a photo of a {c}.", "a drawing of a {c}."]
TASKS = load_tasks("datacomp")
# (cue, candidates, associations) with 5, 6, 10, 12 candidates: DataComp's four instance sizes
WINO = [
    ("Apple", 5, 2),
    ("dog", 6, 3),
    ("Ocean", 10, 4),
    ("moon", 12, 5),
    ("umbrella", 10, 3),
    ("fire", 5, 1),
]


def _grouped_set(
    folder: Path, metadata: np.ndarray, classes: list[str], rng: np.random.Generator
) -> tuple[list, list]:
    """A clip_benchmark webdataset in two shards whose samples also carry a ``.npy`` metadata vector."""
    images, labels, members = [], [], [{}, {}]
    for index, vector in enumerate(metadata):
        image, data = _image(rng)
        label = int(rng.integers(len(classes)))
        buffer = io.BytesIO()
        np.save(buffer, vector)
        images.append(image)
        labels.append(label)
        members[index % 2].update({f"s{index:04d}.png": data, f"s{index:04d}.cls": str(label).encode(),
                                   f"s{index:04d}.npy": buffer.getvalue()})  # fmt: skip
    for shard, content in enumerate(members):
        _tar(folder / "test" / f"{shard}.tar", content)
    (folder / "test" / "nshards.txt").write_text("2\n")
    (folder / "classnames.txt").write_text("\n".join(classes) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    return images, labels


def _winogavil_mirror(folder: Path, rng: np.random.Generator) -> tuple[list[Image.Image], list[dict]]:
    """The files of the ``nlphuji/winogavil`` Hub repo as ``sciclip fetch evalsets`` mirrors them: the
    loading script, the instances csv (JSON-list columns) and the image zip (``winogavil_images/x.jpg``)."""
    folder.mkdir(parents=True)
    pool = [f"word{index:02d}" for index in range(30)]
    pictures = {}
    with zipfile.ZipFile(folder / "winogavil_images.zip", "w") as archive:
        for name in pool:
            image = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=95)
            archive.writestr(f"winogavil_images/{name}.jpg", buffer.getvalue())
            pictures[name] = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        archive.writestr("__MACOSX/winogavil_images/._word00.jpg", b"resource fork, not an image")
    rows = []
    for index, (cue, count, associated) in enumerate(WINO):
        candidates = [str(name) for name in rng.choice(pool, count, replace=False)]
        associations = [str(name) for name in rng.choice(candidates, associated, replace=False)]
        rows.append({"ID": 100 + index, "cue": cue, "candidates": json.dumps(candidates),
                     "associations": json.dumps(associations), "num_associations": associated,
                     "num_candidates": count, "score_fool_the_ai": 0.0, "solvers_jaccard_mean": 1.0})  # fmt: skip
    with open(folder / "winogavil_dataset.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "winogavil.py").write_text('""" WinoGAViL Loading Script """\n')
    return pictures, rows


def test_winogavil_prompt_jaccard_and_malformed_instances(tmp_path: Path) -> None:
    assert prompt("Apple") == "An apple" and prompt("Dog") == "A dog" and prompt("ice age") == "An ice age"
    truth = np.array([True, True, False, False, True])
    assert jaccard(truth, np.array([True, False, True, False, True])) == pytest.approx(2 / 4)
    assert jaccard(truth, truth) == 1.0
    folder = tmp_path / "winogavil"
    _winogavil_mirror(folder, np.random.default_rng(0))
    instances = read_instances(folder)
    assert [len(i.candidates) for i in instances] == [5, 6, 10, 12, 10, 5] and instances[0].cue == "Apple"
    with open(folder / "winogavil_dataset.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["associations"] = json.dumps(["not_a_candidate"])
    with open(folder / "winogavil_dataset.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match=r"1 malformed instance\(s\): line 2 \(ID 100\)"):
        read_instances(folder)


def _hand_metrics(model, preprocess, tokenizer, classes, images, labels) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Per sample: top-1 and top-5 hits of ``model``'s zero-shot classifier, computed here."""
    import torch

    with torch.no_grad():
        prototypes = []
        for name in classes:
            texts = model.encode_text(tokenizer([template.format(c=name) for template in TEMPLATES])).numpy()
            mean = (texts / np.linalg.norm(texts, axis=1, keepdims=True)).mean(axis=0)
            prototypes.append(mean / np.linalg.norm(mean))
        features = model.encode_image(torch.stack([preprocess(image) for image in images])).numpy()
    logits = features / np.linalg.norm(features, axis=1, keepdims=True) @ np.array(prototypes).T
    ranked = np.argsort(-logits, axis=1)
    labels = np.array(labels)
    return ranked[:, 0] == labels, (ranked[:, :5] == labels[:, None]).any(axis=1)


def _by_group(hits: np.ndarray, groups: np.ndarray) -> dict[int, float]:
    members = defaultdict(list)
    for hit, group in zip(hits, groups, strict=True):
        members[int(group)].append(bool(hit))
    return {group: sum(values) / len(values) for group, values in members.items()}


@pytest.mark.slow
def test_datacomp_only_tasks_match_metrics_computed_by_hand(tmp_path: Path) -> None:
    import torch

    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    n = 48
    metadata = {  # FMoW [region, year, y]: region 3 absent, region 5 ("Other" in WILDS) present
        "wilds/fmow": np.stack([rng.choice([0, 2, 5], n), rng.integers(0, 2, n), np.zeros(n, int)], 1),
        "fairness/dollar_street": np.stack([rng.integers(0, 3, n), rng.integers(0, 9, n), rng.integers(0, 3, n)], 1),
        "fairness/geode": np.stack([rng.integers(0, 3, n), rng.integers(0, 20, n)], 1),
    }  # fmt: skip
    classes = {
        key: CLASSES if key == "fairness/dollar_street" else CLASSES[:3] for key in metadata
    }  # top-5 of 8
    sets = {key: _grouped_set(data / TASKS[key].folder, metadata[key], classes[key], rng) for key in metadata}
    pictures, rows = _winogavil_mirror(data / TASKS["misc/winogavil"].folder, rng)
    model, preprocess, tokenizer = _checkpoint(tmp_path / "run")

    argv = ["evaluate", str(tmp_path / "run"), "--suite", "datacomp", "--data-root", str(data),
            "--eval-dir", str(tmp_path / "eval"), "--bootstrap", "300", "--batch-size", "7"]  # fmt: skip
    for key in [*metadata, "misc/winogavil"]:
        argv += ["--task", key]
    assert main(argv) == 0
    results = tmp_path / "eval" / "run" / "eval_results.jsonl"
    got = {row["key"]: row["metrics"] for row in map(json.loads, results.read_text().splitlines())}
    assert set(got) == {*metadata, "misc/winogavil"}

    top1, top5 = _hand_metrics(model, preprocess, tokenizer, classes["wilds/fmow"], *sets["wilds/fmow"])
    regions, years = (
        _by_group(top1, metadata["wilds/fmow"][:, 0]),
        _by_group(top1, metadata["wilds/fmow"][:, 1]),
    )
    fmow = got["wilds/fmow"]
    assert fmow["main_metric"] == pytest.approx(min(regions.values()))
    assert fmow["acc_worst_region"] == fmow["main_metric"]
    assert fmow["acc_worst_year"] == pytest.approx(min(years.values()))
    assert fmow["acc_avg"] == pytest.approx(fmow["acc1"]) == pytest.approx(top1.mean())
    assert fmow["acc_region:5"] == pytest.approx(regions[5])  # "Other" is a group like any
    assert fmow["count_region:5"] == np.sum(metadata["wilds/fmow"][:, 0] == 5)
    assert "acc_region:3" not in fmow  # no sample in region 3: no group
    assert 0 < fmow["main_metric"] < fmow["acc_avg"]

    top1, top5 = _hand_metrics(model, preprocess, tokenizer, CLASSES, *sets["fairness/dollar_street"])
    incomes = _by_group(top5, metadata["fairness/dollar_street"][:, 0])
    street = got["fairness/dollar_street"]
    assert street["main_metric"] == street["acc_top5_wg"] == pytest.approx(min(incomes.values()))
    assert street["acc_top5_income_ds:2"] == pytest.approx(incomes[2])
    assert street["acc5"] == pytest.approx(top5.mean()) and 0 < min(incomes.values()) < 1

    top1, _ = _hand_metrics(model, preprocess, tokenizer, classes["fairness/geode"], *sets["fairness/geode"])
    geode = got["fairness/geode"]
    regions = _by_group(top1, metadata["fairness/geode"][:, 0])
    assert geode["main_metric"] == geode["acc_wg"] == pytest.approx(min(regions.values()))
    assert geode["acc_wg"] > 0
    assert sorted(k for k in geode if k.startswith("count_")) == [
        f"count_region:{g}" for g in sorted(regions)
    ]

    scores, sizes = [], []
    with torch.no_grad():
        for row in rows:
            candidates, truth = json.loads(row["candidates"]), set(json.loads(row["associations"]))
            text = model.encode_text(tokenizer([prompt(row["cue"])])).numpy()[0]
            images = model.encode_image(torch.stack([preprocess(pictures[c]) for c in candidates])).numpy()
            similarity = (
                images / np.linalg.norm(images, axis=1, keepdims=True) @ (text / np.linalg.norm(text))
            )
            picked = {candidates[i] for i in np.argsort(similarity)[-len(truth) :]}
            scores.append(len(picked & truth) / len(picked | truth))
            sizes.append(len(candidates))
    scores, sizes = np.array(scores), np.array(sizes)
    wino = got["misc/winogavil"]
    assert wino["main_metric"] == wino["jaccard_score_10-12"] == pytest.approx(scores[sizes >= 10].mean())
    assert wino["jaccard_score_5-6"] == pytest.approx(scores[sizes <= 6].mean())
    assert wino["jaccard_score_12"] == pytest.approx(scores[sizes == 12].mean())
    assert wino["avg_jaccard_score"] == pytest.approx(scores.mean())

    for key, values in got.items():  # each interval from the saved predictions covers its point value
        low, high = values["main_metric_ci95"]
        assert low <= values["main_metric"] <= high, key
        predictions = Predictions.load(predictions_path(tmp_path / "eval" / "run", TASKS[key]))
        assert metric(predictions, TASKS[key].main_metric) == pytest.approx(values["main_metric"])


def test_datacomp_suite_skips_only_fairface_and_utkface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    (run / "epoch_latest.pt").write_bytes(b"never loaded: the data check comes first")
    argv = ["evaluate", str(tmp_path / "run"), "--suite", "datacomp", "--data-root", str(tmp_path / "data"),
            "--eval-dir", str(tmp_path / "eval"), "--model", "sciclip-tiny"]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    skipped = [line.split(":")[0] for line in captured.out.splitlines() if line.startswith("skipping")]
    assert skipped == ["skipping fairness/fairface", "skipping fairness/utkface"]
    assert "for 38 task(s)" in captured.err and "misc/winogavil" in captured.err


def _synthetic_predictions(key: str, rng: np.random.Generator) -> Predictions:
    """Per-sample predictions of the right kind for DataComp task ``key``."""
    task = TASKS[key]
    right = rng.random(60) < 0.6
    if task.retrieval:
        return Predictions("retrieval", caption_image=np.repeat(np.arange(30), 2), image_hit=right,
                           text_hit=right[::2])  # fmt: skip
    if task.task == "winogavil":
        return Predictions("winogavil", jaccard=np.where(right, 1.0, rng.choice([0.0, 1 / 3, 0.5], 60)),
                           candidates=rng.choice([5, 6, 10, 12], 60))  # fmt: skip
    target = np.arange(60) % 8
    top1 = np.where(right, target, (target + 1) % 8)
    predictions = Predictions("classification", target=target, num_classes=8,
                              top=np.stack([(top1 + shift) % 8 for shift in range(5)], axis=1))  # fmt: skip
    if key in ("wilds/fmow", "fairness/dollar_street", "fairness/geode"):
        from sciclip_utils.evaluate.grouped import GROUPINGS

        by = GROUPINGS[key].by
        predictions = Predictions(**{**predictions.__dict__, "groups": rng.integers(0, 3, (60, len(by))),
                                     "group_by": np.array(by)})  # fmt: skip
    return predictions


def test_tables_average_all_38_tasks_with_an_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(11)
    folder = tmp_path / "mix"
    lines = []
    for key, task in TASKS.items():
        if task.main_metric is None:
            continue
        predictions = _synthetic_predictions(key, rng)
        predictions.save(predictions_path(folder, task))
        lines.append(json.dumps(result_row(task, predictions, 50)))
    assert len(lines) == 38
    (folder / "eval_results.jsonl").write_text("\n".join(lines) + "\n")
    rows = [json.loads(line) for line in lines]
    assert main(["tables", str(folder), "--format", "json", "--bootstrap", "200"]) == 0
    (table,) = json.loads(capsys.readouterr().out)
    average = np.mean([row["metrics"]["main_metric"] for row in rows])
    assert table["tasks"] == 38 and table["average"] == pytest.approx(average)
    low, high = table["average_ci95"]
    assert low < average < high and high - low < 0.1
    dollar = next(row for row in rows if row["key"] == "fairness/dollar_street")["metrics"]
    reloaded = Predictions.load(predictions_path(folder, TASKS["fairness/dollar_street"]))
    assert dollar["acc_top5_wg"] == metric(reloaded, "acc_top5_wg")
    draws = replicates(reloaded, "acc_top5_wg", 300)
    assert np.all(draws <= 1) and interval(draws)[0] <= dollar["acc_top5_wg"]
