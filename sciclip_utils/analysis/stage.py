"""The dataset-analysis stage: Table 1, caption lengths and truncation, text quality, figure types and
per-type DataComp subsets, for any CommonPool-format folders (``sciclip analyze``)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclip_utils.analysis import captions
from sciclip_utils.analysis.figure_types import (
    FIGURE_TYPES,
    FigureTypeClassifier,
    confusion,
    decode_small,
    image_features,
    labelled_figures,
)
from sciclip_utils.commonpool import iter_shard, read_metadata, save_uid_subset, shard_paths

TABLE1_COLUMNS = [
    "source", "pairs", "mean_caption_chars", "median_caption_chars", "mean_caption_words", "truncated_share",
    *(f"share_{kind}" for kind in FIGURE_TYPES),
]  # fmt: skip
EXAMPLES_PER_TYPE = 6


@dataclass
class Analysis:
    """Everything the stage measured; :func:`analyze` also writes it under ``out_dir``."""

    out_dir: Path
    metadata: dict[str, pd.DataFrame]
    table1: pd.DataFrame
    paper: pd.DataFrame
    quantiles: pd.DataFrame
    truncation: pd.DataFrame
    tokens: dict[str, np.ndarray]
    text_quality: pd.DataFrame
    breakdowns: dict[str, dict[str, pd.Series]]
    types: pd.DataFrame
    examples: dict[str, list[bytes]]
    evaluation: dict[str, Any] | None
    subsets: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_sources(data_dirs: Mapping[str, str | Path] | Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Each folder's metadata, by source name (a mapping's key, else the ``source`` column when it has one
    value, else the folder's name). Raises before anything is written when a folder is not CommonPool data."""
    named = data_dirs.items() if isinstance(data_dirs, Mapping) else [(None, d) for d in data_dirs]
    sources: dict[str, pd.DataFrame] = {}
    for name, folder in named:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        if not shard_paths(folder):
            raise ValueError(
                f"{folder}: no .tar shards (expected CommonPool format: shards/00000000.tar ...)"
            )
        metadata = read_metadata(folder)
        if "text" not in metadata.columns or "uid" not in metadata.columns:
            raise ValueError(f"{folder}: the parquet metadata has no 'text' or 'uid' column")
        source = name or captions.source_name(metadata, folder.name)
        if source in sources:
            raise ValueError(f"two folders are named {source!r}; pass them as a mapping of distinct names")
        metadata.attrs["folder"] = str(folder)
        sources[source] = metadata
    return sources


def classify_shard(
    path: Path, classifier: FigureTypeClassifier
) -> tuple[pd.DataFrame, dict[str, list[bytes]]]:
    """The figure type of every sample of one shard (``key``, ``uid``, ``type``), and a few example images."""
    keys, uids, rows, images = [], [], [], []
    for sample in iter_shard(path):
        keys.append(sample.key)
        uids.append(sample.uid)
        rows.append(image_features(decode_small(sample.jpg)))
        images.append(sample.jpg)
    types = classifier.predict(np.stack(rows)) if rows else np.array([], dtype=object)
    examples: dict[str, list[bytes]] = {}
    for kind, image in zip(types, images, strict=True):
        if len(examples.setdefault(str(kind), [])) < EXAMPLES_PER_TYPE:
            examples[str(kind)].append(image)
    return pd.DataFrame({"key": keys, "uid": uids, "type": types.astype(str)}), examples


