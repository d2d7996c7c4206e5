"""``sciclip fetch arxiv`` against a local S3 server (moto) holding a manifest and bulk tars."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import uuid
from pathlib import Path

import pytest
from fetch_servers import record_requests

from sciclip_utils import cli
from sciclip_utils.commonpool import read_metadata
from sciclip_utils.fetch.arxiv import DONE_LIST, fetch_arxiv, plan_tars
from sciclip_utils.fetch.transfer import GB, ChecksumError, S3Bucket, s3_client


def _bulk_tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _manifest(tars: dict[str, bytes], md5: dict[str, str] | None = None) -> bytes:
    entries = ""
    for name, data in tars.items():
        yymm = name.split("_")[2]
        digest = (md5 or {}).get(name, hashlib.md5(data).hexdigest())
        entries += (
            f"<file><content_md5sum>x</content_md5sum><filename>src/{name}</filename><first_item>a</first_item>"
            f"<last_item>b</last_item><md5sum>{digest}</md5sum><num_items>1</num_items>"
            f"<seq_num>{name[-7:-4]}</seq_num><size>{len(data)}</size>"
            f"<timestamp>2023-01-01 00:00:00</timestamp><yymm>{yymm}</yymm></file>\n"
        )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<arXivSRC>\n{entries}</arXivSRC>\n'.encode()


def _upload(endpoint: str, tars: dict[str, bytes], manifest: bytes | None = None) -> S3Bucket:
    client = s3_client(endpoint)
    name = f"arxiv-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="src/arXiv_src_manifest.xml", Body=manifest or _manifest(tars))
    for tar_name, data in tars.items():
        client.put_object(Bucket=name, Key=f"src/{tar_name}", Body=data)
    return S3Bucket(client, name, requester_pays=True)


def _random_tars(months: list[str], size: int = 300_000) -> dict[str, bytes]:
    return {
        f"arXiv_src_{yymm}_{seq:03d}.tar": _bulk_tar({f"{yymm}/{yymm}.{seq:05d}.gz": os.urandom(size)})
        for yymm in months
        for seq in (1, 2)
    }


def test_selects_months_prints_cost_verifies_md5_and_pays_as_requester(
    s3_endpoint: str, tmp_path: Path
) -> None:
    tars = _random_tars(["2211", "2301", "2302", "2303"])
    bucket = _upload(s3_endpoint, tars)
    seen = record_requests(bucket.client)
    lines: list[str] = []
    plan = fetch_arxiv(bucket, tmp_path, start="2301", end="2302", dry_run=True, log=lines.append)
    wanted = [f"arXiv_src_{m}_{s:03d}.tar" for m in ("2301", "2302") for s in (1, 2)]
    assert [tar.name for tar in plan.selected] == wanted
    nbytes = sum(len(tars[name]) for name in wanted)
    assert lines[0] == (
        f"arXiv bulk sources: 4 tars, {nbytes / GB:,.2f} GB, estimated transfer cost "
        f"${nbytes / GB * 0.09:,.2f} at $0.090/GB (requester pays; none within us-east-1)"
    )
    assert list(tmp_path.iterdir()) == []  # dry run: nothing written

    result = fetch_arxiv(bucket, tmp_path, start="2301", end="2302", log=lines.append)
    assert result.outcomes == dict.fromkeys(wanted, "downloaded")
    for name in wanted:
        assert (tmp_path / name).read_bytes() == tars[name]
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == wanted
    assert seen and all(headers.get("x-amz-request-payer") == "requester" for _, _, headers in seen)
    assert any(url.endswith("/src/arXiv_src_2301_001.tar") for _, url, _ in seen)


def test_max_gb_cuts_the_selection_in_manifest_order(s3_endpoint: str) -> None:
    tars = _random_tars(["2301", "2302"], size=100_000)
    manifest = _manifest(tars)
    one = len(next(iter(tars.values())))
    selected, over = plan_tars(manifest, "2301", "2302", max_gb=2.5 * one / GB)
    assert [t.name for t in selected] == ["arXiv_src_2301_001.tar", "arXiv_src_2301_002.tar"]
    assert [t.name for t in over] == ["arXiv_src_2302_001.tar", "arXiv_src_2302_002.tar"]
    assert plan_tars(manifest, "2303", None) == ([], [])


def test_a_corrupted_tar_is_fetched_again(s3_endpoint: str, tmp_path: Path) -> None:
    tars = _random_tars(["2301"])
    bucket = _upload(s3_endpoint, tars)
    fetch_arxiv(bucket, tmp_path, start="2301", end="2301", log=lambda _: None)
    target = tmp_path / "arXiv_src_2301_001.tar"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # same size, wrong md5
    target.write_bytes(bytes(data))
    again = fetch_arxiv(bucket, tmp_path, start="2301", end="2301", log=lambda _: None)
    assert again.outcomes == {"arXiv_src_2301_001.tar": "downloaded", "arXiv_src_2301_002.tar": "present"}
    assert target.read_bytes() == tars["arXiv_src_2301_001.tar"]


def test_an_object_that_never_matches_its_md5_fails(s3_endpoint: str, tmp_path: Path) -> None:
    tars = _random_tars(["2301"])
    bucket = _upload(s3_endpoint, tars, _manifest(tars, md5={"arXiv_src_2301_001.tar": "0" * 32}))
    with pytest.raises(ChecksumError, match="arXiv_src_2301_001.tar"):
        fetch_arxiv(bucket, tmp_path, start="2301", end="2301", log=lambda _: None)
    assert not (tmp_path / "arXiv_src_2301_001.tar").exists()
    assert not (tmp_path / "arXiv_src_2301_001.tar.part").exists()


class _Killed(Exception):
    pass


def test_a_download_killed_midway_resumes_with_a_range_request(s3_endpoint: str, tmp_path: Path) -> None:
    tars = _random_tars(["2301"], size=1_000_000)
    bucket = _upload(s3_endpoint, tars)
    bucket.chunk_bytes = 64 * 1024
    written = []

    def die_after_three_chunks(n: int) -> None:
        written.append(n)
        if len(written) == 3:
            raise _Killed

    with pytest.raises(_Killed):
        fetch_arxiv(
            bucket, tmp_path, start="2301", end="2301", progress=die_after_three_chunks, log=lambda _: None
        )
    part = tmp_path / "arXiv_src_2301_001.tar.part"
    done_bytes = part.stat().st_size
    assert done_bytes == sum(written) and 0 < done_bytes < len(tars["arXiv_src_2301_001.tar"])

    seen = record_requests(bucket.client)
    result = fetch_arxiv(bucket, tmp_path, start="2301", end="2301", log=lambda _: None)
    assert result.outcomes["arXiv_src_2301_001.tar"] == "resumed"
    assert (tmp_path / "arXiv_src_2301_001.tar").read_bytes() == tars["arXiv_src_2301_001.tar"]
    assert not part.exists()
    ranges = [h.get("range") for _, url, h in seen if url.endswith("arXiv_src_2301_001.tar")]
    assert ranges == [f"bytes={done_bytes}-"]


def test_extracts_each_tar_then_deletes_it(s3_endpoint: str, tmp_path: Path, fixtures_dir: Path) -> None:
    packages = sorted((fixtures_dir / "arxiv").glob("*.gz"))[:3]
    tars = {
        f"arXiv_src_23{m:02d}_001.tar": _bulk_tar({f"23{m:02d}/23{m:02d}.{i:05d}.gz": p.read_bytes()})
        for m, (i, p) in enumerate(enumerate(packages, start=1), start=1)
    }
    bucket = _upload(s3_endpoint, tars)
    dest, out = tmp_path / "downloads", tmp_path / "arxiv"
    options = {"workers": 0, "samples_per_shard": 64, "progress": False}
    result = fetch_arxiv(
        bucket, dest, start="2301", end="2312", extract_to=out, extract_options=options, log=lambda _: None
    )
    assert result.extracted == sorted(tars)
    assert not list(dest.glob("*.tar")) and not list(dest.glob("*.part"))
    assert (dest / DONE_LIST).read_text().split() == sorted(tars)
    pairs = read_metadata(out)
    assert len(pairs) > 0 and set(pairs["paper_id"]) <= {f"23{m:02d}.{m:05d}" for m in (1, 2, 3)}

    seen = record_requests(bucket.client)
    again = fetch_arxiv(
        bucket, dest, start="2301", end="2312", extract_to=out, extract_options=options, log=lambda _: None
    )
    assert again.selected == [] and again.already_extracted == sorted(tars)
    assert [url for _, url, _ in seen if url.endswith(".tar")] == []
    assert len(read_metadata(out)) == len(pairs)


def test_cli_dry_run_and_bad_months(s3_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bucket = _upload(s3_endpoint, _random_tars(["2301"], size=1000))
    args = ["fetch", "arxiv", "--dest", str(tmp_path / "d"), "--endpoint-url", s3_endpoint]
    assert cli.main([*args, "--bucket", bucket.name, "--from", "2301", "--to", "2301", "--dry-run"]) == 0
    assert "arXiv bulk sources: 2 tars" in capsys.readouterr().out
    assert cli.main([*args, "--bucket", bucket.name, "--from", "2302", "--to", "2301"]) == 2
    assert "--from 2302 is after --to 2301" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    assert cli.main([*args, "--bucket", "no-such-bucket", "--from", "2301", "--to", "2301"]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err
