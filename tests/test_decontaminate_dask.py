"""Decontamination at scale: Dask workers give the scores, kept uids and shards of one process, also after
a run killed midway and restarted with another worker count; FAISS IVF with its recall; ISC decoding in
DataLoader workers; the scale options shared by CLI and profile."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from sciclip_utils import cli, commonpool
from sciclip_utils import decontam as dc
from sciclip_utils.decontam import calibration, descriptors
from sciclip_utils.decontam.search import build_search
from sciclip_utils.profiles import apply_profile, stage_params

SHARDS, PER_SHARD, THRESHOLD = 16, 4, 0.9


def _jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 16-shard CommonPool pool (photo tiles, plots, textures) with flipped copies of 4 eval images, an
    ImageFolder eval set, and the outputs of a one-process run."""
    root = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(11)
    tiles = calibration._photo_tiles()
    evals = root / "evalsets" / "photos" / "photo"
    evals.mkdir(parents=True)
    for index, img in enumerate(tiles[:8]):
        img.save(evals / f"{index}.png")
    images = [ImageOps.mirror(img).resize((img.width * 2, img.height * 2)) for img in tiles[:4]]
    images += tiles[8:]
    images += [calibration._plot_image(rng, kind) for kind in ("line", "bar", "scatter", "hist") * 6]
    images += [calibration._texture_image(rng) for _ in range(SHARDS * PER_SHARD - len(images))]
    order = rng.permutation(len(images))
    records = [commonpool.Record(_jpeg(images[i]), f"figure {i}", "test", f"p{i}", "fig1") for i in order]
    data = root / "pool"
    commonpool.write_dataset(records, data, samples_per_shard=PER_SHARD)
    single = dc.decontaminate(data, [root / "evalsets"], root / "single", threshold=THRESHOLD, progress=False)
    assert single.removed >= 4 and single.workers == 0
    return {"root": root, "data": data, "evalsets": root / "evalsets", "single": root / "single"}


def _outputs(out: Path) -> dict[str, bytes]:
    """The files that must not depend on how the run was spread: scores, kept uids, shards, sizes."""
    files = [out / "scores.parquet", out / "kept_uids.npy", out / "sizes.json", *(out / "shards").iterdir()]
    return {str(path.relative_to(out)): path.read_bytes() for path in files}


def _train_cache(out: Path) -> list[Path]:
    return sorted(out.glob(".cache/*/train/*.npz"))


def test_dask_workers_give_the_outputs_of_one_process(pool: dict) -> None:
    expected = _outputs(pool["single"])
    assert len(commonpool.shard_paths(pool["data"])) == SHARDS
    assert len([name for name in expected if name.endswith(".tar")]) > 10
    for workers in (1, 2):
        out = pool["root"] / f"workers{workers}"
        report = dc.decontaminate(
            pool["data"], [pool["evalsets"]], out, threshold=THRESHOLD, workers=workers, progress=False
        )
        assert report.workers == workers and len(_train_cache(out)) == SHARDS
        assert _outputs(out) == expected, workers


def _command(pool: dict, out: Path, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "sciclip_utils.cli", "decontaminate", str(pool["data"]),
        "--against", str(pool["evalsets"]), "--out", str(out), "--descriptor", "dct",
        "--threshold", str(THRESHOLD), "--workers", str(workers), "--no-progress",
    ]  # fmt: skip


def test_a_killed_run_restarted_with_another_worker_count_gives_the_same_outputs(pool: dict) -> None:
    out = pool["root"] / "killed"
    process = subprocess.Popen(
        _command(pool, out, 2), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    started = time.monotonic()
    while process.poll() is None and not _train_cache(out):
        assert time.monotonic() - started < 180, "no shard embedded in 3 minutes"
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    cached = len(_train_cache(out))
    print(f"killed with {cached} of {SHARDS} shards embedded")
    assert 0 < cached < SHARDS, f"the kill did not land midway ({cached} of {SHARDS} shards embedded)"
    assert not (out / "scores.parquet").exists()

    restarted = subprocess.run(_command(pool, out, 1), capture_output=True, text=True)
    assert restarted.returncode == 0, restarted.stderr
    assert "workers 1" in restarted.stdout and len(_train_cache(out)) == SHARDS
    assert _outputs(out) == _outputs(pool["single"])


def test_large_eval_sides_use_faiss_ivf_and_report_its_recall() -> None:
    rng = np.random.default_rng(5)
    reference = descriptors._unit_rows(rng.standard_normal((8000, 32)).astype(np.float32))
    noise = 0.02 * rng.standard_normal((500, 32)).astype(np.float32)
    copies = descriptors._unit_rows(reference[:500] + noise)
    assert build_search(reference, faiss_min_rows=10_000).method == "exact"
    search = build_search(reference, faiss_min_rows=1000, nprobe=4)
    # min(4 sqrt(8000), 8000 // 39) lists
    assert search.method == "faiss" and search.description == "faiss IVF205,Flat nprobe 4"
    _, rows = search.search(copies)
    assert (rows == np.arange(500)).all()  # a near-duplicate lies in its original's list
    assert search.recall(copies, threshold=0.9, sample=200) == (1.0, 1.0, 200)
    # unrelated images: their best match is often missed, but none crosses the threshold either way
    unrelated = descriptors._unit_rows(rng.standard_normal((1000, 32)).astype(np.float32))
    recall, agreement, checked = search.recall(unrelated, threshold=0.9)
    exact, _ = dc.nearest(unrelated, reference)
    found, _ = search.search(unrelated)
    assert checked == 1000 and recall == np.mean(found >= exact - 1e-5) < 0.9 and agreement == 1.0


def test_isc_decodes_in_dataloader_workers_like_the_in_process_path(tmp_path: Path) -> None:
    import torch

    checkpoint = tmp_path / dc.ISC_CHECKPOINT
    state = {f"module.{k}": v for k, v in dc.build_isc_network().state_dict().items()}
    torch.save({"state_dict": state}, checkpoint)
    model = dc.ISCDescriptor(checkpoint, input_size=64, batch_size=2, device="cpu", loader_workers=2)
    assert (model.device, model.amp, model.cache_id.endswith("-64")) == ("cpu", False, True)
    jpegs = [_jpeg(img) for img in calibration._photo_tiles()[:5]]
    in_process = model.embed([dc.decode_image(data, draft=64) for data in jpegs])
    np.testing.assert_array_equal(model.embed_jpegs(jpegs, batch_size=256), in_process)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            dc.ISCDescriptor(checkpoint, device="cuda")


def test_cli_and_notebook_share_the_scale_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert {k: stage_params(p, "decontaminate")["workers"] for k, p in [("t", "tiny"), ("s", "small")]} == {
        "t": 0,
        "s": 4,
    }
    assert stage_params("small", "decontaminate")["device"] == "cuda"
    args = cli.build_parser(["decontaminate"]).parse_args(
        ["decontaminate", "--workers", "3", "--device", "cpu", "--scheduler", "tcp://127.0.0.1:8786"]
    )
    params = apply_profile(args, "decontaminate")
    assert {k: getattr(args, k) for k in ("workers", "device", "scheduler")} == {
        "workers": 3, "device": "cpu", "scheduler": "tcp://127.0.0.1:8786",
    }  # fmt: skip
    assert set(params) >= {"workers", "device", "scheduler"}
    with pytest.raises(SystemExit):
        cli.build_parser(["decontaminate"]).parse_args(["decontaminate", "--workers", "-1"])
