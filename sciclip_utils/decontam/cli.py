"""``sciclip decontaminate [DATA_DIR] [--against EVAL_DIR...] [--out OUT_DIR]``.

With no DATA_DIR every source of the profile is decontaminated into the profile's
``decontaminated/<source>`` against its eval sets, exactly what notebook 04 does (both resolve through
:func:`~sciclip_utils.decontam.stage.decontamination_plan`).
"""

from __future__ import annotations

import argparse

from sciclip_utils.decontam.descriptors import DCT_THRESHOLD, ISC_CHECKPOINT, ISC_THRESHOLD
from sciclip_utils.decontam.stage import DecontaminationPlan, decontaminate, decontamination_plan
from sciclip_utils.profiles import add_profile_option, apply_profile


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sciclip decontaminate``."""
    parser.add_argument("data_dir", nargs="?", default=None,
                        help="CommonPool-format dataset (folder with shards/ or *.tar); default: every source "
                             "of the profile (arxiv, pmc, commonpool)")  # fmt: skip
    parser.add_argument("--against", nargs="+", default=None, metavar="EVAL_DIR",
                        help="eval sets: clip_benchmark webdataset folders (test/*.tar), ImageFolder trees, "
                             "folders of zipped images (WinoGAViL), or folders holding several of them "
                             "(default: the profile's eval sets)")  # fmt: skip
    parser.add_argument("--out", default=None,
                        help="output folder (filtered shards, scores, report); default: the profile's "
                             "decontaminated/<source>")  # fmt: skip
    add_profile_option(parser)
    parser.add_argument("--descriptor", choices=("dct", "isc"), default=None,
                        help="dct: offline, no weights; isc: ISC21 isc_ft_v107, needs --weights "
                             "(default: the profile's)")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"remove samples scoring above this (default: the profile's; descriptor defaults: "
                             f"dct {DCT_THRESHOLD}, isc {ISC_THRESHOLD})")  # fmt: skip
    parser.add_argument("--weights", default=None, help=f"path of the local {ISC_CHECKPOINT} (isc only)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per embedding batch (default: the profile's)")  # fmt: skip
    parser.add_argument("--workers", type=_non_negative, default=None, metavar="N",
                        help="Dask worker processes embedding the training shards (0 = in this process; "
                             "default: the profile's)")  # fmt: skip
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="device of the isc network (default: the profile's, else cuda when available)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value}")
    return number


def resolve(args: argparse.Namespace) -> DecontaminationPlan:
    """The plan of parsed ``sciclip decontaminate`` arguments."""
    params = apply_profile(args, "decontaminate")
    return decontamination_plan(
        args.profile, args.data_dir, args.against, args.out, **{key: getattr(args, key) for key in params}
    )


def cli_run(args: argparse.Namespace) -> int:
    """Run :func:`~sciclip_utils.decontam.stage.decontaminate` per source and print the reports."""
    plan = resolve(args)
    for source, data_dir in plan.sources.items():
        report = decontaminate(
            data_dir,
            plan.against,
            plan.out_dirs[source],
            **plan.params,
            weights=args.weights,
            eval_cache=plan.eval_cache,
            progress=not args.no_progress,
        )
        print(f"{report.removed} of {report.samples} samples removed ({report.descriptor}, threshold "
              f"{report.threshold:.4f}, {sum(report.eval_images.values())} eval images, {report.search} search)")  # fmt: skip
        print(f"  search: {report.search_index}, recall {report.search_recall:.4f} "
              f"verdicts {report.search_agreement:.4f} ({report.search_recall_sample} samples checked); device {report.device}, workers {report.workers}")  # fmt: skip
        for name, counts in report.removed_per_source.items():
            print(f"  {name}: {counts['removed']} of {counts['samples']} removed")
        for eval_set, removed in report.removed_per_eval_set.items():
            print(f"  matched {eval_set}: {removed}")
        print(f"outputs in {report.out_dir}")
    return 0
