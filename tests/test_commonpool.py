"""CommonPool writer/reader: DataComp layout, determinism, resume, uid subsets, open_clip_train."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sciclip_utils import commonpool
from sciclip_utils.commonpool import Record, ShardWriter, write_dataset


def _image(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _records(n: int, start: int = 0) -> list[Record]:
    return [
        Record(
            image=_image(i, (600 + i, 300)) if i % 5 == 0 else _image(i),
            text=f"A  scatter plot of   sample {i} showing a rising trend.",
            source="arxiv" if i % 2 else "pmc",
            paper_id=f"paper{i // 3}",
            figure_id=f"fig{i % 3 + 1}",
            license="CC BY" if i % 2 == 0 else None,
            extra={"language": "en"},
        )
        for i in range(start, start + n)
    ]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_layout_matches_datacomp(tmp_path: Path) -> None:
    stats = write_dataset(_records(25), tmp_path, samples_per_shard=10)
    shards = tmp_path / "shards"
    assert stats.written == 25 and stats.shards == 3
    assert sorted(p.name for p in shards.glob("*.tar")) == ["00000000.tar", "00000001.tar", "00000002.tar"]
    for name in ("00000000", "00000001", "00000002"):
        assert (shards / f"{name}.parquet").is_file()
        stats_json = json.loads((shards / f"{name}_stats.json").read_text())
        assert stats_json["count"] == stats_json["successes"]
    sizes = json.loads((shards / "sizes.json").read_text())
    assert sizes == {"00000000.tar": 10, "00000001.tar": 10, "00000002.tar": 5}
    assert json.loads((tmp_path / "sizes.json").read_text()) == sizes
    with tarfile.open(shards / "00000001.tar") as tar:
        names = tar.getnames()
    # img2dataset keys: shard * 10**ceil(log10(samples_per_shard)) + index, 12 digits
    assert names[:3] == ["000000000010.jpg", "000000000010.txt", "000000000010.json"]
    meta = commonpool.read_metadata(tmp_path)
    for column in (
        "uid",
        "url",
        "text",
        "original_width",
        "original_height",
        "sha256",
        "source",
        "paper_id",
        "figure_id",
        "license",
        "caption_chars",
        "caption_words",
        "language",
    ):
        assert column in meta.columns
    assert meta["uid"].str.fullmatch(r"[0-9a-f]{32}").all() and meta["uid"].is_unique
    first = meta.iloc[0]
    assert first["text"] == "A scatter plot of sample 0 showing a rising trend."
    assert first["caption_chars"] == len(first["text"]) and first["caption_words"] == 10
    assert first["url"] == "pmc:paper0#fig1"
    assert (first["original_width"], first["original_height"]) == (600, 300)
    assert first["uid"] == commonpool.make_uid("pmc", "paper0", "fig1", first["sha256"])


def test_reader_with_webdataset_and_pandas(tmp_path: Path) -> None:
    import webdataset as wds

    write_dataset(_records(12), tmp_path, samples_per_shard=5)
    urls = [str(p) for p in commonpool.shard_paths(tmp_path)]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("jpg", "txt", "json"))
    assert len(samples) == 12
    image, text, meta = samples[0]
    assert image.mode == "RGB" and text.startswith("A scatter plot") and meta["caption"] == text
    ours = list(commonpool.iter_samples(tmp_path))
    table = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "shards").glob("*.parquet")))
    assert [s.uid for s in ours] == table["uid"].tolist() == [m["uid"] for *_, m in samples]
    assert hashlib.sha256(ours[3].jpg).hexdigest() == table.iloc[3]["sha256"]


def test_identical_output_across_runs(tmp_path: Path) -> None:
    write_dataset(_records(23), tmp_path / "a", samples_per_shard=10)
    write_dataset(_records(23), tmp_path / "b", samples_per_shard=10)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_exact_duplicates_written_once(tmp_path: Path) -> None:
    records = _records(6)
    duplicate = Record(**{**records[2].__dict__, "paper_id": "other"})
    stats = write_dataset([*records, duplicate], tmp_path, samples_per_shard=4)
    assert (stats.written, stats.duplicates) == (6, 1)
    stats_files = [json.loads(p.read_text()) for p in sorted((tmp_path / "shards").glob("*_stats.json"))]
    assert sum(s["duplicates"] for s in stats_files) == 1


def test_resume_after_crash_gives_identical_output(tmp_path: Path) -> None:
    records = _records(27)
    write_dataset(records, tmp_path / "clean", samples_per_shard=10)

    def crashing():
        for i, record in enumerate(records):
            if i == 17:
                raise KeyboardInterrupt
            yield record

    with pytest.raises(KeyboardInterrupt):
        write_dataset(crashing(), tmp_path / "crashed", samples_per_shard=10)
    shards = tmp_path / "crashed" / "shards"
    assert sorted(p.name for p in shards.glob("*.tar")) == ["00000000.tar"]  # only complete shards visible
    assert ShardWriter(tmp_path / "crashed", 10).resume_offset == 10
    write_dataset(records, tmp_path / "crashed", samples_per_shard=10)
    assert _digests(tmp_path / "clean") == _digests(tmp_path / "crashed")


def test_tar_writer_writes_what_tarfile_writes(tmp_path: Path) -> None:
    members = [("000000000000.jpg", bytes(range(256)) * 7), ("000000000000.txt", b""), ("a.json", b"x" * 512)]
    with tarfile.open(tmp_path / "reference.tar", "w", format=tarfile.GNU_FORMAT) as reference:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
            reference.addfile(info, io.BytesIO(data))
    writer = commonpool.TarWriter(tmp_path / "ours.tar")
    for name, data in members:
        writer.add(name, data)
    writer.close()
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "reference.tar").read_bytes()
    with tarfile.open(tmp_path / "ours.tar") as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()] == members


def test_uid_subset_roundtrip_and_apply(tmp_path: Path) -> None:
    write_dataset(_records(20), tmp_path / "full", samples_per_shard=8)
    meta = commonpool.read_metadata(tmp_path / "full")
    keep = meta["uid"].iloc[::3].tolist()
    array = commonpool.save_uid_subset(reversed(keep), tmp_path / "subset.npy")
    loaded = np.load(tmp_path / "subset.npy")
    assert loaded.dtype == np.dtype("u8,u8") and np.array_equal(loaded, array)
    assert loaded.tolist() == sorted(loaded.tolist()), "DataComp subsets are sorted"
    assert commonpool.array_to_uids(loaded) == sorted(keep)
    stats = commonpool.apply_uid_subset(tmp_path / "full", tmp_path / "subset.npy", tmp_path / "sub", 4)
    sub = commonpool.read_metadata(tmp_path / "sub")
    assert stats.written == len(keep) and sorted(sub["uid"]) == sorted(keep)
    original = meta.set_index("uid").loc[sub["uid"], ["sha256", "text", "url", "language"]]
    assert (original.to_numpy() == sub[["sha256", "text", "url", "language"]].to_numpy()).all()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo open_clip_train's logging setup (left in place, torch's statistics print at the end of the run)."""
    from sciclip_utils.train import restored_logging

    with restored_logging():
        yield


@pytest.mark.slow
@pytest.mark.usefixtures("restore_logging")
def test_open_clip_train_runs_on_our_shards(tmp_path: Path) -> None:
    """One real training step of open_clip_train on our shards, with a tiny registered model config."""
    import open_clip
    from open_clip_train.main import main as train_main

    write_dataset(_records(16), tmp_path / "data", samples_per_shard=8)
    open_clip.add_model_config(Path(commonpool.__file__).parent / "model_configs")
    shards = str(tmp_path / "data" / "shards" / "{00000000..00000001}.tar")
    train_main([
        "--train-data", shards, "--dataset-type", "webdataset", "--model", "sciclip-tiny",
        "--batch-size", "8", "--epochs", "1", "--workers", "0", "--device", "cpu", "--precision", "fp32",
        "--lr", "1e-3", "--warmup", "1", "--logs", str(tmp_path / "logs"), "--name", "step",
        "--report-to", "", "--seed", "0", "--log-every-n-steps", "1",
    ])  # fmt: skip
    log = (tmp_path / "logs" / "step" / "out.log").read_text()
    assert "Train Epoch: 0" in log
    assert (tmp_path / "logs" / "step" / "checkpoints" / "epoch_1.pt").is_file()
