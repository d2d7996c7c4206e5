"""``sciclip fetch pmc``: the 2026 per-version layout and the legacy packages, served by a local S3 server
(moto) and a local HTTP server; what is downloaded must be what ``extract_pmc`` reads."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest
from fetch_servers import file_server, record_requests

from sciclip_utils import cli
from sciclip_utils.commonpool import read_metadata
from sciclip_utils.extract import extract_pmc
from sciclip_utils.fetch.pmc import Selection, Source, fetch_pmc
from sciclip_utils.fetch.transfer import S3Bucket, s3_client

JATS = b"""<?xml version="1.0"?><article xmlns:xlink="http://www.w3.org/1999/xlink"><front><article-meta>
<article-id pub-id-type="pmc">{n}</article-id></article-meta></front><body><fig id="f1"><caption><p>A
caption.</p></caption><graphic xlink:href="g{n}"/></fig></body></article>"""


def _bucket(endpoint: str) -> S3Bucket:
    """A world-readable bucket, like pmc-oa-opendata."""
    client = s3_client(endpoint)
    name = f"pmc-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    public = {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"]}
    policy = {
        "Version": "2012-10-17",
        "Statement": [{**public, "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}],
    }
    client.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return S3Bucket(client, name)


def _put_version(
    bucket: S3Bucket, name: str, files: dict[str, bytes], metadata: dict | None, in_folder: bool = True
) -> None:
    """One ``PMCnnn.V/`` folder as the 2026 bucket has it: XML, media, PDF, text and the metadata JSON
    (in the folder or under ``metadata/``) whose URLs carry each file's md5."""
    pmcid, version = name.split(".")
    files = {**files, f"{name}.pdf": b"%PDF-1.4 stand-in", f"{name}.txt": b"plain text"}
    for base, data in files.items():
        bucket.client.put_object(Bucket=bucket.name, Key=f"{name}/{base}", Body=data)
    if metadata is None:
        return

    def url(base: str) -> str:
        return f"s3://pmc-oa-opendata/{name}/{base}?md5={hashlib.md5(files[base]).hexdigest()}"

    record = {
        "pmcid": pmcid,
        "version": int(version),
        "is_pmc_openaccess": True,
        "is_retracted": False,
        "is_manuscript": False,
        "citation": f"Fixture. 2024; {pmcid}",
        "pmid": 1,
        "xml_url": url(f"{name}.xml"),
        "pdf_url": url(f"{name}.pdf"),
        "text_url": url(f"{name}.txt"),
        "media_urls": [url(base) for base in files if base.endswith(".jpg")],
        **metadata,
    }
    key = f"{name}/{name}.json" if in_folder else f"metadata/{name}.json"
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=json.dumps(record).encode())


def _synthetic(n: int) -> dict[str, bytes]:
    return {
        f"PMC{n}.1.xml": JATS.replace(b"{n}", str(n).encode()),
        f"g{n}.jpg": b"\xff\xd8jpeg" + bytes(n % 7),
    }


