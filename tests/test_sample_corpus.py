"""The generated sample corpus: determinism, real formats, clip_benchmark loading, extractors agree with it."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sciclip_utils.cli import main
from sciclip_utils.sample_corpus import CorpusSummary, generate_sample_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusSummary]:
    """The tiny corpus, generated once per test session."""
    out = tmp_path_factory.mktemp("corpus") / "sample_corpus"
    return out, generate_sample_corpus(out, seed=0, size="tiny", workers=2)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    first, other = tmp_path / "a", tmp_path / "b"
    assert main(["sample-corpus", str(first), "--size", "micro", "--seed", "3"]) == 0
    digests = _digests(first)
    assert len(digests) > 40
    (first / "arxiv" / "stale.tar").write_bytes(b"old")
    (first / "keep.txt").write_text("not a corpus part")
    generate_sample_corpus(first, seed=3, size="micro", workers=1)  # the worker count does not matter
    assert (first / "keep.txt").read_text() == "not a corpus part"
    assert _digests(first) == {**digests, "keep.txt": hashlib.sha256(b"not a corpus part").hexdigest()}
    generate_sample_corpus(other, seed=4, size="micro")
    different = _digests(other)
    binary = [name for name in digests if name.endswith((".tar", ".gz", ".parquet", ".jpg"))]
    assert binary and all(different.get(name) != digests[name] for name in binary)
    assert set(different) != set(digests)  # new arXiv/PMC ids, new file names
    with pytest.raises(ValueError, match="known sizes"):
        generate_sample_corpus(other, size="huge")


def test_arxiv_bulk_tars_and_manifest(tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    from lxml import etree

    out, summary = tiny_corpus
    manifest = etree.parse(str(out / "arxiv" / "arXiv_src_manifest.xml")).getroot()
    assert manifest.tag == "arXivSRC"
    entries = manifest.findall("file")
    assert [e.findtext("filename") for e in entries] == [f"src/{name}" for name in summary.arxiv["tars"]]
    total = 0
    for entry in entries:
        path = out / "arxiv" / entry.findtext("filename").removeprefix("src/")
        data = path.read_bytes()
        assert re.fullmatch(r"arXiv_src_\d{4}_\d{3}\.tar", path.name)
        assert entry.findtext("md5sum") == hashlib.md5(data).hexdigest()
        assert int(entry.findtext("size")) == len(data)
        with tarfile.open(path) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert all(re.fullmatch(rf"{entry.findtext('yymm')}/\d{{4}}\.\d{{5}}\.(gz|pdf)", n) for n in names)
        assert int(entry.findtext("num_items")) == len(names)
        assert (entry.findtext("first_item"), entry.findtext("last_item")) == (
            Path(names[0]).stem,
            Path(names[-1]).stem,
        )
        assert {m.mtime for m in members} == {1_672_531_200} and {m.uname for m in members} == {""}
        total += len(names)
    assert total == summary.arxiv["papers"]
    assert summary.arxiv["expected_pairs"] in range(300, 601)
    formats = summary.formats["arxiv"]
    assert {"pdf", "eps", "png", "jpg"} <= set(formats) and min(formats.values()) >= 10


def _paper_files(out: Path) -> dict[str, dict[str, bytes]]:
    """Every submission of the bulk tars: id -> {file name: bytes} (a single .tex or a PDF as one file)."""
    papers = {}
    for bulk in sorted((out / "arxiv").glob("*.tar")):
        with tarfile.open(bulk) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                paper_id = Path(member.name).stem
                if data[:4] == b"%PDF":
                    papers[paper_id] = {"paper.pdf": data}
                    continue
                assert data[3] & 0x08 == 0 and data[4:8] == b"\0\0\0\0", "gzip header with a name or mtime"
                raw = gzip.decompress(data)
                if raw.startswith(b"\\documentclass"):
                    papers[paper_id] = {"paper.tex": raw}
                    continue
                with tarfile.open(fileobj=io.BytesIO(raw)) as inner:
                    papers[paper_id] = {
                        m.name.removeprefix("./"): inner.extractfile(m).read()
                        for m in inner.getmembers()
                        if m.isfile()
                    }
    return papers


def test_arxiv_papers_use_the_constructs_of_real_papers(tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    out, summary = tiny_corpus
    papers = _paper_files(out)
    tex = "\n".join(
        data.decode() for files in papers.values() for name, data in files.items() if name.endswith(".tex")
    )
    for construct in (r"\input{sections/", r"\graphicspath{", r"\newcommand{\vq}[1]", r"\def\method",
                      r"\newcommand{\sigmaX}[1][8]", r"\begin{figure*}", r"\begin{subfigure}", r"\subfloat[",
                      r"\iffalse", r"\begin{comment}", "% \\begin{figure}", r"\begin{tikzpicture}",
                      r"\begin{algorithmic}", r"\plotone{", r"\epsfig{file=", r"\begin{wrapfigure}", r"\cite{",
                      r"Fig.~\ref{", "$R^2", r"\caption[", "%\n    {", r"\include{"):  # fmt: skip
        assert construct in tex, construct
    assert re.search(r"\\includegraphics(\[[^\]]*\])?\{[^}.]+\}", tex), "extension-less includes"
    assert re.search(r"\\includegraphics(\[[^\]]*\])?\{[^}]+\.eps\}", tex), ".eps asked"
    names = [name for files in papers.values() for name in files]
    assert any(re.search(r"(_old|old-|draft)", name) for name in names)
    assert any(name.startswith("._") for name in names) and any("unused_plot" in name for name in names)
    constructs = summary.arxiv["constructs"]
    for key in ("eps-asked-pdf-shipped", "composite", "subfigures", "old-draft-tex", "unreferenced-image"):
        assert constructs.get(key, 0) >= 1, key
    kinds = {entry["kind"] for entry in summary.arxiv["skipped"]}
    assert kinds == {"pdf-only", "single-tex"}
    for files in papers.values():  # every graphic a float names is shipped, under LaTeX's lookup rules
        text = b"".join(data for name, data in files.items() if name.endswith(".tex"))
        folders = [b""] + re.findall(rb"\\graphicspath\{\{([^}]*)\}", text)
        for target in re.findall(rb"\\includegraphics(?:\[[^\]]*\])?%?\s*\{([^}]+)\}", text):
            stems = [(folder + target).decode().removesuffix(".eps") for folder in folders]
            assert any(f == stem or f.startswith(stem + ".") for f in files for stem in stems), stems


def test_pmc_packages_and_file_list(tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    from lxml import etree

    out, summary = tiny_corpus
    pmc = out / "pmc"
    rows = list(csv.DictReader((pmc / "oa_file_list.csv").open()))
    assert list(rows[0]) == ["File", "Article Citation", "Accession ID", "Last Updated (YYYY-MM-DD HH:MM:SS)",
                             "PMID", "License"]  # fmt: skip
    assert {"CC BY", "CC BY-NC", "CC0", "NO-CC CODE"} <= {row["License"] for row in rows}
    packages = sorted(pmc.glob("PMC*.tar.gz"))
    folders = sorted(p for p in pmc.glob("PMC*.*") if p.is_dir())
    assert packages and folders and len(rows) == len(packages) + len(folders) == summary.pmc["inputs"]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    documents = []
    for package in packages:
        with tarfile.open(package) as tar:
            names = tar.getnames()
            pmcid = package.name.removesuffix(".tar.gz")
            assert all(name.startswith(f"{pmcid}/") for name in names)
            nxml = [n for n in names if n.endswith(".nxml")]
            assert (
                len(nxml) == 1
                and any(n.endswith(".gif") for n in names)
                and any(n.endswith(".pdf") for n in names)
            )
            documents.append(tar.extractfile(nxml[0]).read())
    for folder in folders:
        documents.append((folder / f"{folder.name}.xml").read_bytes())
        assert not list(folder.glob("*.gif"))
    text = b"".join(documents)
    for construct in (b"<floats-group>", b"<fig-group>", b"<inline-formula><tex-math>", b"<mml:math>",
                      b"<disp-formula", b"<table-wrap", b"<boxed-text", b"<app ", b"content-type=\"thumb\"",
                      b"<sub-article", b"<license ", b"<caption><title>"):  # fmt: skip
        assert construct in text, construct
    for document in documents:
        root = etree.fromstring(document, parser)
        assert root.tag == "article" and root.find(".//article-meta/permissions/license") is not None
    assert summary.pmc["expected_pairs"] in range(200, 401)
    assert {entry["reason"].split()[0] for entry in summary.pmc["skipped"]} == {"superseded"}


def test_web_pool_is_commonpool_with_short_noisy_alt_texts(tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    from sciclip_utils.commonpool import read_metadata

    out, summary = tiny_corpus
    metadata = read_metadata(out / "commonpool")
    assert len(metadata) == summary.commonpool["written"] == summary.commonpool["images"]
    assert (metadata.source == "commonpool").all() and metadata.uid.str.fullmatch("[0-9a-f]{32}").all()
    assert 15 <= metadata.caption_chars.mean() <= 40
    assert 0.15 <= summary.commonpool["noisy_captions"] / len(metadata) <= 0.25
    assert metadata.text.str.contains("circle|square|triangle|star|hexagon").mean() > 0.3
    planted = [plant for plant in summary.near_duplicates if plant["target"] == "commonpool"]
    rows = metadata.set_index("uid").loc[[plant["uid"] for plant in planted]]
    assert list(rows.figure_id) == [plant["figure_id"] for plant in planted]


def test_printed_digits_are_legible_at_the_tiny_models_resolution_and_a_quarter_of_the_pool(
    tiny_corpus: tuple[Path, CorpusSummary],
) -> None:
    from sciclip_utils.commonpool import read_metadata

    out, summary = tiny_corpus
    members = _tar_members(out / "evalsets" / "digits" / "test" / "0.tar")
    luma = np.array([0.299, 0.587, 0.114])
    for name, data in members.items():
        if not name.endswith(".jpg"):
            continue
        pixels = (
            np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64)), dtype=np.float32) @ luma
        )
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        glyph_contrast = np.percentile(np.abs(pixels - np.median(border)), 97)  # the glyph covers > 3 %
        assert glyph_contrast >= 60, f"{name}: the digit barely stands out ({glyph_contrast:.0f})"
    texts = read_metadata(out / "commonpool").text
    digit_captions = texts.str.fullmatch(
        r"(?:the |a sign with the |house )?(?:number |digit )?\d(?: sign| sticker)?"
    )
    assert 0.2 <= digit_captions.mean() <= 0.3  # 30 % of the images are digits, 20 % of alt texts noise
    assert summary.commonpool["kinds"]["digit"] / summary.commonpool["images"] >= 0.25


def test_eval_sets_load_through_clip_benchmark(tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    from clip_benchmark.datasets.builder import build_dataset
    from torchvision import transforms

    out, summary = tiny_corpus
    transform = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
    for task in ("shapes", "plot_types", "digits"):
        dataset = build_dataset(dataset_name=f"wds/{task}", root=str(out / "evalsets" / task), transform=transform,
                                split="test", download=False)  # fmt: skip
        classnames = (out / "evalsets" / task / "classnames.txt").read_text().split("\n")[:-1]
        assert dataset.classes == classnames and all("{c}" in template for template in dataset.templates)
        samples = list(dataset)
        assert len(samples) == summary.evalsets[task]["samples"]
        assert {int(label) for _, label in samples} == set(range(len(classnames)))
        assert samples[0][0].shape == (3, 32, 32)
    retrieval = build_dataset(dataset_name="wds/figure_retrieval", root=str(out / "evalsets" / "figure_retrieval"),
                              transform=transform, split="test", task="zeroshot_retrieval", download=False)  # fmt: skip
    pairs = list(retrieval)
    assert len(pairs) == summary.evalsets["figure_retrieval"]["samples"]
    assert all(len(captions) == 2 and all(captions) for _, captions in pairs)


def _tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _pixels(data: bytes) -> str:
    return hashlib.sha256(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).tobytes()).hexdigest()


def test_eval_images_are_held_out_and_the_near_duplicates_are_where_the_summary_says(
    tiny_corpus: tuple[Path, CorpusSummary],
) -> None:
    from sciclip_utils.sample_corpus.eval import eval_sample, planted_image_bytes, transform_image

    out, summary = tiny_corpus
    images = (".jpg", ".png")
    evals = {
        data
        for task in summary.evalsets
        for name, data in _tar_members(out / "evalsets" / task / "test" / "0.tar").items()
        if name.endswith(images)
    }
    web = {}
    for shard in sorted((out / "commonpool" / "shards").glob("*.tar")):
        members = _tar_members(shard)
        for name, data in members.items():
            if name.endswith(".json"):
                web[json.loads(data)["figure_id"]] = members[name.replace(".json", ".jpg")]
    papers = _paper_files(out)
    articles = {}
    for package in (out / "pmc").glob("*.tar.gz"):
        articles[package.name.split(".")[0]] = {Path(n).name: d for n, d in _tar_members(package).items()}
    for folder in (out / "pmc").glob("PMC*.*/"):
        articles.setdefault(folder.name.split(".")[0], {}).update(
            {p.name: p.read_bytes() for p in folder.iterdir()}
        )
    train = list(web.values()) + [
        data
        for files in [*papers.values(), *articles.values()]
        for name, data in files.items()
        if name.endswith(images)
    ]
    assert not evals & set(train)  # no eval file is shipped in a training source...
    assert not {_pixels(data) for data in evals} & {_pixels(data) for data in train}  # ...nor its pixels

    assert len(summary.near_duplicates) == 5
    for plant in summary.near_duplicates:
        copy, _ = planted_image_bytes(
            summary.seed, plant["eval_task"], plant["eval_index"], plant["transform"]
        )
        if plant["target"] == "commonpool":  # re-encoded by the CommonPool writer
            original, _, _ = eval_sample(summary.seed, plant["eval_task"], plant["eval_index"])
            expected = np.asarray(transform_image(original, plant["transform"])[0], dtype=np.float32)
            stored = np.asarray(
                Image.open(io.BytesIO(web[plant["figure_id"]])).convert("RGB"), dtype=np.float32
            )
            assert stored.shape == expected.shape and np.abs(stored - expected).mean() < 6
        else:
            files = papers[plant["paper_id"]] if plant["target"] == "arxiv" else articles[plant["paper_id"]]
            assert copy in files.values(), plant


@pytest.fixture(scope="session")
def tiny_extracted(tiny_corpus: tuple[Path, CorpusSummary], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny corpus run through both extractors, once per test session."""
    from sciclip_utils.extract import extract_arxiv, extract_pmc

    out, _ = tiny_corpus
    folder = tmp_path_factory.mktemp("extracted")
    return {
        "arxiv": extract_arxiv([out / "arxiv"], folder / "arxiv", workers=2, progress=False),
        "pmc": extract_pmc([out / "pmc"], folder / "pmc", workers=2, progress=False),
        "folder": folder,
    }


