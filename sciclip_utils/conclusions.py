"""The closing chapter's numbers: what this run produced, and what the ``small`` profile on real data costs.

Results are read from the run folders when they exist (``paths(profile).eval/*/eval_results.jsonl``, the
CSV tables the analysis chapter saves in ``paths(profile).analysis``); a missing stage is reported as
missing, never filled in. The ``small`` plan combines the paper's and DataComp's published sizes with
this run's measured extraction speed and the stated :data:`ASSUMPTIONS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from sciclip_utils.files import read_frame
from sciclip_utils.profiles import RunPaths, project_root, stage_params

# Published facts (REFERENCE.md): the paper's Table 1, DataComp's README and tasklist.yml.
PAPER_PAIRS = {"arxiv": 1_117_377, "pmc": 766_855, "commonpool": 11_778_443}
COMMONPOOL_SMALL_GB = 450 + 3  # shards + parquet metadata (DataComp README, "small" scale)
DATACOMP_EVAL_SECONDS = 5_285  # sum of the 40 tasks' `time` in DataComp's tasklist.yml, one model
CONDITIONS = 3  # commonpool, sci (arXiv+PMC), mix

# Assumptions: change them here, the plan follows.
ASSUMPTIONS: dict[str, Any] = {
    "cpu_slowdown_real_vs_sample": 5.0,  # real papers: bigger PDFs/EPS, more figures than the sample corpus
    "extract_workers": 16 * 8,  # 8 nodes of 16 cores (a Dask cluster on SLURM)
    "arxiv_source_tb": 3.0,  # the requester-pays `arxiv` bucket's src/ tars, order of magnitude to 2023
    "s3_egress_usd_per_gb": 0.09,  # AWS internet egress, first 10 TB tier (0 when run inside us-east-1)
    "gpus": 8,
    "train_samples_per_s_per_gpu": 2_000,  # ViT-B-32, 224 px, AMP on an A100-class GPU, loaders keeping up
    "gpu_usd_per_hour": 2.5,  # on-demand cloud A100/H100 price, 2024-2025
}


def read_eval_results(eval_dir: Path) -> pd.DataFrame:
    """One row per condition and task from ``eval_dir/<condition>/eval_results.jsonl`` (empty if none)."""
    rows = []
    for results in sorted(eval_dir.glob("*/eval_results.jsonl")):
        for line in results.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                rows.append(
                    {
                        "condition": results.parent.name,
                        "key": entry["key"],
                        "dataset": entry.get("dataset", entry["key"]),
                        "main_metric": entry.get("metrics", {}).get("main_metric"),
                    }
                )
    return pd.DataFrame(rows, columns=["condition", "key", "dataset", "main_metric"])


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """Main metric per task (rows) and condition (columns), with the average over tasks that have one."""
    table = results.dropna(subset=["main_metric"]).pivot_table(
        index="dataset", columns="condition", values="main_metric"
    )
    return pd.concat([table, table.mean().rename("average").to_frame().T])


def analysis_tables(analysis_dir: Path) -> dict[str, pd.DataFrame]:
    """The CSV tables the analysis chapter saved, by file stem (empty when it has not run)."""
    return {path.stem: pd.read_csv(path) for path in sorted(analysis_dir.glob("*.csv"))}


def stage_status(run: RunPaths) -> pd.DataFrame:
    """Which stages of this run left output, and where."""
    stages = {
        "sample corpus": run.sample_corpus,
        "arXiv extraction": run.arxiv / "sizes.json",
        "PMC extraction": run.pmc / "sizes.json",
        "decontamination": run.decontaminated,
        "dataset analysis": run.analysis,
        "training": run.train,
        "evaluation": run.eval,
    }
    root = project_root()
    return pd.DataFrame(
        [
            {"stage": name, "output": path.exists(), "where": str(_relative(path, root))}
            for name, path in stages.items()
        ]
    ).set_index("stage")


def _relative(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def seconds_per_pair(run: RunPaths) -> dict[str, float]:
    """Measured worker seconds per written pair of each extraction in this run (from its manifest)."""
    rates = {}
    for source, folder in (("arxiv", run.arxiv), ("pmc", run.pmc)):
        manifest_path = folder / "manifest.parquet"
        if manifest_path.is_file():
            manifest = read_frame(manifest_path, columns=["seconds", "pairs_written"])
            pairs = manifest["pairs_written"].fillna(0).sum()
            if pairs:
                rates[source] = float(manifest["seconds"].fillna(0).sum() / pairs)
    return rates


def for_readers(table: pd.DataFrame, formats: dict[str, str]) -> Any:
    """``table`` styled like the book's other tables, numbers formatted, missing values blank."""
    return table.style.format(formats, na_rep="").set_table_attributes('class="dataframe"')


def small_plan(rates: dict[str, float], assumptions: dict[str, Any] = ASSUMPTIONS) -> pd.DataFrame:
    """Sizes, wall hours and costs of the ``small`` profile on real data (see :data:`ASSUMPTIONS`)."""
    train = stage_params("small", "train")
    a = assumptions
    rows = []
    for source in ("arxiv", "pmc"):
        if source in rates:
            cpu_s = PAPER_PAIRS[source] * rates[source] * a["cpu_slowdown_real_vs_sample"]
            rows.append(
                {
                    "step": f"extract {source}",
                    "size": f"{PAPER_PAIRS[source]:,} pairs (paper, Table 1)",
                    "hours": cpu_s / a["extract_workers"] / 3600,
                    "usd": None,
                }
            )
    egress_gb = a["arxiv_source_tb"] * 1000 + COMMONPOOL_SMALL_GB
    rows.append(
        {
            "step": "download arXiv sources + CommonPool small",
            "size": f"{egress_gb:,.0f} GB",
            "hours": None,
            "usd": a["arxiv_source_tb"] * 1000 * a["s3_egress_usd_per_gb"],
        }
    )
    train_hours = train["samples_seen"] / (a["gpus"] * a["train_samples_per_s_per_gpu"]) / 3600
    rows.append(
        {
            "step": f"train {CONDITIONS} conditions ({train['model']}, {train['samples_seen']:,} samples each)",
            "size": f"{a['gpus']} GPUs",
            "hours": CONDITIONS * train_hours,
            "usd": CONDITIONS * train_hours * a["gpus"] * a["gpu_usd_per_hour"],
        }
    )
    eval_hours = CONDITIONS * DATACOMP_EVAL_SECONDS / 3600
    rows.append(
        {
            "step": f"evaluate {CONDITIONS} models on the 38 tasks",
            "size": "1 GPU",
            "hours": eval_hours,
            "usd": eval_hours * a["gpu_usd_per_hour"],
        }
    )
    return pd.DataFrame(rows).set_index("step")
