"""The papermill runner, profiles and the CLI shell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from sciclip_utils import cli, profiles
from sciclip_utils.notebooks import NotebookError, run_notebooks

REPO = Path(__file__).resolve().parents[1]


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    params = nbformat.v4.new_code_cell('profile = "tiny"\nanswer = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


def test_profiles_are_complete_and_overridable() -> None:
    assert {"tiny", "small", "medium"} <= set(profiles.PROFILES)
    small = profiles.stage_params("small", "train")
    assert (small["model"], small["batch_size"], small["lr"], small["warmup"]) == (
        "ViT-B-32",
        4096,
        5e-4,
        500,
    )
    assert (small["samples_seen"], small["checkpoints"], small["precision"]) == (12_800_000, 5, "amp")
    assert profiles.stage_params("medium", "train")["samples_seen"] == 128_000_000
    for stage in profiles.STAGES:
        keys = [set(profiles.PROFILES[name][stage]) for name in ("tiny", "small", "medium")]
        assert keys[0] == keys[1] == keys[2], stage
    assert profiles.stage_params("tiny", "extract", workers=1, max_papers=None)["workers"] == 1
    with pytest.raises(ValueError, match="known profiles: medium, small, tiny"):
        profiles.get_profile("nope")
    with pytest.raises(ValueError, match="unknown extract parameters"):
        profiles.stage_params("tiny", "extract", wrokers=1)


def test_run_paths_follow_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCICLIP_RUNS", str(tmp_path))
    run = profiles.paths("tiny")
    assert run.root == tmp_path / "tiny" == profiles.run_dir("tiny")
    assert run.decontaminated_sources()["arxiv"] == tmp_path / "tiny" / "decontaminated" / "arxiv"
    assert run.evalsets == tmp_path / "tiny" / "sample_corpus" / "evalsets"
    assert profiles.paths("small", tmp_path / "elsewhere").train == tmp_path / "elsewhere" / "small" / "train"


def test_unknown_profile_is_a_clear_cli_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["notebooks", "--profile", "nope", "--no-build"]) == 2
    assert "unknown profile 'nope'; known profiles: medium, small, tiny" in capsys.readouterr().err


def test_cli_lists_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("notebooks", "profiles", "sample-corpus", "extract", "decontaminate", "analyze"):
        assert command in out


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "01_ok.ipynb", "print(profile, answer)")
    _notebook(tmp_path / "notebooks" / "02_fails.ipynb", "x = 1", "raise ValueError('bad input data')")
    _notebook(tmp_path / "notebooks" / "03_never.ipynb", "print('unreachable')")
    with pytest.raises(NotebookError) as failure:
        run_notebooks("small", parameters={"answer": 42, "undeclared": 1}, root=tmp_path, build=False)
    message = str(failure.value)
    assert (
        "02_fails.ipynb" in message
        and "cell 5 (In [4]: raise ValueError('bad input data'))" in message
        and "ValueError: bad input data" in message
    )
    assert (tmp_path / "book" / "02_fails.ipynb").is_file(), "the partially executed notebook is kept"
    assert not (tmp_path / "book" / "03_never.ipynb").exists()
    executed = nbformat.read(tmp_path / "book" / "01_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert 'profile = "small"' in injected[0].source and "answer = 42" in injected[0].source
    assert "undeclared" not in injected[0].source
    assert "small 42" in executed.cells[-1].outputs[0]["text"]


def test_repository_notebooks_have_parameters_cells() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks, "the study has notebooks"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path.name
        assert 'profile = "tiny"' in params[0].source, path.name
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
            f"{path.name} is committed executed"
        )