def test_extractors_read_the_corpus_with_only_the_planted_skips(
    tiny_corpus: tuple[Path, CorpusSummary], tiny_extracted: dict
) -> None:
    from sciclip_utils.commonpool import read_metadata

    out, summary = tiny_corpus
    arxiv, pmc, folder = tiny_extracted["arxiv"], tiny_extracted["pmc"], tiny_extracted["folder"]
    manifest = arxiv.manifest
    assert arxiv.counts.get("failed", 0) == 0, manifest[manifest.status == "failed"].to_dict("records")
    skipped = manifest[manifest.status == "skipped"]
    assert sorted(skipped.paper_id) == sorted(entry["id"] for entry in summary.arxiv["skipped"])
    ok = manifest[manifest.status == "ok"].set_index("paper_id").pairs_written.to_dict()
    assert ok == summary.arxiv["pairs_by_paper"]
    assert arxiv.pairs == summary.arxiv["expected_pairs"]
    ok_rows = manifest[manifest.status == "ok"].itertuples()
    problems = {(row.paper_id, problem.split(":")[0]) for row in ok_rows for problem in row.problems}
    assert problems == {(entry["id"], entry["figure"]) for entry in summary.arxiv["figure_skips"]}

    manifest = pmc.manifest
    assert pmc.counts.get("failed", 0) == 0, manifest[manifest.status == "failed"].to_dict("records")
    skipped = manifest[manifest.status == "skipped"]
    assert sorted(Path(p).name for p in skipped.input) == sorted(
        e["input"].rstrip("/") for e in summary.pmc["skipped"]
    )
    ok = manifest[manifest.status == "ok"].set_index("paper_id").pairs_written.to_dict()
    assert ok == summary.pmc["pairs_by_article"]
    assert pmc.pairs == summary.pmc["expected_pairs"]

    extracted = {
        (source, row.paper_id, row.figure_id)
        for source in ("arxiv", "pmc")
        for row in read_metadata(folder / source).itertuples()
    }
    for plant in summary.near_duplicates:
        if plant["target"] in ("arxiv", "pmc"):
            assert (plant["target"], plant["paper_id"], plant["figure_id"]) in extracted, plant
    summary_file = json.loads((out / "corpus_summary.json").read_text())
    assert summary_file["near_duplicates"] == summary.near_duplicates


