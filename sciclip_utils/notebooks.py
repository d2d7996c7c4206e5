"""Run the study: execute ``notebooks/*.ipynb`` with papermill into ``book/``, then build the Jupyter Book.

Readers see narrative, tables and figures: the papermill-injected parameters are removed from the page, the
set-up cell (the first code cell after the parameters cell: imports, folders) and any cell tagged ``setup``
are collapsed behind a toggle (``hide-input``); the parameters cell stays visible, it is the re-run
interface. Where a run writes: the book's run (no ``-p``) uses ``paths(profile)``, ``runs/<profile>``; a run
with papermill parameters gets its own folder ``runs/p-<digest of the parameters>/<profile>`` (unless
``$SCICLIP_RUNS`` says where), so experiments never overwrite the data the book was built from.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sciclip_utils.profiles import RUNS_ENV, get_profile, project_root

HIDDEN_TAG = "remove-cell"
SETUP_TAG = "setup"
COLLAPSED_TAG = "hide-input"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TIMES_FILE = Path("_build") / "notebook_times.json"


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


def tag_cells_for_readers(notebook: Any) -> None:
    """Remove the injected-parameters cell from the page; collapse the set-up cells (see module docstring)."""
    setup_pending = False  # the first code cell after the parameters cell is the set-up cell
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags:
            setup_pending = True
            continue
        if "injected-parameters" in tags:
            wanted = HIDDEN_TAG
        elif cell.cell_type == "code" and (setup_pending or SETUP_TAG in tags):
            setup_pending = False
            wanted = COLLAPSED_TAG
        else:
            continue
        if wanted not in tags and HIDDEN_TAG not in tags:
            cell.metadata["tags"] = [*tags, wanted]


def drop_widgets(notebook: Any) -> None:
    """Remove widget outputs (progress bars) and the saved widget state: a static page would show a bar's
    first frame and load the widget runtime from a CDN for it."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]


def execute_notebook(source: Path, target: Path, parameters: Mapping[str, Any], cwd: Path) -> None:
    """Execute one notebook with papermill, then prepare it for readers (:func:`tag_cells_for_readers`,
    :func:`drop_widgets`)."""
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
            tag_cells_for_readers(notebook)
            drop_widgets(notebook)
            nbformat.write(notebook, target)


def build_book(root: Path) -> None:
    """Build the book to ``root/_build/html`` with warnings as errors."""
    launcher = "from jupyter_book.cli.main import main; main()"
    command = [sys.executable, "-c", launcher, "build", str(root), "-W", "--keep-going", "--all"]
    result = subprocess.run(command, cwd=root, check=False)
    if result.returncode != 0:
        raise NotebookError(f"jupyter-book build failed (exit {result.returncode}); see the output above")


def git_commit(root: Path) -> str | None:
    """The checked-out commit of ``root`` (``+dirty`` when tracked files changed), or None outside git."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def parameters_runs(root: Path, parameters: Mapping[str, Any]) -> Path:
    """The runs folder of a run with papermill ``parameters``: ``runs/p-<8 hex>``, its parameters in
    ``parameters.json`` beside the profile folders."""
    text = json.dumps(dict(parameters), sort_keys=True, default=str)
    folder = root / "runs" / f"p-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "parameters.json").write_text(text + "\n")
    return folder


@contextlib.contextmanager
def environment(name: str, value: str | None) -> Iterator[None]:
    """Set (or, with None, leave) one environment variable for the kernels started inside the block."""
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def record_times(root: Path, profile: str, seconds: Mapping[str, float], **fields: Any) -> Path:
    """Merge wall times per notebook into ``_build/notebook_times.json`` (a new profile starts afresh);
    ``html_commit`` names the commit ``_build/html`` was last built from."""
    path = root / TIMES_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    if record.get("profile") != profile:
        record = {"profile": profile, "notebooks": {}}
    record["notebooks"].update({name: round(value, 1) for name, value in seconds.items()})
    record["notebooks_total"] = round(sum(record["notebooks"].values()), 1)
    record.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


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
    """Execute the notebooks at ``profile`` (papermill ``parameters`` override it), write the reference pages
    and build the book; wall times go to ``_build/notebook_times.json``."""
    from sciclip_utils.reference import write_reference

    get_profile(profile)
    root = root or project_root()
    notebooks_dir = notebooks_dir or root / "notebooks"
    book_dir = book_dir or root / "book"
    runs = os.environ.get(RUNS_ENV) or (str(parameters_runs(root, parameters)) if parameters else None)
    if runs:
        print(f"[sciclip] run folders under {runs}", flush=True)
    executed = []
    with environment(RUNS_ENV, runs):
        for source in find_notebooks(notebooks_dir, only):
            target = book_dir / source.name
            print(f"[sciclip] running {source.name} (profile {profile})", flush=True)
            start = time.perf_counter()
            execute_notebook(source, target, {"profile": profile, **(parameters or {})}, cwd=root)
            seconds = time.perf_counter() - start
            print(f"[sciclip] {source.name}: {seconds:.0f} s", flush=True)
            record_times(root, profile, {source.name: seconds})
            executed.append(target)
    if build:
        write_reference(book_dir)
        start = time.perf_counter()
        build_book(root)
        record_times(
            root,
            profile,
            {},
            build_seconds=round(time.perf_counter() - start, 1),
            html_commit=git_commit(root),
        )
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