def test_current_layout_selection(s3_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bucket = _bucket(s3_endpoint)
    _put_version(bucket, "PMC100.1", _synthetic(100), {"license_code": "CC BY"})
    _put_version(bucket, "PMC101.1", _synthetic(101), {"license_code": "CC BY"})
    v2 = {k.replace("PMC101.1", "PMC101.2"): v for k, v in _synthetic(101).items()}
    _put_version(bucket, "PMC101.2", v2, {"license_code": "CC BY", "version": 2})
    _put_version(bucket, "PMC102.1", _synthetic(102), {"license_code": "CC BY-NC"}, in_folder=False)
    _put_version(bucket, "PMC103.1", _synthetic(103), {"license_code": "CC0", "is_retracted": True})
    _put_version(bucket, "PMC104.1", _synthetic(104), {"license_code": "CC BY", "is_pmc_openaccess": False})
    bucket.client.put_object(Bucket=bucket.name, Key="README.txt", Body=b"readme")
    source = Source(f"s3://{bucket.name}/", bucket=bucket)
    quiet = {"log": lambda _: None}

    plan = fetch_pmc(source, tmp_path / "plan", dry_run=True, **quiet)
    assert [a.name for a in plan.selected] == ["PMC100.1", "PMC101.2", "PMC102.1"]
    assert plan.skipped == {"retracted": 1, "not in the OA subset": 1}
    assert not (tmp_path / "plan").exists()

    commercial = fetch_pmc(source, tmp_path / "c", selection=Selection("commercial"), dry_run=True, **quiet)
    assert [a.name for a in commercial.selected] == ["PMC100.1", "PMC101.2"]
    assert commercial.skipped["licence CC BY-NC not commercial"] == 1
    first = fetch_pmc(source, tmp_path / "c", selection=Selection(max_articles=1), dry_run=True, **quiet)
    assert [a.name for a in first.selected] == ["PMC100.1"]
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    assert (
        fetch_pmc(source, tmp_path / "c", selection=Selection(since=tomorrow), dry_run=True, **quiet).selected
        == []
    )

    cli_args = ["fetch", "pmc", "--source", f"s3://{bucket.name}/", "--endpoint-url", s3_endpoint]
    assert cli.main([*cli_args, "--dest", str(tmp_path / "cli"), "--license", "commercial", "--dry-run"]) == 0
    assert "PMC OA (current layout): 2 articles" in capsys.readouterr().out
    assert not (tmp_path / "cli").exists()

    dest = tmp_path / "pmc"
    result = fetch_pmc(source, dest, **quiet)
    assert sorted(p.name for p in dest.iterdir()) == ["PMC100.1", "PMC101.2", "PMC102.1", "oa_file_list.csv"]
    # XML, images and the metadata; not the PDF or the text
    assert sorted(p.name for p in (dest / "PMC101.2").iterdir()) == [
        "PMC101.2.json",
        "PMC101.2.xml",
        "g101.jpg",
    ]
    assert sorted(p.name for p in (dest / "PMC102.1").iterdir()) == [
        "PMC102.1.json",
        "PMC102.1.xml",
        "g102.jpg",
    ]
    assert set(result.outcomes.values()) == {"downloaded"}
    with open(dest / "oa_file_list.csv") as handle:
        rows = {row["Accession ID"]: row for row in csv.DictReader(handle)}
    assert {k: r["License"] for k, r in rows.items()} == {
        "PMC100": "CC BY",
        "PMC101": "CC BY",
        "PMC102": "CC BY-NC",
    }
    assert rows["PMC101"]["File"] == "PMC101.2/"

    (dest / "PMC100.1" / "g100.jpg").write_bytes(b"corrupted")  # a corrupted file is fetched again
    again = fetch_pmc(source, dest, **quiet)
    assert again.outcomes["PMC100.1/g100.jpg"] == "downloaded"
    assert {o for p, o in again.outcomes.items() if p != "PMC100.1/g100.jpg"} == {"present"}
    assert (dest / "PMC100.1" / "g100.jpg").read_bytes() == _synthetic(100)["g100.jpg"]


def test_current_layout_is_fetched_unsigned_and_extracts(
    s3_endpoint: str, tmp_path: Path, fixtures_dir: Path
) -> None:
    bucket = _bucket(s3_endpoint)
    licences = _fixture_licences(fixtures_dir)
    folders = sorted(p for p in (fixtures_dir / "pmc").iterdir() if p.is_dir())
    for folder in folders:
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        _put_version(bucket, folder.name, files, {"license_code": licences[folder.name.split(".")[0]]})
    unsigned = Source(f"s3://{bucket.name}/", s3_endpoint)  # the CLI's client: no credentials, no signature
    seen = record_requests(unsigned.bucket.client)
    dest = tmp_path / "pmc"
    fetch_pmc(unsigned, dest, threads=4, log=lambda _: None)
    assert seen and not any("authorization" in headers for _, _, headers in seen)
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == [f.name for f in folders]

    summary = extract_pmc([dest], tmp_path / "out", workers=0, samples_per_shard=64, progress=False)
    expected = extract_pmc(folders, tmp_path / "direct", workers=0, samples_per_shard=64, progress=False)
    assert summary.pairs == expected.pairs > 0
    pairs = read_metadata(tmp_path / "out")
    assert set(pairs["license"]) == {"CC BY"}


def test_legacy_packages_over_s3_and_http(s3_endpoint: str, tmp_path: Path, fixtures_dir: Path) -> None:
    """A mirror of the legacy layout: oa_file_list.csv (one package relicensed CC BY-NC) + oa_package/."""
    mirror = tmp_path / "mirror"
    rows = list(csv.reader(open(fixtures_dir / "pmc" / "oa_file_list.csv")))
    packages = [row for row in rows[1:] if row[0].endswith(".tar.gz")]
    packages[1][5] = "CC BY-NC"
    for row in packages:
        (mirror / row[0]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixtures_dir / "pmc" / Path(row[0]).name, mirror / row[0])
    with open(mirror / "oa_file_list.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *rows[1:]])

    bucket = _bucket(s3_endpoint)
    for path in mirror.rglob("*"):
        if path.is_file():
            key = f"deprecated/{path.relative_to(mirror)}"
            bucket.client.put_object(Bucket=bucket.name, Key=key, Body=path.read_bytes())
    source = Source(f"s3://{bucket.name}/deprecated/", bucket=bucket)
    dest = tmp_path / "s3"
    result = fetch_pmc(source, dest, layout="legacy", selection=Selection(max_articles=4), log=lambda _: None)
    assert [a.name for a in result.selected] == [Path(row[0]).name for row in packages[:4]]
    for article in result.selected:
        assert (dest / article.name).read_bytes() == (mirror / next(iter(article.files))).read_bytes()

    with file_server(mirror) as (base, log):
        http = tmp_path / "http"
        chosen = fetch_pmc(
            Source(base + "/"), http, layout="legacy", selection=Selection("commercial"), log=lambda _: None
        )
    assert any(path.endswith("oa_file_list.csv") for path, _ in log)
    commercial = [Path(row[0]).name for row in packages if row[5] != "CC BY-NC"]
    assert sorted(p.name for p in http.glob("*.tar.gz")) == sorted(commercial)
    assert chosen.skipped["licence CC BY-NC not commercial"] == 1
    with open(http / "oa_file_list.csv") as handle:
        listed = {row["Accession ID"]: row["License"] for row in csv.DictReader(handle)}
    assert listed == {row[2]: row[5] for row in packages if row[5] != "CC BY-NC"}

    summary = extract_pmc([http], tmp_path / "out", workers=0, samples_per_shard=64, progress=False)
    assert summary.pairs > 0
    assert set(read_metadata(tmp_path / "out")["license"]) == {"CC BY", "CC0"}


def test_cli_checks_options_before_fetching(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "d"
    assert cli.main(["fetch", "pmc", "--dest", str(dest), "--layout", "legacy"]) == 2
    assert "--layout legacy needs --source" in capsys.readouterr().err
    assert cli.main(["fetch", "pmc", "--dest", str(dest), "--max-articles", "0"]) == 2
    assert cli.main(["fetch", "pmc", "--dest", str(dest), "--source", "ftp://x/", "--layout", "legacy"]) == 2
    assert "source must be s3://" in capsys.readouterr().err
    assert not dest.exists()


def _fixture_licences(fixtures_dir: Path) -> dict[str, str]:
    with open(fixtures_dir / "pmc" / "oa_file_list.csv") as handle:
        return {row["Accession ID"]: row["License"] for row in csv.DictReader(handle)}
