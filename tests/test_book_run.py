"""What `sciclip notebooks` does for readers and for re-runs: collapsed set-up cells, wall times, run folders
of runs with other parameters, and one repository notebook re-executed by papermill with new parameters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from sciclip_utils.commonpool import read_metadata
from sciclip_utils.notebooks import TIMES_FILE, run_notebooks
from sciclip_utils.profiles import RUNS_ENV

REPO = Path(__file__).resolve().parents[1]


def _notebook(path: Path, cells: list[tuple[str, list[str]]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(RUNS_ENV, raising=False)
    (tmp_path / "notebooks").mkdir()
    _notebook(
        tmp_path / "notebooks" / "01_first.ipynb",
        [
            ("import os", []),
            ('profile = "tiny"\nanswer = 1', ["parameters"]),
            ("from sciclip_utils.profiles import paths\nrun = paths(profile)", []),
            ("print(run.root)", []),
            ("def helper():\n    return answer", ["setup"]),
            ("helper()", []),
        ],
    )
    _notebook(
        tmp_path / "notebooks" / "02_second.ipynb", [('profile = "tiny"', ["parameters"]), ("1 + 1", [])]
    )
    return tmp_path


def _tags(path: Path) -> list[list[str]]:
    return [cell.metadata.get("tags", []) for cell in nbformat.read(path, as_version=4).cells[1:]]


def test_readers_see_parameters_and_results_not_setup(study: Path) -> None:
    run_notebooks("tiny", root=study, build=False)
    assert _tags(study / "book" / "01_first.ipynb") == [
        [],  # code before the parameters cell is left alone
        ["parameters"],  # the re-run interface stays visible
        ["injected-parameters", "remove-cell"],  # papermill's copy: not on the page
        ["hide-input"],  # the first code cell after it: set-up, collapsed
        [],
        ["setup", "hide-input"],  # tagged set-up anywhere: collapsed
        [],
    ]
    executed = nbformat.read(study / "book" / "01_first.ipynb", as_version=4)
    assert executed.cells[5].outputs[0]["text"].strip() == str(study / "runs" / "tiny"), (
        "the book's run folder"
    )
    times = json.loads((study / TIMES_FILE).read_text())
    assert times["profile"] == "tiny" and set(times["notebooks"]) == {"01_first.ipynb", "02_second.ipynb"}
    assert all(seconds > 0 for seconds in times["notebooks"].values())
    run_notebooks("tiny", only=["02"], root=study, build=False)
    assert set(json.loads((study / TIMES_FILE).read_text())["notebooks"]) == {
        "01_first.ipynb",
        "02_second.ipynb",
    }


def test_a_run_with_other_parameters_gets_its_own_run_folder(study: Path) -> None:
    run_notebooks("tiny", only=["01"], parameters={"answer": 7}, root=study, build=False)
    executed = nbformat.read(study / "book" / "01_first.ipynb", as_version=4)
    printed = Path(executed.cells[5].outputs[0]["text"].strip())
    assert printed.name == "tiny" and printed.parent.parent == study / "runs"
    assert printed.parent.name.startswith("p-"), "named after a digest of the parameters"
    assert json.loads((printed.parent / "parameters.json").read_text()) == {"answer": 7}
    assert executed.cells[7].outputs[0]["data"]["text/plain"] == "7"
    assert RUNS_ENV not in os.environ, "the runner leaves the environment as it found it"


def test_notebook_reexecuted_with_new_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """03_extract_pmc through papermill on a micro sample corpus in a folder made here."""
    import papermill as pm

    from sciclip_utils.sample_corpus import generate_sample_corpus

    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))  # nothing may land in the repository's runs/
    generate_sample_corpus(tmp_path / "corpus", seed=5, size="micro", workers=1)
    out_dir = tmp_path / "pmc_pairs"
    output = tmp_path / "03_rerun.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "03_extract_pmc.ipynb"),
        str(output),
        parameters={"inputs": [str(tmp_path / "corpus" / "pmc")], "out_dir": str(out_dir), "workers": 0},
        kernel_name="python3",
        cwd=str(REPO),
        progress_bar=False,
    )
    executed = nbformat.read(output, as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f'out_dir = "{out_dir}"' in injected.source and "workers = 0" in injected.source
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    pairs = len(read_metadata(out_dir))
    assert pairs > 0 and f"; {pairs} pairs written" in text, "the notebook reports what it wrote"
    assert any("image/png" in o.get("data", {}) for o in outputs), "its figures were drawn"
    assert not (tmp_path / "runs").exists(), "explicit inputs and out_dir: no run folder needed"


def test_each_page_script_is_kept_once() -> None:
    """Jupyter Book registers some inline scripts twice, once with file name None and once with ''."""
    from sphinx.builders.html._assets import _JavaScript

    from sciclip_utils.sphinx_ext import unique_scripts

    thebe = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=thebe), _JavaScript("", body=thebe),
               _JavaScript("_static/a.js", **{"async": "async"}), _JavaScript("_static/a.js")]  # fmt: skip
    context = {"script_files": scripts}
    unique_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == scripts[:2] + scripts[3:4]
