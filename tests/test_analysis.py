"""The dataset-analysis stage on real CommonPool folders: the generated micro corpus run through both
extractors, and a folder with only DataComp's columns."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sciclip_utils.analysis import captions
from sciclip_utils.analysis.figure_types import FIGURE_TYPES
from sciclip_utils.analysis.stage import TABLE1_COLUMNS, analyze
from sciclip_utils.cli import main
from sciclip_utils.commonpool import (
    Record,
    TarWriter,
    apply_uid_subset,
    load_uid_subset,
    make_uid,
    read_metadata,
    write_dataset,
)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The micro sample corpus, extracted, and analysed once with the classifier measured on its labels."""
    from sciclip_utils.extract import extract_arxiv, extract_pmc
    from sciclip_utils.sample_corpus import generate_sample_corpus

    root = tmp_path_factory.mktemp("analysis")
    corpus = root / "sample_corpus"
    generate_sample_corpus(corpus, seed=0, size="micro", workers=2)
    extract_arxiv([corpus / "arxiv"], root / "arxiv", workers=2, progress=False)
    extract_pmc([corpus / "pmc"], root / "pmc", workers=2, progress=False)
    sources = {"arxiv": root / "arxiv", "pmc": root / "pmc", "commonpool": corpus / "commonpool"}
    analysis = analyze(sources, root / "out", labels=corpus, workers=2)
    return {"sources": sources, "analysis": analysis, "out": root / "out"}


def test_table1_equals_values_computed_from_the_parquet_files(micro_run: dict) -> None:
    written = pd.read_csv(micro_run["out"] / "table1.csv").set_index("source")
    assert list(written.reset_index().columns) == TABLE1_COLUMNS
    for source, folder in micro_run["sources"].items():
        text = pd.concat(pq.read_table(p).to_pandas() for p in sorted((folder / "shards").glob("*.parquet")))[
            "text"
        ]
        chars, words = text.str.len(), text.map(lambda t: len(t.split()))
        row = written.loc[source]
        assert row["pairs"] == len(text) > 0
        assert row["mean_caption_chars"] == pytest.approx(chars.mean())
        assert row["median_caption_chars"] == pytest.approx(chars.median())
        assert row["mean_caption_words"] == pytest.approx(words.mean())
        assert sum(row[f"share_{kind}"] for kind in FIGURE_TYPES) == pytest.approx(1.0)
    # scientific captions are an order of magnitude longer than web alt text, as in the paper
    assert written.loc["arxiv", "mean_caption_chars"] > 5 * written.loc["commonpool", "mean_caption_chars"]
    paper = pd.read_csv(micro_run["out"] / "table1_paper.csv").set_index("source")
    assert paper.loc["pmc", "mean_caption_chars_paper"] == 464.91


def test_figure_type_classifier_reaches_90_percent_on_the_labelled_figures(micro_run: dict) -> None:
    evaluation = micro_run["analysis"].evaluation
    assert evaluation is not None
    assert set(evaluation["labelled_by_source"]) == {"arxiv", "pmc", "commonpool"}
    assert evaluation["labelled"] == int(evaluation["confusion"].to_numpy().sum()) > 200
    assert evaluation["accuracy"] >= 0.9, evaluation
    report = json.loads((micro_run["out"] / "report.json").read_text())
    assert report["evaluation"]["accuracy"] == pytest.approx(evaluation["accuracy"])
    assert (micro_run["out"] / "confusion.png").is_file() and (
        micro_run["out"] / "caption_lengths.png"
    ).is_file()


def test_a_type_subset_round_trips_through_apply_uid_subset(micro_run: dict, tmp_path: Path) -> None:
    types = pd.read_parquet(micro_run["out"] / "figure_types.parquet")
    subset = load_uid_subset(micro_run["out"] / "subsets" / "plot.npy")
    assert subset.dtype == np.dtype("u8,u8") and subset.tolist() == sorted(set(subset.tolist()))
    for source in ("arxiv", "pmc"):
        apply_uid_subset(micro_run["sources"][source], subset, tmp_path / source)
        expected = set(types.loc[(types["source"] == source) & (types["type"] == "plot"), "uid"])
        assert expected and set(read_metadata(tmp_path / source)["uid"]) == expected
    rest = load_uid_subset(micro_run["out"] / "subsets" / "no_plot.npy")
    assert len(subset) + len(rest) == len(types)


