"""``sciclip fetch commonpool``: metadata parquets from a local Hub-like server, images from a local web
server (one missing, one not an image, one opted out) downloaded by img2dataset with DataComp's settings,
written as CommonPool shards with the uids kept and read back by the project's readers."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fetch_servers import file_server
from PIL import Image

from sciclip_utils import cli
from sciclip_utils.commonpool import (
    BASE_COLUMNS,
    apply_uid_subset,
    iter_samples,
    read_metadata,
    uids_to_array,
)
from sciclip_utils.fetch.commonpool import finish_shards

REPO = "mlfoundations/datacomp_small"
IMG2DATASET_AGENT = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"


def _noise(width: int, height: int, seed: int, fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _site(root: Path) -> dict[str, bytes]:
    """The web: images of several sizes and formats, a file that is no image, an opted-out image."""
    files = {
        "a.jpg": _noise(1024, 768, 1),
        "b.png": _noise(300, 200, 2, "PNG"),
        "face.jpg": _noise(800, 800, 3),
        "broken.jpg": b"<html>not an image</html>",
        "noai.jpg": _noise(64, 64, 4),
        "c.webp": _noise(600, 1200, 5, "WEBP"),
    }
    (root / "img").mkdir(parents=True)
    for name, data in files.items():
        (root / "img" / name).write_bytes(data)
    return files


def _uid(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _metadata(root: Path, base: str) -> list[dict]:
    """DataComp's metadata columns, two parquet files (5 + 2 rows) as the Hub repo serves them."""
    names = ["a.jpg", "missing.jpg", "b.png", "face.jpg", "broken.jpg", "noai.jpg", "c.webp"]
    rows = [
        {
            "uid": _uid(name),
            "url": f"{base}/img/{name}",
            "text": f"  caption of {name} ",
            "original_width": 1,
            "original_height": 1,
            "clip_b32_similarity_score": 0.25 + i / 100,
            "clip_l14_similarity_score": 0.2 + i / 100,
            "face_bboxes": [[0.25, 0.25, 0.75, 0.75]] if name == "face.jpg" else [],
            "sha256": "0" * 64,
        }
        for i, name in enumerate(names)
    ]
    folder = root / REPO
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[:5]), folder / "0a1b.parquet")
    pq.write_table(pa.Table.from_pylist(rows[5:]), folder / "0c2d.parquet")
    (folder / "README.md").write_text("DataComp small pool (test)\n")
    return rows


def _stats(dest: Path, shard: int) -> tuple[int, int, int, int, dict[str, int]]:
    stats = json.loads((dest / "shards" / f"{shard:08d}_stats.json").read_text())
    counts = stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]
    return (*counts, stats["status_dict"])


def test_downloads_the_pool_with_img2dataset_into_commonpool_shards_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    web = tmp_path / "web"
    files = _site(web)
    dest = tmp_path / "commonpool"
    with file_server(web) as (base, log):
        rows = _metadata(web, base)
        args = ["fetch", "commonpool", "--scale", "small", "--dest", str(dest), "--hf-endpoint", base]
        args += ["--processes", "1", "--threads", "2", "--samples-per-shard", "4"]
        assert cli.main([*args, "--dry-run"]) == 0
        assert f"CommonPool metadata ({REPO}): 2 parquet files" in capsys.readouterr().out
        assert not dest.exists()

        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert (
            "CommonPool: 4/7 images in 3 shards (2 failed to download, 1 to resize; 0 shards already" in out
        )
        image_requests = Counter(path for path, _ in log if path.startswith("/img/"))
        # DataComp's retries=2: a failed request is made three times in all (img2dataset retries any error)
        assert image_requests == {
            f"/img/{name}": 3 if name in {"missing.jpg", "noai.jpg"} else 1
            for name in ["a.jpg", "missing.jpg", "b.png", "face.jpg", "broken.jpg", "noai.jpg", "c.webp"]
        }
        assert {headers["user-agent"] for path, headers in log if path.startswith("/img/")} == {
            IMG2DATASET_AGENT
        }

        # a complete shard is skipped on a rerun; a shard without its stats file is downloaded again
        (dest / "shards" / "00000002_stats.json").unlink()
        log.clear()
        assert cli.main(args) == 0
        assert "2 shards already complete" in capsys.readouterr().out
        assert Counter(p for p, _ in log if p.startswith("/img/")) == {"/img/noai.jpg": 3, "/img/c.webp": 1}

    assert sorted(p.name for p in (dest / "metadata").iterdir()) == ["0a1b.parquet", "0c2d.parquet"]
    # img2dataset cuts each metadata file into shards of its own: 4 + 1 rows, then 2
    assert sorted(p.name for p in (dest / "shards").iterdir()) == [
        f"{shard:08d}{suffix}" for shard in range(3) for suffix in (".parquet", ".tar", "_stats.json")
    ] + ["sizes.json"]
    assert _stats(dest, 0)[:4] == (4, 3, 1, 0) and "HTTP Error 404" in " ".join(_stats(dest, 0)[4])
    assert _stats(dest, 1)[:4] == (1, 0, 0, 1)
    assert _stats(dest, 2)[:4] == (2, 1, 1, 0) and "X-Robots-Tag" in " ".join(_stats(dest, 2)[4])
    sizes = {"00000000.tar": 3, "00000001.tar": 0, "00000002.tar": 1}
    assert json.loads((dest / "sizes.json").read_text()) == sizes
    assert json.loads((dest / "shards" / "sizes.json").read_text()) == sizes

    samples = {s.uid: s for s in iter_samples(dest)}
    kept = ["a.jpg", "b.png", "face.jpg", "c.webp"]
    assert set(samples) == {_uid(name) for name in kept}
    # keys: shard * 10**ceil(log10(per shard)) + the row's index in its shard, 8 + ceil(log10(per shard))
    # digits (12 for DataComp's 10,000; 9 here); failures leave gaps
    assert sorted(s.key for s in samples.values()) == ["000000000", "000000002", "000000003", "000000021"]
    by_uid = {row["uid"]: row for row in rows}
    for uid, sample in samples.items():
        name = by_uid[uid]["url"].rsplit("/", 1)[1]
        image = Image.open(io.BytesIO(sample.jpg))
        original = Image.open(io.BytesIO(files[name]))
        assert image.format == "JPEG" and max(image.size) == min(512, max(original.size))  # only shrunk
        assert sample.text == f"  caption of {name} "  # DataComp's text as it is
        assert sample.json["original_width"] == original.size[0] and sample.json["uid"] == uid

    # the shard parquets hold the images only, in the project's columns
    metadata = read_metadata(dest)
    assert list(metadata.columns[1 : len(BASE_COLUMNS) + 1]) == list(BASE_COLUMNS)
    assert not {"status", "error_message", "exif", "caption"} & set(metadata.columns)
    assert sorted(metadata["uid"]) == sorted(samples) and set(metadata["source"]) == {"commonpool"}
    row = metadata.set_index("uid").loc[_uid("c.webp")]
    assert (row["text"], row["caption_words"], row["key"], row["shard"]) == (
        "  caption of c.webp ",
        3,
        "000000021",
        "00000002",
    )
    assert (row["width"], row["height"]) == (256, 512)
    assert row["sha256"] == hashlib.sha256(files["c.webp"]).hexdigest()  # of the downloaded file

    # the face box is blurred, the rest of the image is not
    face, plain = samples[_uid("face.jpg")].jpg, _resized_without_blur(files["face.jpg"])
    assert _box_detail(face) < 0.5 * _box_detail(plain)
    assert _corner_detail(face) == pytest.approx(_corner_detail(plain), rel=0.05)

    # the stages' readers take it: a uid subset of it, resharded
    subset = apply_uid_subset(dest, uids_to_array([_uid("a.jpg"), _uid("c.webp")]), tmp_path / "sub")
    assert subset.written == 2
    assert {s.uid for s in iter_samples(tmp_path / "sub")} == {_uid("a.jpg"), _uid("c.webp")}