def classify_source(
    metadata: pd.DataFrame, classifier: FigureTypeClassifier, max_images: int | None = None, workers: int = 1
) -> tuple[pd.DataFrame, dict[str, list[bytes]]]:
    """Figure types of a source's samples (whole shards in order until ``max_images``; None: all), joined
    to the metadata columns that name a figure; and example images per type."""
    shards, counted = [], 0
    for path in shard_paths(metadata.attrs["folder"]):
        if max_images is not None and counted >= max_images:
            break
        shards.append(path)
        counted += int((metadata["shard"] == path.stem).sum())
    if workers > 1 and len(shards) > 1:
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        )
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = list(pool.map(classify_shard, shards, [classifier] * len(shards)))
    else:
        results = [classify_shard(path, classifier) for path in shards]
    frame = (
        pd.concat([r[0] for r in results], ignore_index=True)
        if results
        else pd.DataFrame(columns=["key", "uid", "type"])
    )
    if "key" in metadata.columns:  # the parquet's uid when a shard's json has none (some downloads)
        known = metadata.drop_duplicates("key").set_index("key")["uid"]
        frame["uid"] = frame["uid"].fillna(frame["key"].map(known))
    named = [c for c in ("paper_id", "figure_id") if c in metadata.columns]
    if named and "key" in metadata.columns:
        frame = frame.merge(metadata[["key", *named]].drop_duplicates("key"), on="key", how="left")
    examples: dict[str, list[bytes]] = {}
    for _, shard_examples in results:
        for kind, images in shard_examples.items():
            examples.setdefault(kind, []).extend(images[: EXAMPLES_PER_TYPE - len(examples.get(kind, []))])
    return frame, examples


def type_shares(types: pd.DataFrame) -> pd.DataFrame:
    """``share_<type>`` per source (rows) among the classified samples."""
    counts = pd.crosstab(types["source"], pd.Categorical(types["type"], FIGURE_TYPES), dropna=False)
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)
    shares.columns = [f"share_{kind}" for kind in shares.columns]
    return shares.rename_axis(index="source", columns=None)


