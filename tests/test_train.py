"""Training stage: tiny runs that learn, kill/resume, DataComp's small recipe, DDP under torchrun, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sciclip_utils import train
from sciclip_utils.commonpool import Record, read_metadata, save_uid_subset, write_dataset
from sciclip_utils.profiles import stage_params
from sciclip_utils.sample_corpus import generate_sample_corpus
from sciclip_utils.train_report import read_curves

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (240, 220, 40),
           "purple": (140, 50, 170), "orange": (250, 140, 20), "black": (15, 15, 15), "white": (245, 245, 245)}  # fmt: skip
# sciclip-tiny for 60 steps of 16 in 3 checkpoints: enough to learn the colour of a disc.
TINY_RUN: dict[str, Any] = {"batch_size": 16, "samples_seen": 960, "checkpoints": 3, "warmup": 5, "lr": 1e-3}


@pytest.fixture(scope="session")
def web_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The micro sample corpus's web pool (CommonPool format, 3 shards), generated once per session."""
    out = tmp_path_factory.mktemp("micro") / "sample_corpus"
    generate_sample_corpus(out, seed=0, size="micro", workers=1)
    return out / "commonpool"


@pytest.fixture(scope="session")
def discs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256 discs of 8 colours on grey, captioned with their colour, as CommonPool shards: learnable in minutes."""
    rng = np.random.default_rng(0)
    records = []
    for index in range(256):
        name = list(COLOURS)[rng.integers(len(COLOURS))]
        image = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(90, 170, 3)))
        x, y, radius = rng.integers(8, 56, 2).tolist() + [int(rng.integers(12, 28))]
        ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLOURS[name])
        records.append(Record(image, f"a {name} circle", "commonpool", f"disc{index}", "f1"))
    out = tmp_path_factory.mktemp("discs")
    write_dataset(records, out, samples_per_shard=128)
    return out


@pytest.fixture(scope="session")
def tiny_run(discs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted tiny run of the commonpool condition on the discs (its log only in out.log)."""
    out = tmp_path_factory.mktemp("runs")
    return train.train_condition(
        "commonpool", data_dirs={"commonpool": discs}, out_dir=out, console_log=False, **TINY_RUN
    )


def _cli_argv(web_pool: Path, out: Path, params: dict[str, Any]) -> list[str]:
    argv = [
        "--profile",
        "tiny",
        "--condition",
        "commonpool",
        "--data",
        f"commonpool={web_pool}",
        "--out",
        str(out),
    ]
    for key, value in params.items():
        argv += ["-p", key, json.dumps(value)]
    return argv


