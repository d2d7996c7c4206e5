"""The shared extraction runner: manifest rows, failures recorded, resume, Dask and in-process agree, and
each item isolated (hangs, memory blow-ups, crashes and dying workers cost one item, never the batch)."""

from __future__ import annotations

import ctypes
import faulthandler
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sciclip_utils import commonpool
from sciclip_utils.commonpool import Record
from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem
from sciclip_utils.extract.parts import MANIFEST_COLUMNS, part_path
from sciclip_utils.extract.runner import run_extraction, task_batches
from sciclip_utils.extract.sandbox import ENV_ISOLATE, ENV_ITEM_MEMORY, ENV_ITEM_TIMEOUT, ItemLimits
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


def test_parts_without_the_output_size_still_assemble(tmp_path: Path) -> None:
    """Parts written before they stored each JPEG's size (read from its header instead) give the same shards."""
    import pyarrow.parquet as pq

    items = _items(8)
    run_extraction(items, _process, tmp_path / "new", source="test", workers=0, progress=False)
    old = tmp_path / "old"
    run_extraction(items[:5], _process, old, source="test", workers=0, progress=False)
    for path in (old / "parts").glob("*/*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["width", "height"]), path)
    run_extraction(items, _process, old, source="test", workers=0, progress=False)
    assert _digests(old) == _digests(tmp_path / "new")


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


# --------------------------------------------------------------------------------------- per-item isolation
def _misbehave(item: WorkItem) -> ItemResult:
    """Good items, and items that hang (Python, C regex, a grandchild), blow memory, crash or exit."""
    kind = item.paper_id.split("-")[0]
    if kind == "loop":
        while True:
            pass
    if kind == "regex":  # catastrophic backtracking: hangs inside C code, holding the GIL
        re.match(r"(a+)+$", "a" * 64 + "b")
    if kind == "child":  # a grandchild that would outlive its item
        (Path(item.input) / f"sleeper-{os.getpid()}").write_text("")
        subprocess.Popen(["sleep", "300"])
        time.sleep(300)
    if kind == "memory":
        bytearray(3 * 2**30)
    if kind == "segfault":
        faulthandler.disable()  # (pytest's crash report would clutter the test output)
        ctypes.string_at(0)
    if kind == "exit":
        os._exit(3)
    if kind == "tempfile":
        handle, name = tempfile.mkstemp()
        os.close(handle)
        return ItemResult([], status="skipped", stage="test", reason=name)
    return _process(WorkItem(item.key, item.input, f"p{kind}"))


MISBEHAVING = {
    "loop": ("timeout", r"^no result after 2 s: item process killed$"),
    "regex": ("timeout", r"^no result after 2 s: item process killed$"),
    "child": ("timeout", r"^no result after 2 s: item process killed$"),
    "memory": ("memory", r"^out of memory \(item memory cap 1024 MiB\)$"),
    "segfault": ("crash", r"^item process killed by SIGSEGV \(item memory cap 1024 MiB\)$"),
    "exit": ("crash", r"^item process exited with code 3, no result$"),
}


def _misbehaving_items(folder: Path) -> list[WorkItem]:
    names = [f"{n}-x" for n in (0, 1, 2, 4)] + [f"{kind}-x" for kind in MISBEHAVING]
    return [WorkItem(key=name, input=str(folder), paper_id=name) for name in sorted(names)]


@pytest.mark.parametrize("workers", [0, 2])
def test_hangs_memory_and_crashes_fail_one_item_each(tmp_path: Path, workers: int) -> None:
    items = _misbehaving_items(tmp_path)
    limits = ItemLimits(timeout_s=2, memory_bytes=2**30)
    started = time.monotonic()
    summary = run_extraction(
        items, _misbehave, tmp_path / "out", source="test", workers=workers, limits=limits, progress=False
    )
    assert time.monotonic() - started < 60
    rows = summary.manifest.set_index("paper_id")
    for kind, (stage, reason) in MISBEHAVING.items():
        row = rows.loc[f"{kind}-x"]
        assert (row.status, row.stage) == ("failed", stage), kind
        assert re.match(reason, row.reason), (kind, row.reason)
    good = rows.loc[["0-x", "1-x", "2-x", "4-x"]]
    assert list(good.status) == ["ok", "ok", "ok", "ok"] and summary.pairs == 8
    run_extraction(
        [WorkItem(f"{n}-x", str(tmp_path), f"{n}-x") for n in (0, 1, 2, 4)],
        _misbehave, tmp_path / "clean", source="test", workers=0, progress=False,
    )  # fmt: skip
    assert _digests(tmp_path / "out") == _digests(tmp_path / "clean")
    sleepers = [int(path.name.split("-")[1]) for path in tmp_path.glob("sleeper-*")]
    assert sleepers and not any(_children_alive(pid) for pid in sleepers)  # the grandchild died with the item
    assert not (tmp_path / "out" / "tmp").exists()


def _children_alive(pid: int) -> bool:
    """Whether a process started by ``pid`` (a ``sleep 300``) still runs."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text and "Name:\tsleep" in text:
            return True
    return False


def test_item_temporary_files_stay_in_the_output_directory(tmp_path: Path) -> None:
    items = [WorkItem(key="t", input=str(tmp_path), paper_id="tempfile-x")]
    summary = run_extraction(items, _misbehave, tmp_path / "out", source="test", workers=0, progress=False)
    name = Path(summary.manifest.iloc[0].reason)
    assert name.is_relative_to(tmp_path / "out" / "tmp") and not name.exists()


def test_isolation_off_runs_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(item: WorkItem) -> ItemResult:
        calls.append(item.paper_id)
        return _process(item)

    monkeypatch.setenv(ENV_ISOLATE, "0")
    run_extraction(_items(3), counting, tmp_path, source="test", workers=0, progress=False)
    assert calls == ["p0", "p1", "p2"]


def test_limits_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ITEM_TIMEOUT, "7.5")
    monkeypatch.setenv(ENV_ITEM_MEMORY, "0")
    assert ItemLimits.from_env() == ItemLimits(timeout_s=7.5, memory_bytes=None)
    monkeypatch.delenv(ENV_ITEM_TIMEOUT)
    monkeypatch.delenv(ENV_ITEM_MEMORY)
    assert ItemLimits.from_env() == ItemLimits()


def _kill_worker(item: WorkItem) -> ItemResult:
    if item.paper_id == "p3":
        os.kill(os.getpid(), signal.SIGKILL)
    return _process(item)


def test_a_dying_dask_worker_fails_only_its_item(tmp_path: Path) -> None:
    """Without isolation an item that kills its worker is retried once, then marked failed; the nannies
    replace the workers and the other items finish."""
    summary = run_extraction(
        _items(6), _kill_worker, tmp_path, source="test", workers=2, isolate=False, progress=False
    )
    rows = summary.manifest.set_index("paper_id")
    assert (rows.loc["p3", "status"], rows.loc["p3", "stage"]) == ("failed", "worker")
    assert "KilledWorker" in rows.loc["p3", "reason"]
    assert list(rows.drop(index="p3").status) == ["ok", "ok", "ok", "ok", "failed"]


def test_task_batches_start_with_the_largest_inputs(tmp_path: Path) -> None:
    """Items are batched largest input first (bulk-tar members by their size, files by their size on disk;
    folders and unreadable inputs count as 0 and keep their order), so that the last tasks to finish are
    short and the workers end together; the output order is unaffected (parts are assembled by key)."""
    folder = tmp_path / "PMC1.1"
    folder.mkdir()
    (folder / "a.nxml").write_bytes(b"x" * 300)
    (folder / "a.jpg").write_bytes(b"x" * 500)
    small = tmp_path / "small.tar.gz"
    small.write_bytes(b"x" * 100)
    items = [
        WorkItem(key="missing", input=str(tmp_path / "gone.gz"), paper_id="gone"),
        WorkItem(key="small", input=str(small), paper_id="small"),
        WorkItem(key="member", input=str(small), paper_id="member", member="m.gz", offset=0, size=5000),
        WorkItem(key="folder", input=str(folder), paper_id="folder"),
    ]
    batches = task_batches(items, 1)
    assert [item.key for batch in batches for item in batch] == ["member", "small", "missing", "folder"]


def _kill_worker_at_p4(item: WorkItem) -> ItemResult:
    if item.paper_id == "p4":
        os.kill(os.getpid(), signal.SIGKILL)
    return _process(item)


def test_items_run_in_batches_and_a_dying_worker_still_fails_only_its_item(tmp_path: Path) -> None:
    """Several items per Dask task; the items a killed task left undone run again one per task, so only
    the item that kills its worker is failed (the one after it in its batch finishes)."""
    items = _items(40)
    assert [len(batch) for batch in task_batches(items, 2)] == [2] * 20
    assert [item.paper_id for item in task_batches(items, 2)[2]] == ["p4", "p5"]
    summary = run_extraction(
        items, _kill_worker_at_p4, tmp_path / "dask", source="test", workers=2, isolate=False, progress=False
    )
    alone = run_extraction(items, _process, tmp_path / "here", source="test", workers=0, progress=False)
    rows, expected = (frame.set_index("paper_id") for frame in (summary.manifest, alone.manifest))
    assert (rows.loc["p4", "stage"], "KilledWorker" in rows.loc["p4", "reason"]) == ("worker", True)
    assert rows.drop(index="p4").status.equals(expected.drop(index="p4").status)
    assert rows.loc["p5", "status"] == "failed" and rows.loc["p5", "stage"] == "unknown"  # its own error
