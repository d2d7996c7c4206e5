"""Run the study: execute ``notebooks/*.ipynb`` with papermill into ``book/``, then build the Jupyter Book."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sciclip_utils.profiles import get_profile, project_root

HIDDEN_TAG = "remove-cell"


class NotebookError(RuntimeError):
    """A notebook failed; the message names the notebook and the cell."""


def find_notebooks(notebooks_dir: Path, only: Sequence[str] = ()) -> list[Path]:
    """The numbered notebooks in run order, optionally only those whose name starts with one of ``only``."""
    notebooks = sorted(notebooks_dir.glob("[0-9]*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
        if not notebooks:
            raise ValueError(f"no notebook in {notebooks_dir} matches {list(only)}")
    return notebooks


def execute_notebook(source: Path, target: Path, parameters: Mapping[str, Any], cwd: Path) -> None:
    """Execute one notebook with papermill; the injected-parameters cell is hidden in the book."""
    import nbformat
    import papermill as pm

    declared = pm.inspect_notebook(str(source))
    if not declared:
        raise NotebookError(f"{source.name}: no cell tagged 'parameters'")
    accepted = {key: value for key, value in parameters.items() if key in declared}
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=accepted,
            kernel_name="python3",
            cwd=str(cwd),
            progress_bar=False,
        )
    except pm.PapermillExecutionError as exc:
        raise NotebookError(
            f"notebook {source.name} failed in cell {exc.cell_index + 1} (In [{exc.exec_count}]: "
            f"{exc.source.strip().splitlines()[0] if exc.source.strip() else ''}): {exc.ename}: {exc.evalue}\n"
            f"partially executed notebook kept at {target}"
        ) from exc
    finally:
        if target.is_file():
            notebook = nbformat.read(target, as_version=4)
            for cell in notebook.cells:
                tags = cell.metadata.get("tags", [])
                if "injected-parameters" in tags and HIDDEN_TAG not in tags:
                    cell.metadata["tags"] = [*tags, HIDDEN_TAG]
            nbformat.write(notebook, target)


def build_book(root: Path) -> None:
    """Build the book to ``root/_build/html`` with warnings as errors."""
    launcher = "from jupyter_book.cli.main import main; main()"
    command = [sys.executable, "-c", launcher, "build", str(root), "-W", "--keep-going", "--all"]
    result = subprocess.run(command, cwd=root, check=False)
    if result.returncode != 0:
        raise NotebookError(f"jupyter-book build failed (exit {result.returncode}); see the output above")


def run_notebooks(
    profile: str = "tiny",
    *,
    only: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
    root: Path | None = None,
    notebooks_dir: Path | None = None,
    book_dir: Path | None = None,
    build: bool = True,
) -> list[Path]:
    """Execute the notebooks at ``profile`` (papermill ``parameters`` override it) and build the book."""
    get_profile(profile)
    root = root or project_root()
    notebooks_dir = notebooks_dir or root / "notebooks"
    book_dir = book_dir or root / "book"
    executed = []
    for source in find_notebooks(notebooks_dir, only):
        target = book_dir / source.name
        print(f"[sciclip] running {source.name} (profile {profile})", flush=True)
        execute_notebook(source, target, {"profile": profile, **(parameters or {})}, cwd=root)
        executed.append(target)
    if build:
        build_book(root)
    return executed


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip notebooks --profile tiny [--only NAME] [-p key value ...] [--no-build]``."""
    parser.add_argument("--profile", default="tiny", help="named parameter profile (see `sciclip profiles`)")
    parser.add_argument("--only", action="append", default=[], help="run only notebooks starting with NAME")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
        help="papermill parameter (VALUE parsed as YAML), passed to every notebook that declares KEY",
    )  # fmt: skip
    parser.add_argument(
        "--no-build", action="store_true", help="execute the notebooks but do not build the book"
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run the notebooks; a failure names the notebook and cell and exits 1."""
    parameters = {key: yaml.safe_load(value) for key, value in args.parameter}
    try:
        run_notebooks(args.profile, only=args.only, parameters=parameters, build=not args.no_build)
    except NotebookError as exc:
        print(f"sciclip: error: {exc}", file=sys.stderr)
        return 1
    return 0
