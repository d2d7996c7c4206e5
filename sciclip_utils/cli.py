"""``sciclip``: every stage headless, calling the same functions as the notebooks."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (command path, module, help). Modules expose ``cli_configure(parser)`` and ``cli_run(args) -> int``.
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("notebooks",), "notebooks", "execute the notebooks with papermill and build the book"),
    (("profiles",), "profiles", "list the named parameter profiles"),
    (("reference",), "reference", "write the book's reference pages (profiles, CLI, formats, tasks)"),
    (
        ("sample-corpus",),
        "sample_corpus.generate",
        "generate the sample corpus (arXiv, PMC, web pool, eval sets)",
    ),
    (("extract", "arxiv"), "extract.cli", "extract figure-caption pairs from arXiv LaTeX sources"),
    (("extract", "pmc"), "extract.cli", "extract figure-caption pairs from PMC OA packages"),
    (("decontaminate",), "decontam.cli", "remove near-duplicates of evaluation images"),
    (("analyze",), "analysis.stage", "Table 1, caption lengths, figure types and per-type subsets"),
    (("train",), "train", "train OpenCLIP on one data condition (commonpool, sci, mix, ...)"),
    (("fetch", "arxiv"), "fetch.arxiv", "download arXiv bulk source tars (requester-pays S3)"),
    (("fetch", "pmc"), "fetch.pmc", "download PMC OA articles (pmc-oa-opendata or the legacy packages)"),
    (("fetch", "commonpool"), "fetch.commonpool", "download DataComp CommonPool metadata and images"),
    (("fetch", "evalsets"), "fetch.evalsets", "download DataComp's evaluation sets (webdataset)"),
    (("evaluate",), "evaluate.run", "evaluate trained models on a task suite (clip_benchmark, local data)"),
    (("tables",), "evaluate.tables", "Table 3 of evaluated runs (group means with bootstrap intervals)"),
)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The full parser; only the module of the chosen command is imported."""
    parser = argparse.ArgumentParser(prog="sciclip", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for path, module, help_text in COMMANDS:
        if len(path) == 1:
            sub = commands.add_parser(path[0], help=help_text, description=help_text)
        else:
            if path[0] not in groups:
                group = commands.add_parser(
                    path[0], help=f"{path[0]} ({', '.join(p[1] for p, *_ in COMMANDS if p[0] == path[0])})"
                )
                groups[path[0]] = group.add_subparsers(dest="subcommand", metavar="SOURCE", required=True)
            sub = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        if _chosen(argv, path):
            importlib.import_module(f"sciclip_utils.{module}").cli_configure(sub)
    return parser


def _chosen(argv: Sequence[str], path: tuple[str, ...]) -> bool:
    words = [word for word in argv if not word.startswith("-")]
    return tuple(words[: len(path)]) == path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sciclip`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(f"sciclip_utils.{args._module}")
    try:
        return int(module.cli_run(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"sciclip: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