def test_truncation_share_on_captions_of_known_token_length() -> None:
    tokenizer = captions.clip_tokenizer()
    texts = [" ".join(["a"] * n) for n in (10, 75, 76, 150)]  # "a" is one BPE token
    counts = captions.token_counts(texts, tokenizer)
    assert counts.tolist() == [10, 75, 76, 150]
    ids = tokenizer(texts)  # open_clip itself: 75 text tokens fit between start and end, 76 do not
    assert int((ids[1] != 0).sum()) == 77 and int(ids[2, -1]) == tokenizer.eot_token_id
    result = captions.truncation(counts)
    assert result["truncated_share"] == 0.5
    assert result["tokens_lost_share_truncated"] == pytest.approx((1 / 76 + 75 / 150) / 2)
    assert result["tokens_lost_share"] == pytest.approx((1 / 76 + 75 / 150) / 4)


def test_text_quality_counts_numbers_units_and_maths() -> None:
    metadata = pd.DataFrame(
        {
            "text": [
                "Resistivity at 4.2 K versus field",
                "Scale bar: 50 µm.",
                "IMG_2041.JPG",
                r"Loss for $\alpha=0.1$",
                "γ ± σ",
            ]
        }
    )
    quality = captions.text_quality(metadata)
    assert quality["share_with_numbers"] == pytest.approx(4 / 5)
    assert quality["share_with_units"] == pytest.approx(2 / 5)  # "4.2 K", "50 µm"; not "2041.JPG"
    assert quality["share_with_latex_math"] == pytest.approx(1 / 5)
    assert quality["share_with_math_symbols"] == pytest.approx(1 / 5)
    assert quality["vocabulary"] == len({"resistivity", "at", "k", "versus", "field", "scale", "bar", "µm", "img",
                                         "jpg", "loss", "for", "alpha", "γ", "σ"})  # fmt: skip


def _datacomp_only_folder(folder: Path, count: int = 12) -> list[str]:
    """A CommonPool folder as another tool writes it: DataComp's columns only, json without our fields."""
    shards = folder / "shards"
    shards.mkdir(parents=True)
    tar, rows = TarWriter(shards / "00000000.tar"), []
    for index in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (20 * index, 120, 200)).save(buffer, format="JPEG")
        key, text = f"{index:09d}", f"a blue picture number {index}"
        uid = make_uid("web", "x", str(index), str(index))
        row = {"uid": uid, "key": key, "url": f"http://example.com/{index}.jpg", "text": text,
               "original_width": 64, "original_height": 48, "sha256": "0" * 64}  # fmt: skip
        tar.add(f"{key}.jpg", buffer.getvalue())
        tar.add(f"{key}.txt", text.encode())
        tar.add(f"{key}.json", json.dumps({"uid": uid, "key": key, "caption": text}).encode())
        rows.append(row)
    tar.close()
    pd.DataFrame(rows).to_parquet(shards / "00000000.parquet", index=False)
    return [row["uid"] for row in rows]


def test_a_folder_with_only_datacomp_columns_is_analysed_from_the_cli(tmp_path: Path) -> None:
    uids = _datacomp_only_folder(tmp_path / "webcrawl")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "webcrawl"), "--out", str(out), "--train-per-kind", "2"]) == 0
    table = pd.read_csv(out / "table1.csv")
    assert table["source"].tolist() == ["webcrawl"] and table["pairs"].tolist() == [12]
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert any("'license'" in note for note in notes) and any("'source'" in note for note in notes)
    every = [set(load_uid_subset(out / "subsets" / f"{kind}.npy").tolist()) for kind in FIGURE_TYPES]
    assert sum(len(s) for s in every) == len(uids)


def test_bad_input_fails_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .tar shards"):
        analyze([tmp_path / "empty"], tmp_path / "out")
    write_dataset([Record(Image.new("RGB", (8, 8)), "x", "s", "p", "f")], tmp_path / "one")
    with pytest.raises(FileNotFoundError):
        analyze([tmp_path / "one", tmp_path / "missing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
