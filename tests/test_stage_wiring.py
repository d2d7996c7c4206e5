"""Stages run from the CLI and from their notebook resolve the same parameters and folders; exact
duplicates are visible in the manifest; parquet-reading CLI runs exit cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sciclip_utils import cli
from sciclip_utils.commonpool import Record, read_metadata, write_dataset
from sciclip_utils.decontam import cli as decontam_cli
from sciclip_utils.decontam import decontamination_plan
from sciclip_utils.extract import cli as extract_cli
from sciclip_utils.extract import extraction_inputs
from sciclip_utils.extract.items import ItemResult, WorkItem
from sciclip_utils.extract.runner import run_extraction
from sciclip_utils.images import prepare_image
from sciclip_utils.profiles import paths, stage_params

REPO = Path(__file__).resolve().parents[1]


def _setup_cell_namespace(notebook: str, **parameters: object) -> dict:
    """Run a notebook's parameters cell, ``parameters`` injected after it (as papermill does), and its setup
    cell (the next code cell); the namespace they leave."""
    cells = [
        c
        for c in json.loads((REPO / "notebooks" / notebook).read_text())["cells"]
        if c["cell_type"] == "code"
    ]
    assert "parameters" in cells[0]["metadata"].get("tags", [])
    namespace: dict = {}
    exec("".join(cells[0]["source"]), namespace)
    namespace.update(parameters)
    exec("".join(cells[1]["source"]), namespace)
    return namespace


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))


@pytest.fixture
def run_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny profile's run folders under ``tmp_path``: sample-corpus inputs, an eval set, three sources."""
    monkeypatch.setenv("SCICLIP_RUNS", str(tmp_path))
    run = paths("tiny")
    for folder in (run.arxiv_inputs, run.pmc_inputs):
        folder.mkdir(parents=True)
    (run.evalsets / "shapes" / "circle").mkdir(parents=True)
    _image(0).save(run.evalsets / "shapes" / "circle" / "0.png")
    for number, source in enumerate(run.sources().values()):
        write_dataset([Record(prepare_image(_image(number + 1)), "a figure", "test", "p", "f")], source)
    return tmp_path


@pytest.mark.parametrize("source", ["arxiv", "pmc"])
def test_extract_cli_and_notebook_resolve_the_same_run(run_folders: Path, source: str) -> None:
    notebook = {"arxiv": "02_extract_arxiv.ipynb", "pmc": "03_extract_pmc.ipynb"}[source]
    argv = ["extract", source]
    from_cli = extract_cli.resolve(cli.build_parser(argv).parse_args(argv))
    from_notebook = _setup_cell_namespace(notebook)["run"]
    assert from_cli == from_notebook == extraction_inputs("tiny", source)
    assert from_cli.inputs == [getattr(paths("tiny"), f"{source}_inputs")]
    assert from_cli.out_dir == getattr(paths("tiny"), source)
    assert from_cli.params == stage_params("tiny", "extract")

    argv = ["extract", source, "--workers", "0", "--max-papers", "3", "--out", str(run_folders / "o")]
    overridden = extract_cli.resolve(cli.build_parser(argv).parse_args(argv))
    in_notebook = _setup_cell_namespace(notebook, workers=0, max_papers=3, out_dir=str(run_folders / "o"))
    assert overridden == in_notebook["run"]
    assert (overridden.params["workers"], overridden.params["max_papers"]) == (0, 3)


def test_decontaminate_cli_and_notebook_resolve_the_same_run(run_folders: Path) -> None:
    argv = ["decontaminate"]
    from_cli = decontam_cli.resolve(cli.build_parser(argv).parse_args(argv))
    from_notebook = _setup_cell_namespace("04_decontaminate.ipynb")["plan"]
    run = paths("tiny")
    assert from_cli == from_notebook == decontamination_plan("tiny")
    assert from_cli.sources == run.sources() and from_cli.against == [run.evalsets]
    assert from_cli.out_dirs == run.decontaminated_sources()
    assert from_cli.params == stage_params("tiny", "decontaminate")  # threshold 0.97, not dct's 0.757

    argv = ["decontaminate", "--threshold", "0.5", "--descriptor", "dct"]
    overridden = decontam_cli.resolve(cli.build_parser(argv).parse_args(argv))
    assert overridden == _setup_cell_namespace("04_decontaminate.ipynb", threshold=0.5)["plan"]
    assert overridden.params["threshold"] == 0.5


def test_missing_profile_inputs_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SCICLIP_RUNS", str(tmp_path))
    assert cli.main(["extract", "arxiv"]) == 2
    assert "generate the sample corpus first" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="missing inputs"):
        decontamination_plan("tiny")
    assert not any(tmp_path.rglob("*.tar"))


def _duplicating(item: WorkItem) -> ItemResult:
    """Paper ``a`` has two figures; ``b`` repeats a's first (same image and caption), ``c`` has only it."""
    figures = {"a": [(1, "Figure one."), (2, "Figure two.")], "b": [(1, "Figure one."), (3, "Three.")]}
    figures["c"] = [(1, "Figure  one.")]  # whitespace differs: still the same caption as written
    records = [
        Record(prepare_image(_image(seed)), text, "test", item.paper_id, f"fig{number}")
        for number, (seed, text) in enumerate(figures[item.paper_id], start=1)
    ]
    return ItemResult(records)


def test_exact_duplicates_are_recorded_in_the_manifest(tmp_path: Path) -> None:
    items = [WorkItem(key=name, input=name, paper_id=name) for name in ("a", "b", "c")]
    for attempt in range(2):  # the second run reads the assembled marker, not the parts
        summary = run_extraction(items, _duplicating, tmp_path, source="test", workers=0, progress=False)
        rows = summary.manifest.set_index("key")
        first_uid = read_metadata(tmp_path).set_index("figure_id").loc["fig1", "uid"]
        assert summary.pairs == len(read_metadata(tmp_path)) == 3, attempt
        assert rows.loc["a", ["status", "pairs_written", "pairs_duplicate"]].tolist() == ["ok", 2, 0]
        assert rows.loc["b", ["status", "pairs_written", "pairs_duplicate"]].tolist() == ["ok", 1, 1]
        assert list(rows.loc["b", "duplicate_of"]) == [first_uid]
        assert rows.loc["c", ["status", "stage", "pairs_written", "pairs_duplicate"]].tolist() == [
            "skipped", "duplicates", 0, 1,
        ]  # fmt: skip
        assert summary.counts == {"ok": 2, "skipped": 1, "failed": 0}


def test_parquet_reading_cli_runs_exit_cleanly(run_folders: Path) -> None:
    """``sciclip decontaminate`` reads the shards' parquet metadata, and its embedding cache, each run; with
    pyarrow's threaded reads through file objects, some runs aborted at exit (apache/arrow#34314)."""
    command = [sys.executable, "-m", "sciclip_utils.cli", "decontaminate", "--no-progress"]
    codes = [subprocess.run(command, capture_output=True, cwd=run_folders).returncode for _ in range(12)]
    assert codes == [0] * 12
    assert len(read_metadata(paths("tiny").decontaminated / "pmc")) == 1