def _records(source: str, count: int) -> list[Record]:
    rng = np.random.default_rng(len(source))
    return [
        Record(
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)),
            f"{source} figure {i}",
            source,
            f"p{i}",
            "f1",
        )
        for i in range(count)
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_tiny_run_learns_and_its_checkpoint_loads(tiny_run: Path) -> None:
    import open_clip
    import torch

    config = json.loads((tiny_run / "config.json").read_text())
    assert config["condition"] == "commonpool" and config["steps"] == 60
    curves = read_curves(tiny_run)
    assert list(curves["step"]) == list(range(1, 61))
    assert curves["lr"].iloc[1] > curves["lr"].iloc[0]  # warmup
    first, last = curves["loss"].iloc[0], curves["loss"].iloc[-10:].mean()
    assert first > np.log(16) - 0.2  # starts at chance for a batch of 16
    assert last < first - 0.8, curves["loss"].tolist()
    assert (curves["samples_per_s"] > 0).all()

    model, _, preprocess = open_clip.create_model_and_transforms(
        "sciclip-tiny", pretrained=str(train.final_checkpoint(tiny_run, 3))
    )
    tokenizer = open_clip.get_tokenizer("sciclip-tiny")
    model.eval()
    with torch.no_grad():
        image = preprocess(Image.new("RGB", (80, 60), (200, 30, 30))).unsqueeze(0)
        image_features = model.encode_image(image, normalize=True)
        text_features = model.encode_text(tokenizer(["red circle", "tree on a meadow"]), normalize=True)
    assert image_features.shape == (1, 128) and text_features.shape == (2, 128)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert torch.allclose(text_features.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_finished_run_is_reported_not_redone(
    tiny_run: Path, discs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = (tiny_run / "out.log").read_text()
    again = train.train_condition(
        "commonpool", data_dirs={"commonpool": discs}, out_dir=tiny_run.parent, **TINY_RUN
    )
    assert again == tiny_run and "already trained" in capsys.readouterr().out
    assert (tiny_run / "out.log").read_text() == log
    with pytest.raises(ValueError, match="other settings"):
        train.train_condition(
            "commonpool",
            data_dirs={"commonpool": discs},
            out_dir=tiny_run.parent,
            **{**TINY_RUN, "lr": 1e-4},
        )


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint(tiny_run: Path, discs: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sciclip_utils.train", *_cli_argv(discs, tmp_path, TINY_RUN)]
    run_dir = tmp_path / "commonpool"
    latest = run_dir / "checkpoints" / "epoch_latest.pt"
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert latest.exists(), "no checkpoint before the deadline"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not train.final_checkpoint(run_dir, 3).exists()

    result = subprocess.run(command, env=_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    log = (run_dir / "out.log").read_text()
    assert "=> resuming checkpoint" in log and "(epoch 0)" not in log.split("=> resuming checkpoint")[1][:200]
    assert log.count("Start epoch 0") == 1  # epoch 0 was not trained again
    resumed, uninterrupted = read_curves(run_dir), read_curves(tiny_run)
    assert list(resumed["step"]) == list(uninterrupted["step"])
    import torch

    assert torch.load(train.final_checkpoint(run_dir, 3), map_location="cpu")["epoch"] == 3


def test_small_argv_is_datacomp_small_key_by_key() -> None:
    """Ours against the arguments DataComp's train.py passes for --scale small on 8 GPUs."""
    from open_clip_train.params import parse_args

    params = stage_params("small", "train")
    ours = train.open_clip_argv(params, "/data/{00000000..00001287}.tar", None, Path("/logs"), "small", 8)
    datacomp = [
        "--save-frequency", "0", "--ddp-static-graph", "--local-loss", "--gather-with-grad", "--grad-checkpointing",
        "--train-data", "/data/{00000000..00001287}.tar", "--train-num-samples", str(12_800_000 // 5),
        "--warmup", "500", "--dataset-type", "webdataset", "--precision", "amp", "--workers", "4",
        "--model", "ViT-B-32", "--batch-size", str(4096 // 8), "--epochs", "5", "--lr", "0.0005",
        "--logs", "/logs", "--name", "small", "--seed", "0", "--accum-freq", "1", "--log-every-n-steps", "100",
        "--save-most-recent", "--resume", "latest", "--dataset-resampled", "--beta2", "0.98",
    ]  # fmt: skip
    ours_args, datacomp_args = vars(parse_args(ours)), vars(parse_args(datacomp))
    differing = {key for key in ours_args if ours_args[key] != datacomp_args[key]}
    # DataComp relies on the default device (cuda) and report target; this machine has no GPU.
    assert differing <= {"device", "report_to"}, {k: (ours_args[k], datacomp_args[k]) for k in differing}
    assert ours_args["wd"] == 0.2 and ours_args["beta2"] == 0.98 and ours_args["batch_size"] == 512
    # 2.56M samples / 4096 = 625 steps per checkpoint, rounded up by open_clip to whole shares of 4 workers
    assert train.planned_steps(params) == 5 * 628


@pytest.mark.slow
def test_small_profile_two_step_vit_b32_smoke(web_pool: Path, tmp_path: Path) -> None:
    """The small profile's code path end to end on CPU: ViT-B-32, batch 4, two steps (fp32: AMP on a CPU is
    bfloat16 autocast, about 3x slower here; the argv test checks the profile's amp)."""
    run_dir = train.train_condition(
        "commonpool",
        profile="small",
        data_dirs={"commonpool": web_pool},
        out_dir=tmp_path,
        batch_size=4,
        samples_seen=8,
        checkpoints=1,
        workers=1,
        log_every_n_steps=1,
        threads=1,
        precision="fp32",
    )
    curves = read_curves(run_dir)
    assert list(curves["step"]) == [1, 2]
    params_txt = (run_dir / "params.txt").read_text()
    for line in (
        "model: ViT-B-32",
        "grad_checkpointing: True",
        "local_loss: True",
        "dataset_resampled: True",
    ):
        assert line in params_txt
    assert train.final_checkpoint(run_dir, 1).is_file()
    shutil.rmtree(run_dir / "checkpoints")  # 2 x 1.8 GB


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(web_pool: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    params = {"batch_size": 16, "samples_seen": 64, "checkpoints": 2, "workers": 1}
    command = [str(torchrun), "--nproc-per-node", "2", "-m", "sciclip_utils.train"]
    result = subprocess.run(
        [*command, *_cli_argv(web_pool, tmp_path, params)],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "commonpool"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2 and "--batch-size" in config["open_clip_train_argv"]
    assert config["open_clip_train_argv"][config["open_clip_train_argv"].index("--batch-size") + 1] == "8"
    log = (run_dir / "out.log").read_text()
    assert "Running in distributed mode" in log and "total 2" in log
    assert list(read_curves(run_dir)["step"]) == [1, 2, 3, 4]
    assert train.final_checkpoint(run_dir, 2).is_file()


def test_subset_condition_from_the_cli(
    web_pool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user-defined condition with a uid subset: the selected samples are materialised and trained on."""
    from sciclip_utils.cli import main

    uids = read_metadata(web_pool)["uid"].tolist()[::3]
    save_uid_subset(uids, tmp_path / "third.npy")
    conditions = [{"name": "web-third", "sources": ["commonpool"], "subset": str(tmp_path / "third.npy")}]
    argv = ["train", *_cli_argv(web_pool, tmp_path / "runs", {"batch_size": 16, "samples_seen": 16})]
    argv[argv.index("commonpool")] = "web-third"
    assert main([*argv, "-p", "conditions", json.dumps(conditions), "-p", "checkpoints", "1"]) == 0
    run_dir = tmp_path / "runs" / "web-third"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run_dir)
    assert sorted(read_metadata(run_dir / "data" / "commonpool")["uid"]) == sorted(uids)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"][0]["samples"] == len(uids) and config["subset"] == str(tmp_path / "third.npy")
    assert train.final_checkpoint(run_dir, 1).is_file()


def test_mix_samples_sources_in_proportion_to_their_size(tmp_path: Path) -> None:
    """open_clip's resampler with our factors draws each source's share of samples (shards of unequal size)."""
    from open_clip_train.data import ResampledShards2

    sizes = {"commonpool": (172, 10), "arxiv": (16, 3), "pmc": (12, 5)}  # samples, per shard
    sources = []
    for name, (samples, per_shard) in sizes.items():
        write_dataset(_records(name, samples), tmp_path / name, samples_per_shard=per_shard)
        sources.append(train.inspect_source(name, tmp_path / name))
    train_data, factors, shares = train.mixture(sources)
    assert factors == "1::1::1" and shares == pytest.approx({"commonpool": 0.86, "arxiv": 0.08, "pmc": 0.06})
    shard_sizes = {}
    for source in sources:
        sizes_json = json.loads((Path(source.directory) / "shards" / "sizes.json").read_text())
        shard_sizes.update(
            {str(Path(source.directory) / "shards" / k): (source.name, v) for k, v in sizes_json.items()}
        )
    drawn = {name: 0 for name in sizes}
    for item in ResampledShards2(train_data, weights=factors, nshards=20_000, deterministic=True, epoch=0):
        name, count = shard_sizes[item["url"]]
        drawn[name] += count
    total = sum(drawn.values())
    assert {name: count / total for name, count in drawn.items()} == pytest.approx(shares, abs=0.01)


def test_bad_input_is_refused_before_anything_is_written(web_pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    ok = {"commonpool": web_pool}
    empty = tmp_path / "empty"
    (empty / "shards").mkdir(parents=True)
    cases = [
        ({"data_dirs": {"commonpool": tmp_path / "missing"}}, FileNotFoundError, "does not exist"),
        ({"data_dirs": {"commonpool": empty}}, ValueError, "no .tar shards"),
        ({"data_dirs": {**ok, "arxiv": tmp_path / "a", "pmc": tmp_path / "p"}, "condition": "sci"}, FileNotFoundError, "source 'arxiv'"),
        ({"data_dirs": ok, "condition": "y", "conditions": [{"name": "y", "sources": ["biorxiv"]}]}, ValueError, "no data directory"),
        ({"data_dirs": ok, "condition": "nope"}, ValueError, "unknown condition"),
        ({"data_dirs": ok, "model": "ViT-Z-99"}, ValueError, "unknown model"),
        ({"data_dirs": ok, "samples_seen": 100, "batch_size": 64, "checkpoints": 2}, ValueError, "budget too small"),
        (
            {"data_dirs": ok, "condition": "x", "conditions": [{"name": "x", "sources": ["commonpool"], "subset": "no.npy"}]},
            FileNotFoundError,
            "no.npy",
        ),
    ]  # fmt: skip
    for kwargs, error, message in cases:
        condition = kwargs.pop("condition", "commonpool")
        with pytest.raises(error, match=message):
            train.train_condition(condition, profile="tiny", out_dir=out, **kwargs)
    assert not out.exists()


def test_restored_logging_undoes_open_clip_setup() -> None:
    import logging

    from open_clip_train.logger import setup_logging

    handlers, level = list(logging.root.handlers), logging.root.level
    torch_level = logging.getLogger("torch").level
    with train.restored_logging():
        setup_logging(None, logging.INFO)
        assert len(logging.root.handlers) == len(handlers) + 1
    assert logging.root.handlers == handlers and logging.root.level == level
    assert logging.getLogger("torch").level == torch_level