def test_finish_removes_shards_without_stats(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "00000000.tar").write_bytes(b"")
    (shards / "00000000_stats.json").write_text(
        json.dumps({"count": 1, "successes": 0, "failed_to_download": 1, "failed_to_resize": 0})
    )
    failed = {"uid": "0" * 32, "caption": "x", "url": "http://127.0.0.1:9/x.jpg", "key": "000000000000"}
    failed |= {"status": "failed_to_download", "error_message": "timed out", "exif": None, "sha256": None}
    failed |= {c: None for c in ("width", "height", "original_width", "original_height")}
    pq.write_table(pa.Table.from_pylist([failed]), shards / "00000000.parquet")
    (shards / "00000001.tar").write_bytes(b"half a shard")  # a shard img2dataset failed twice on
    result = finish_shards(tmp_path)
    assert (result.shards, result.incomplete_shards, result.failed_to_download) == (1, 1, 1)
    assert sorted(p.name for p in shards.iterdir()) == [
        "00000000.parquet",
        "00000000.tar",
        "00000000_stats.json",
        "sizes.json",
    ]
    assert pq.read_table(shards / "00000000.parquet").num_rows == 0


def _resized_without_blur(data: bytes) -> bytes:
    from img2dataset.resizer import Resizer

    resizer = Resizer(512, "keep_ratio_largest", resize_only_if_bigger=True)
    jpeg, *_, error = resizer(io.BytesIO(data))
    assert error is None
    return jpeg


def _grey(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def _box_detail(jpeg: bytes) -> float:
    return float(np.abs(np.diff(_grey(jpeg)[192:320, 192:320], axis=1)).mean())


def _corner_detail(jpeg: bytes) -> float:
    return float(np.abs(np.diff(_grey(jpeg)[:64, :64], axis=1)).mean())


def test_bad_options_fail_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "d"
    assert cli.main(["fetch", "commonpool", "--dest", str(dest), "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert cli.main(["fetch", "commonpool", "--dest", str(dest), "--metadata-dir", str(tmp_path / "x")]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.Table.from_pylist([{"uid": "0" * 32, "text": "no url column"}]), bad / "0.parquet")
    assert cli.main(["fetch", "commonpool", "--dest", str(dest), "--metadata-dir", str(bad)]) == 2
    assert "missing columns ['url']" in capsys.readouterr().err
    no_boxes = tmp_path / "no_boxes"
    no_boxes.mkdir()
    pq.write_table(pa.Table.from_pylist([{"uid": "0" * 32, "url": "http://127.0.0.1:9/a.jpg", "text": "t"}]), no_boxes / "0.parquet")  # fmt: skip
    assert cli.main(["fetch", "commonpool", "--dest", str(dest), "--metadata-dir", str(no_boxes)]) == 2
    assert "missing columns ['face_bboxes']" in capsys.readouterr().err
    assert not dest.exists()
