"""Decontamination on Dask workers: the same scores, kept uids and shards as one process, also after a run
killed midway and restarted with another worker count."""

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

from sciclip_utils import commonpool
from sciclip_utils import decontam as dc
from sciclip_utils.decontam import calibration

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