def test_decontamination_at_the_tiny_profile_removes_the_planted_near_duplicates(
    tiny_corpus: tuple[Path, CorpusSummary], tiny_extracted: dict, tmp_path: Path
) -> None:
    from sciclip_utils.commonpool import read_metadata
    from sciclip_utils.decontam import decontaminate
    from sciclip_utils.profiles import stage_params

    out, summary = tiny_corpus
    profile = stage_params("tiny", "decontaminate")
    data = {"arxiv": tiny_extracted["folder"] / "arxiv", "pmc": tiny_extracted["folder"] / "pmc",
            "commonpool": out / "commonpool"}  # fmt: skip
    for source, data_dir in data.items():
        report = decontaminate(data_dir, [out / "evalsets"], tmp_path / source, progress=False,
                               descriptor=profile["descriptor"], threshold=profile["threshold"])  # fmt: skip
        meta = read_metadata(data_dir).set_index("uid")
        removed = {
            (str(meta.at[row.uid, "paper_id"]), str(meta.at[row.uid, "figure_id"])): (row.dedup_eval_set, Path(row.dedup_eval_image).stem)
            for row in report.scores[report.scores.removed].itertuples()
        }  # fmt: skip
        planted = {
            (plant["paper_id"], plant["figure_id"]): (plant["eval_task"], plant["eval_key"])
            for plant in summary.near_duplicates
            if plant["target"] == source
        }
        assert planted and {key: removed.get(key) for key in planted} == planted, (source, removed)
        assert len(removed) - len(planted) <= 0.01 * report.samples, (source, removed)


def test_reuse_keeps_a_complete_corpus_and_the_overview_counts_it(
    tiny_corpus: tuple[Path, CorpusSummary],
) -> None:
    out, summary = tiny_corpus
    before = _digests(out)
    assert generate_sample_corpus(out, seed=0, size="tiny", reuse=True) == CorpusSummary.load(out)
    assert _digests(out) == before
    overview = summary.overview()
    assert list(overview.index) == ["arXiv", "PMC", "web pool"]
    assert overview.loc["arXiv", "expected pairs"] == summary.arxiv["expected_pairs"]
    assert overview.loc["PMC", "planted skips"] == len(summary.pmc["skipped"])
    assert overview.loc["web pool", "items"] == summary.commonpool["images"]
