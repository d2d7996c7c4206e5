"""The book's reference part is generated from the code: profiles, CLI help, formats, tasks."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from sciclip_utils import cli, commonpool, profiles, reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("book")
    written = reference.write_reference(folder)
    assert [path.name for path in written] == [f"{name}.md" for name in reference.PAGES]
    return {path.stem: path.read_text() for path in written}


def test_profile_page_lists_every_parameter_of_every_profile(pages: dict[str, str]) -> None:
    page = pages["reference_profiles"]
    for stage in profiles.STAGES:
        section = page.split(f"## Stage `{stage}`\n", 1)[1].split("\n## ", 1)[0]
        for key in profiles.PROFILES["tiny"][stage]:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{key}` |"))
            cells = [cell.strip() for cell in row.strip("|").split(" | ")][1:]
            assert len(cells) == len(profiles.PROFILES), row
    assert "| `samples_seen` | `30,000` | `12,800,000` | `128,000,000` |" in page
    assert "| `.decontaminated_sources()` | `runs/PROFILE/decontaminated/arxiv/`" in page


def test_cli_page_holds_every_verb_and_option(pages: dict[str, str]) -> None:
    page = pages["reference_cli"]
    for path, module, _ in cli.COMMANDS:
        assert f"## `sciclip {' '.join(path)}`\n\nModule `sciclip_utils.{module}`." in page
        parser = argparse.ArgumentParser(prog=f"sciclip {' '.join(path)}")
        importlib.import_module(f"sciclip_utils.{module}").cli_configure(parser)
        section = page.split(f"## `sciclip {' '.join(path)}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for option in action.option_strings:
                assert option in section, (path, option)
    assert ":func:" not in pages["reference_profiles"], "Sphinx roles become code spans"
    assert not re.search(r"(?<!`)``(?!`)", pages["reference_profiles"]), "double backticks become single"


def test_formats_page_shows_the_written_schema(pages: dict[str, str]) -> None:
    assert set(reference.COLUMN_MEANINGS) == set(commonpool.BASE_COLUMNS), "every column is described"
    page = pages["reference_formats"]
    for column in commonpool.BASE_COLUMNS:
        assert f"| `{column}` | `" in page, column
    assert "| `original_width` | `int64` |" in page and "| `uid` | `string` |" in page
    assert "shards/00000001_stats.json" in page and '"00000001.tar": 1' in page
    assert "dtype=[('f0', '<u8'), ('f1', '<u8')]" in page


def test_tasks_page_reads_either_tasklist_layout(tmp_path: Path) -> None:
    missing = reference.tasks_page(tmp_path / "tasklist.yml")
    assert "Not available: this checkout has no `sciclip_utils/tasklist.yml`" in missing
    datacomp = {  # DataComp's own layout: task key -> fields, acc1 unless named
        "vtab/pcam": {"name": "PatchCamelyon", "size": 32768, "num_classes": 2, "random_score": 0.5},
        "retrieval/flickr30k": {"name": "Flickr", "size": 31014, "main_metric": "mean_recall@1"},
    }
    (tmp_path / "flat.yml").write_text(yaml.safe_dump(datacomp))
    flat = reference.tasks_page(tmp_path / "flat.yml")
    assert "| `vtab/pcam` | PatchCamelyon |  | `acc1` | 32,768 | 2 | 0.500 |  |" in flat
    assert "| `retrieval/flickr30k` | Flickr |  | `mean_recall@1` | 31,014 |  |  |  |" in flat
    suites = {"suites": {"sample": {"shapes": {"name": "Shapes", "group": "natural", "classnames": list("abc")}},
                         "datacomp": {"fairness/fairface": {"name": "FairFace", "main_metric": None}}}}  # fmt: skip
    (tmp_path / "suites.yml").write_text(yaml.safe_dump(suites))
    page = reference.tasks_page(tmp_path / "suites.yml")
    assert "## Suite `sample`\n\n1 tasks, 1 with a main metric" in page
    assert "| `shapes` | Shapes | natural | `acc1` |  | 3 |" in page
    assert "| `fairness/fairface` | FairFace |  | none (not averaged) |" in page
    (tmp_path / "bad.yml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="expected task key -> fields mappings"):
        reference.tasks_page(tmp_path / "bad.yml")


def test_package_tasklist_when_present_is_on_the_page(pages: dict[str, str]) -> None:
    if not reference.TASKLIST.is_file():
        assert "Not available" in pages["reference_tasks"]
        return
    content = yaml.safe_load(reference.TASKLIST.read_text())
    for tasks in content.get("suites", {"datacomp": content}).values():
        for key in tasks:
            assert f"| `{key}` |" in pages["reference_tasks"], key


def test_unchanged_pages_are_not_rewritten(tmp_path: Path) -> None:
    first = reference.write_reference(tmp_path)
    stamps = [path.stat().st_mtime_ns for path in first]
    second = reference.write_reference(tmp_path)
    assert [path.stat().st_mtime_ns for path in second] == stamps


def test_reference_pages_are_in_the_toc_and_ignored_by_git() -> None:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    part = next(part for part in toc["parts"] if part["caption"] == "Reference")
    assert [chapter["file"] for chapter in part["chapters"]] == [f"book/{name}" for name in reference.PAGES]
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [f"book/{name}.md" for name in reference.PAGES]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == paths
