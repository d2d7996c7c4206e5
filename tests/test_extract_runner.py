"""The shared extraction runner: manifest rows, failures recorded, resume, Dask and in-process agree."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sciclip_utils import commonpool
from sciclip_utils.commonpool import Record
from sciclip_utils.extract import (
    MANIFEST_COLUMNS,
    ExtractionError,
    ItemResult,
    WorkItem,
    part_path,
    run_extraction,
)
from sciclip_utils.images import prepare_image


def _process(item: WorkItem, pairs: int = 2) -> ItemResult:
    """A real per-item function: draws images from the item's number; some items fail or are skipped."""
    n = int(item.paper_id[1:])
    if n % 7 == 3:
        raise ExtractionError("package", "corrupt gzip data")
    if n % 7 == 5:
        raise RuntimeError("boom")
    if n % 7 == 6:
        return ItemResult([], status="skipped", stage="package", reason="pdf-only submission")
    rng = np.random.default_rng(n)
    records = [
        Record(
            image=prepare_image(Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))),
            text=f"Figure {k} of paper {n}.",
            source="test",
            paper_id=item.paper_id,
            figure_id=f"fig{k}",
        )
        for k in range(1, pairs + 1)
    ]
    return ItemResult(
        records, main_file="main.tex", figures_found=pairs + 1, problems=["fig9: image not found: x"]
    )


def _items(n: int) -> list[WorkItem]:
    return [WorkItem(key=f"in/p{i:03d}.gz", input=f"in/p{i:03d}.gz", paper_id=f"p{i}") for i in range(n)]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "shards").iterdir())
    }


def test_manifest_and_shards_in_process(tmp_path: Path) -> None:
    summary = run_extraction(
        _items(14), _process, tmp_path, source="test", workers=0, samples_per_shard=5, progress=False
    )
    manifest = summary.manifest
    assert list(manifest.columns[: len(MANIFEST_COLUMNS) + 1]) == ["key", *MANIFEST_COLUMNS]
    assert summary.counts == {"ok": 8, "skipped": 2, "failed": 4}
    failed = manifest[manifest.status == "failed"].set_index("paper_id")
    assert failed.loc["p3", "stage"] == "package" and failed.loc["p3", "reason"] == "corrupt gzip data"
    assert failed.loc["p5", "stage"] == "unknown" and failed.loc["p5", "reason"] == "RuntimeError: boom"
    ok = manifest[manifest.status == "ok"]
    assert (
        (ok.pairs_written == 2).all() and (ok.problem_count == 1).all() and (ok.main_file == "main.tex").all()
    )
    assert summary.pairs == 16 == len(commonpool.read_metadata(tmp_path))
    assert (tmp_path / "manifest.parquet").is_file() and (tmp_path / "sizes.json").is_file()


def test_rerun_skips_finished_items_and_gives_same_output(tmp_path: Path) -> None:
    items = _items(10)
    run_extraction(
        items[:6], _process, tmp_path / "a", source="test", workers=0, samples_per_shard=4, progress=False
    )
    calls_dir = tmp_path / "calls"  # items run in child processes: record the calls on disk
    calls_dir.mkdir()

    def counting(item: WorkItem) -> ItemResult:
        (calls_dir / item.paper_id).touch()
        return _process(item)

    def calls() -> list[str]:
        return sorted(path.name for path in calls_dir.iterdir())

    summary = run_extraction(
        items, counting, tmp_path / "a", source="test", workers=0, samples_per_shard=4, progress=False
    )
    assert calls() == [item.paper_id for item in items[6:]]
    run_extraction(
        items, _process, tmp_path / "b", source="test", workers=0, samples_per_shard=4, progress=False
    )
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert len(summary.manifest) == 10
    shutil.rmtree(calls_dir)
    calls_dir.mkdir()
    run_extraction(
        items, counting, tmp_path / "a", source="test", workers=0, samples_per_shard=4, progress=False
    )
    assert calls() == []


def test_interrupted_assembly_resumes(tmp_path: Path) -> None:
    items = _items(12)
    run_extraction(
        items, _process, tmp_path / "clean", source="test", workers=0, samples_per_shard=3, progress=False
    )
    out = tmp_path / "crashed"
    run_extraction(items, _process, out, source="test", workers=0, samples_per_shard=3, progress=False)
    # simulate a crash during assembly: the last shards and the completion marker are gone
    fingerprint = json.loads((out / "assembled.json").read_text())["fingerprint"]
    (out / "assembled.json").unlink()
    (out / "assembling.json").write_text(json.dumps({"fingerprint": fingerprint}))
    for path in sorted((out / "shards").glob("00000003*")):
        path.unlink()
    run_extraction(items, _process, out, source="test", workers=0, samples_per_shard=3, progress=False)
    assert _digests(out) == _digests(tmp_path / "clean")


def test_dask_matches_in_process(tmp_path: Path) -> None:
    items = _items(8)
    process = functools.partial(_process, pairs=3)
    run_extraction(
        items, process, tmp_path / "local", source="test", workers=0, samples_per_shard=5, progress=False
    )
    summary = run_extraction(
        items, process, tmp_path / "dask", source="test", workers=2, samples_per_shard=5, progress=False
    )
    assert _digests(tmp_path / "local") == _digests(tmp_path / "dask")
    assert summary.counts["ok"] == 5
    assert part_path(tmp_path / "dask" / "parts", items[0].key).is_file()


def test_max_items_takes_the_first_keys(tmp_path: Path) -> None:
    summary = run_extraction(
        _items(9), _process, tmp_path, source="test", workers=0, max_items=3, progress=False
    )
    assert summary.manifest.paper_id.tolist() == ["p0", "p1", "p2"]


def test_records_need_prepared_images(tmp_path: Path) -> None:
    def raw(item: WorkItem) -> ItemResult:
        return ItemResult([Record(image=b"x", text="t", source="s", paper_id="p", figure_id="f")])

    with pytest.raises(TypeError):
        run_extraction(_items(1), raw, tmp_path, source="test", workers=0, progress=False)
