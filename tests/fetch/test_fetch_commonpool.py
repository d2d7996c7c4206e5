"""``sciclip fetch commonpool``: metadata parquets from a local Hub-like server, images from a local web
server (some missing, one not an image, one opted out), written as CommonPool shards with the uids kept."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fetch_servers import file_server
from PIL import Image

from sciclip_utils import cli
from sciclip_utils.commonpool import iter_samples, read_metadata
from sciclip_utils.fetch.commonpool import blur_boxes
from sciclip_utils.images import prepare_image

REPO = "mlfoundations/datacomp_small"


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


def _metadata(root: Path, base: str) -> list[dict]:
    names = ["a.jpg", "missing.jpg", "b.png", "face.jpg", "broken.jpg", "noai.jpg", "c.webp"]
    rows = [
        {
            "uid": hashlib.md5(name.encode()).hexdigest(),
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


def test_downloads_the_pool_into_commonpool_shards_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    web = tmp_path / "web"
    files = _site(web)
    dest = tmp_path / "commonpool"
    with file_server(web) as (base, log):
        rows = _metadata(web, base)
        args = ["fetch", "commonpool", "--scale", "small", "--dest", str(dest), "--hf-endpoint", base]
        args += ["--threads", "2", "--samples-per-shard", "4"]
        assert cli.main([*args, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"CommonPool metadata ({REPO}): 2 parquet files" in out
        assert not dest.exists()

        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert (
            "CommonPool: 4/7 images in 2 shards (2 failed to download, 1 to resize; 0 shards already" in out
        )
        image_requests = [path for path, _ in log if path.startswith("/img/")]
        assert sorted(image_requests) == sorted(f"/img/{r['url'].rsplit('/', 1)[1]}" for r in rows)
        assert {headers["user-agent"] for path, headers in log if path.startswith("/img/")} == {
            "Mozilla/5.0 (X11; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0"
        }

        # a complete shard is skipped on a rerun; a shard without its stats file is downloaded again
        (dest / "shards" / "00000001_stats.json").unlink()
        log.clear()
        assert cli.main([*args, "--processes", "2"]) == 0
        assert "1 shards already complete" in capsys.readouterr().out
        assert sorted(p for p, _ in log if p.startswith("/img/")) == [
            "/img/broken.jpg",
            "/img/c.webp",
            "/img/noai.jpg",
        ]

    assert sorted(p.name for p in (dest / "metadata").iterdir()) == ["0a1b.parquet", "0c2d.parquet"]
    shards = sorted(p.name for p in (dest / "shards").iterdir())
    assert shards == [
        "00000000.parquet", "00000000.tar", "00000000_stats.json",
        "00000001.parquet", "00000001.tar", "00000001_stats.json", "sizes.json",
    ]  # fmt: skip
    stats = json.loads((dest / "shards" / "00000000_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]) == (
        4,
        3,
        1,
        0,
    )
    assert list(stats["status_dict"].values()) == [1] and "404" in next(iter(stats["status_dict"]))
    stats = json.loads((dest / "shards" / "00000001_stats.json").read_text())
    assert (stats["count"], stats["successes"], stats["failed_to_download"], stats["failed_to_resize"]) == (
        3,
        1,
        1,
        1,
    )
    assert "X-Robots-Tag" in " ".join(stats["status_dict"])
    assert json.loads((dest / "sizes.json").read_text()) == {"00000000.tar": 3, "00000001.tar": 1}

    by_uid = {row["uid"]: row for row in rows}
    samples = {s.uid: s for s in iter_samples(dest)}
    kept = ["a.jpg", "b.png", "face.jpg", "c.webp"]
    assert set(samples) == {hashlib.md5(n.encode()).hexdigest() for n in kept}
    # img2dataset's keys: shard * 10**ceil(log10(per shard)) + the row's index in its shard; failures leave gaps
    assert sorted(s.key for s in samples.values()) == [
        "000000000000",
        "000000000002",
        "000000000003",
        "000000000012",
    ]
    for uid, sample in samples.items():
        name = by_uid[uid]["url"].rsplit("/", 1)[1]
        image = Image.open(io.BytesIO(sample.jpg))
        original = Image.open(io.BytesIO(files[name]))
        assert image.format == "JPEG" and max(image.size) == min(512, max(original.size))
        assert sample.text == f"caption of {name}"
        assert sample.json["original_width"] == original.size[0]
    metadata = read_metadata(dest).set_index("uid")
    assert metadata.loc[hashlib.md5(b"c.webp").hexdigest(), "clip_b32_similarity_score"] == pytest.approx(
        0.31
    )
    assert set(metadata["url"]) == {by_uid[uid]["url"] for uid in samples}

    face = samples[hashlib.md5(b"face.jpg").hexdigest()].jpg
    plain = prepare_image(files["face.jpg"]).jpeg
    assert _box_detail(face) < 0.5 * _box_detail(plain)  # the face box is blurred
    assert _corner_detail(face) == pytest.approx(_corner_detail(plain), rel=0.05)  # the rest is not


def _grey(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def _box_detail(jpeg: bytes) -> float:
    return float(np.abs(np.diff(_grey(jpeg)[192:320, 192:320], axis=1)).mean())


def _corner_detail(jpeg: bytes) -> float:
    return float(np.abs(np.diff(_grey(jpeg)[:64, :64], axis=1)).mean())


def test_blur_without_boxes_changes_nothing_visible() -> None:
    jpeg = prepare_image(_noise(200, 100, 7)).jpeg
    assert np.abs(_grey(blur_boxes(jpeg, [])) - _grey(jpeg)).mean() < 2.0


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
    assert not dest.exists()