def evaluate_on_labels(types: pd.DataFrame, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """Accuracy and confusion matrix of the classified samples the sample corpus labelled, or None when
    none is labelled (or the metadata lacks ``paper_id``/``figure_id``)."""
    if not {"paper_id", "figure_id"} <= set(types.columns):
        return None
    labels = labelled_figures(summary)
    joined = types.merge(labels, on=["source", "paper_id", "figure_id"], suffixes=("", "_true"))
    if joined.empty:
        return None
    correct = joined["type"] == joined["type_true"]
    by_source = joined.assign(correct=correct).groupby("source")["correct"].agg(["mean", "size"])
    return {
        "labelled": int(len(joined)),
        "accuracy": float(correct.mean()),
        "accuracy_by_source": {s: float(r["mean"]) for s, r in by_source.iterrows()},
        "labelled_by_source": {s: int(r["size"]) for s, r in by_source.iterrows()},
        "confusion": confusion(joined["type_true"], joined["type"]),
    }


def analyze(
    data_dirs: Mapping[str, str | Path] | Sequence[str | Path],
    out_dir: str | Path,
    *,
    max_images: int | None = None,
    max_tokenized: int | None = None,
    train_per_kind: int = 30,
    seed: int = 0,
    workers: int = 1,
    labels: str | Path | None = None,
) -> Analysis:
    """Measure every source and write ``table1.csv``, the other tables, the PNG figures and the per-type
    subsets (``subsets/<type>.npy`` and ``subsets/no_<type>.npy`` over all sources) to ``out_dir``.

    ``labels``: a sample corpus's ``corpus_summary.json`` (or its folder) to measure the figure-type
    classifier against the kinds its generators recorded.
    """
    sources = load_sources(data_dirs)
    summary = _load_summary(labels) if labels is not None else None
    notes = _missing_columns(sources)
    table = captions.caption_table(sources)
    tokenizer = captions.clip_tokenizer()
    tokens = {
        source: captions.token_counts(captions.sample_texts(metadata, max_tokenized, seed), tokenizer)
        for source, metadata in sources.items()
    }
    truncation = pd.DataFrame({source: captions.truncation(counts) for source, counts in tokens.items()}).T
    quality = pd.DataFrame(
        {source: captions.text_quality(metadata) for source, metadata in sources.items()}
    ).T
    breakdowns = {
        column: {s: b for s, m in sources.items() if (b := captions.breakdown(m, column)) is not None}
        for column in ("license", "language")
    }
    classifier = FigureTypeClassifier.train(seed, train_per_kind)
    frames, examples = [], {}
    for source, metadata in sources.items():
        frame, source_examples = classify_source(metadata, classifier, max_images, workers)
        frames.append(frame.assign(source=source))
        for kind, images in source_examples.items():
            examples.setdefault(kind, []).extend(images[:2])  # a mix of sources in every row of the grid
    types = pd.concat(frames, ignore_index=True)
    classified = types.groupby("source").size()
    for source, metadata in sources.items():
        if classified.get(source, 0) < len(metadata):
            notes.append(
                f"{source}: figure types of {classified.get(source, 0):,} of {len(metadata):,} samples"
            )
    shares = type_shares(types)
    table = table.join(truncation["truncated_share"], on="source").join(shares, on="source")
    evaluation = evaluate_on_labels(types, summary) if summary is not None else None
    if summary is not None and evaluation is None:
        notes.append(
            "no sample matches the labelled figures (or paper_id/figure_id are missing): not measured"
        )
    analysis = Analysis(
        out_dir=Path(out_dir), metadata=sources, table1=table[TABLE1_COLUMNS], paper=captions.beside_paper(table),
        quantiles=captions.length_quantiles(sources), truncation=truncation, tokens=tokens, text_quality=quality,
        breakdowns=breakdowns, types=types, examples=examples, evaluation=evaluation, notes=notes,
    )  # fmt: skip
    write_outputs(analysis)
    return analysis


def _load_summary(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    path = path / "corpus_summary.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no corpus summary")
    return json.loads(path.read_text())


def _missing_columns(sources: Mapping[str, pd.DataFrame]) -> list[str]:
    """What cannot be computed for each source without this project's columns."""
    needs = {
        "source": "named after its folder",
        "license": "no licence breakdown",
        "language": "no language breakdown",
        "paper_id": "figure types not matched to labels",
    }
    return [
        f"{source}: no '{column}' column: {consequence}"
        for source, metadata in sources.items()
        for column, consequence in needs.items()
        if column not in metadata.columns or metadata[column].isna().all()
    ]


def write_outputs(analysis: Analysis) -> None:
    """Tables (CSV, parquet, JSON), figures (PNG) and subsets (``.npy``) under ``analysis.out_dir``."""
    import matplotlib.pyplot as plt

    from sciclip_utils.analysis import plots

    out = analysis.out_dir
    out.mkdir(parents=True, exist_ok=True)
    analysis.table1.to_csv(out / "table1.csv", index=False)
    analysis.paper.to_csv(out / "table1_paper.csv", index=False)
    analysis.quantiles.to_csv(out / "caption_quantiles.csv")
    analysis.truncation.rename_axis("source").to_csv(out / "truncation.csv")
    analysis.text_quality.rename_axis("source").to_csv(out / "text_quality.csv")
    rows = [
        {"column": column, "source": source, "value": value, "share": share}
        for column, by_source in analysis.breakdowns.items()
        for source, series in by_source.items()
        for value, share in series.items()
    ]
    pd.DataFrame(rows, columns=["column", "source", "value", "share"]).to_csv(
        out / "breakdowns.csv", index=False
    )
    analysis.types.to_parquet(out / "figure_types.parquet", index=False)
    report: dict[str, Any] = {"notes": analysis.notes, "evaluation": None}
    figures = {
        "caption_lengths.png": plots.caption_length_figure(analysis.metadata),
        "caption_tokens.png": plots.truncation_figure(analysis.tokens),
        "figure_types.png": plots.type_mix_figure(analysis.table1.set_index("source")),
        "type_examples.png": plots.examples_figure(analysis.examples),
    }
    if analysis.evaluation is not None:
        evaluation = analysis.evaluation
        evaluation["confusion"].to_csv(out / "confusion.csv")
        report["evaluation"] = {k: v for k, v in evaluation.items() if k != "confusion"}
        figures["confusion.png"] = plots.confusion_figure(evaluation["confusion"])
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    uids = analysis.types.dropna(subset=["uid"])
    for kind in FIGURE_TYPES:
        chosen = uids["type"] == kind
        analysis.subsets[kind] = out / "subsets" / f"{kind}.npy"
        analysis.subsets[f"no_{kind}"] = out / "subsets" / f"no_{kind}.npy"
        save_uid_subset(uids.loc[chosen, "uid"], analysis.subsets[kind])
        save_uid_subset(uids.loc[~chosen, "uid"], analysis.subsets[f"no_{kind}"])


# ---- CLI --------------------------------------------------------------------------------------------


def cli_configure(parser: argparse.ArgumentParser) -> None:
    """``sciclip analyze [DIR...] [--out OUT] [--profile NAME] [--labels SUMMARY] ...``."""
    from sciclip_utils.profiles import add_profile_option

    parser.add_argument(
        "dirs", nargs="*", help="CommonPool-format folders (default: the profile's decontaminated sources)"
    )
    parser.add_argument("--out", default=None, help="output folder (default: runs/<profile>/analysis)")
    parser.add_argument(
        "--labels", default=None, help="a sample corpus's corpus_summary.json to measure the classifier"
    )
    parser.add_argument(
        "--max-images", type=int, default=None, help="images per source to classify (default: all)"
    )
    parser.add_argument("--max-tokenized", type=int, default=None, help="captions per source to tokenize")
    parser.add_argument(
        "--train-per-kind", type=int, default=None, help="generated training figures per kind"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the training figures and samples")
    parser.add_argument("--workers", type=int, default=None, help="processes classifying shards")
    add_profile_option(parser)


def cli_run(args: argparse.Namespace) -> int:
    """Run the analysis and print Table 1."""
    from sciclip_utils.profiles import apply_profile, paths

    apply_profile(args, "analysis")
    run = paths(args.profile)
    data_dirs: Mapping[str, Path] | list[str] = args.dirs or run.decontaminated_sources()
    labels = args.labels
    if labels is None and not args.dirs and (run.sample_corpus / "corpus_summary.json").is_file():
        labels = run.sample_corpus / "corpus_summary.json"
    analysis = analyze(
        data_dirs, args.out or run.analysis, max_images=args.max_images, max_tokenized=args.max_tokenized,
        train_per_kind=args.train_per_kind, seed=args.seed, workers=args.workers, labels=labels,
    )  # fmt: skip
    print(analysis.table1.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for note in analysis.notes:
        print(f"note: {note}")
    if analysis.evaluation:
        print(f"figure-type accuracy on {analysis.evaluation['labelled']} labelled figures: "
              f"{analysis.evaluation['accuracy']:.3f}")  # fmt: skip
    print(f"written to {analysis.out_dir}")
    return 0


def prose_numbers(analysis: Analysis) -> dict[str, float]:
    """The numbers the chapter's prose quotes, by name (``<source>_<measure>``, ``paper_<source>_...``,
    ``classifier_...``); shares are percentages."""
    numbers: dict[str, float] = {}
    truncation = analysis.truncation
    for row in analysis.table1.to_dict("records"):
        source = row["source"]
        numbers |= {
            f"{source}_pairs": row["pairs"],
            f"{source}_mean_chars": row["mean_caption_chars"],
            f"{source}_median_chars": row["median_caption_chars"],
            f"{source}_mean_words": row["mean_caption_words"],
            f"{source}_mean_tokens": truncation.loc[source, "mean_tokens"],
            f"{source}_truncated_pct": 100 * row["truncated_share"],
            f"{source}_lost_pct": 100 * truncation.loc[source, "tokens_lost_share"],
            f"{source}_lost_truncated_pct": 100 * truncation.loc[source, "tokens_lost_share_truncated"],
            **{f"{source}_{kind}_pct": 100 * row[f"share_{kind}"] for kind in FIGURE_TYPES},
            f"{source}_units_pct": 100 * analysis.text_quality.loc[source, "share_with_units"],
            f"{source}_numbers_pct": 100 * analysis.text_quality.loc[source, "share_with_numbers"],
            f"{source}_vocabulary": analysis.text_quality.loc[source, "vocabulary"],
        }
    for row in captions.PAPER_TABLE1.to_dict("records"):
        numbers[f"paper_{row['source']}_pairs"] = row["pairs"]
        numbers[f"paper_{row['source']}_mean_chars"] = row["mean_caption_chars"]
    if analysis.evaluation is not None:
        numbers["classifier_accuracy_pct"] = 100 * analysis.evaluation["accuracy"]
        numbers["classifier_labelled"] = analysis.evaluation["labelled"]
    return {name: float(value) for name, value in numbers.items()}
