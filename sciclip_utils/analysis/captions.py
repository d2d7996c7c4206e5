"""Caption statistics of CommonPool-format sources: Table 1, length distributions, CLIP truncation, text quality.

Every function takes the metadata DataFrame of one source (``commonpool.read_metadata``) or a mapping of
source name to such frames; only the ``text`` column is required (DataComp's own column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# The paper's Table 1 (arXiv:2311.04711): figure-caption pairs and mean caption length in characters.
PAPER_TABLE1 = pd.DataFrame(
    {
        "source": ["commonpool", "arxiv", "pmc"],
        "dataset": ["CommonPool small", "arXiv", "PMC"],
        "pairs": [11_778_443, 1_117_377, 766_855],
        "mean_caption_chars": [45.21, 266.96, 464.91],
    }
)
CONTEXT_LENGTH = 77  # CLIP's text context, start and end tokens included
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

_NUMBER = re.compile(r"\d")
_UNITS = (
    r"nm|µm|μm|um|mm|cm|km|m|ms|ns|µs|μs|s|min|h|Hz|kHz|MHz|GHz|K|°C|℃|eV|keV|MeV|GeV|TeV|meV|mK|T|mT|"
    r"Pa|kPa|MPa|GPa|g|mg|µg|μg|kg|L|mL|µL|μL|M|mM|µM|μM|nM|pM|mol|kDa|Da|bp|kb|Mb|V|mV|kV|A|mA|W|mW|kW|"
    r"J|dB|kpc|Mpc|pc|AU|Jy|mJy|erg/s|rpm|px|dpi|a\.u\.|%"
)
_NUMBER_WITH_UNIT = re.compile(rf"\d(?:\.\d+)?\s?(?:{_UNITS})(?![A-Za-z])")
_LATEX_MATH = re.compile(
    r"\$[^$]+\$|\\\(|\\\[|\\[A-Za-z]+\{|\\(?:alpha|beta|gamma|delta|mu|sigma|lambda|pm|times)\b"
)
_MATH_SYMBOLS = re.compile(r"[±×÷≤≥≈≠∼∝∞∑∫√∂∇αβγδεζηθκλμνξπρστφχψωΓΔΘΛΣΦΨΩ^]")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def source_name(metadata: pd.DataFrame, fallback: str) -> str:
    """The source of a folder's samples: its ``source`` column when present and single-valued, else ``fallback``."""
    if "source" in metadata.columns:
        values = metadata["source"].dropna().unique()
        if len(values) == 1:
            return str(values[0])
    return fallback


def caption_lengths(metadata: pd.DataFrame) -> pd.DataFrame:
    """Per caption: ``chars`` (``len(text)``, the paper's measure) and ``words`` (whitespace-separated)."""
    text = metadata["text"].fillna("").astype(str)
    return pd.DataFrame({"chars": text.str.len(), "words": text.str.split().str.len()}, index=metadata.index)


def caption_table(sources: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Table 1 columns per source: pairs, mean and median caption length in characters and words."""
    rows = []
    for source, metadata in sources.items():
        lengths = caption_lengths(metadata)
        rows.append(
            {
                "source": source,
                "pairs": len(metadata),
                "mean_caption_chars": float(lengths["chars"].mean()) if len(lengths) else np.nan,
                "median_caption_chars": float(lengths["chars"].median()) if len(lengths) else np.nan,
                "mean_caption_words": float(lengths["words"].mean()) if len(lengths) else np.nan,
                "median_caption_words": float(lengths["words"].median()) if len(lengths) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def beside_paper(table: pd.DataFrame) -> pd.DataFrame:
    """Our pairs and mean caption characters next to the paper's, one row per source the paper reports."""
    ours = table.set_index("source")[["pairs", "mean_caption_chars"]]
    paper = PAPER_TABLE1.set_index("source")
    joined = paper.join(ours, lsuffix="_paper", rsuffix="_ours", how="left")
    joined["chars_ratio_ours_to_paper"] = (
        joined["mean_caption_chars_ours"] / joined["mean_caption_chars_paper"]
    )
    return joined.reset_index()


def length_quantiles(
    sources: Mapping[str, pd.DataFrame], quantiles: Sequence[float] = QUANTILES
) -> pd.DataFrame:
    """Quantiles of caption length per source and unit (rows ``(source, unit)``, columns ``q05``...)."""
    rows = {}
    for source, metadata in sources.items():
        lengths = caption_lengths(metadata)
        for unit in ("chars", "words"):
            values = lengths[unit].quantile(list(quantiles)) if len(lengths) else [np.nan] * len(quantiles)
            rows[(source, unit)] = {
                f"q{round(q * 100):02d}": float(v) for q, v in zip(quantiles, values, strict=True)
            }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["source", "unit"])


def clip_tokenizer(model: str = "ViT-B-32") -> Any:
    """open_clip's tokenizer of ``model`` (for ViT-B-32 the SimpleTokenizer, whose BPE vocabulary ships in
    the open_clip wheel: no download)."""
    import open_clip

    return open_clip.get_tokenizer(model)


def token_counts(texts: Sequence[str], tokenizer: Any) -> np.ndarray:
    """BPE tokens of each text as the tokenizer encodes it, start and end tokens not counted."""
    return np.array([len(tokenizer.encode(text)) for text in texts], dtype=np.int64)


def truncation(counts: np.ndarray, context_length: int = CONTEXT_LENGTH) -> dict[str, float]:
    """What the context cuts off: ``truncated_share`` (captions longer than the ``context_length - 2`` text
    tokens), ``tokens_lost_share`` (mean over captions of the share of its tokens cut, 0 for those that
    fit) and ``tokens_lost_share_truncated`` (the same over the truncated captions only)."""
    fits = context_length - 2
    counts = np.asarray(counts, dtype=np.float64)
    lost = np.where(counts > fits, (counts - fits) / np.maximum(counts, 1), 0.0)
    truncated = counts > fits
    return {
        "captions_tokenized": int(len(counts)),
        "mean_tokens": float(counts.mean()) if len(counts) else np.nan,
        "truncated_share": float(truncated.mean()) if len(counts) else np.nan,
        "tokens_lost_share": float(lost.mean()) if len(counts) else np.nan,
        "tokens_lost_share_truncated": float(lost[truncated].mean()) if truncated.any() else 0.0,
    }


def sample_texts(metadata: pd.DataFrame, limit: int | None, seed: int = 0) -> list[str]:
    """All captions, or a uniform sample of ``limit`` of them (fixed by ``seed``)."""
    text = metadata["text"].fillna("").astype(str)
    if limit is not None and len(text) > limit:
        text = text.sample(limit, random_state=seed)
    return text.tolist()


def text_quality(metadata: pd.DataFrame) -> dict[str, float]:
    """Vocabulary size (distinct lower-cased words), and the shares of captions with a digit, a number with
    a unit, LaTeX maths left in (``$...$``, ``\\(``, ``\\cmd{``) and maths symbols (Greek, ±, ×, ^)."""
    text = metadata["text"].fillna("").astype(str)
    vocabulary: set[str] = set()
    for caption in text:
        vocabulary.update(word.lower() for word in _WORD.findall(caption))

    def share(pattern: re.Pattern[str]) -> float:
        return float(text.str.contains(pattern).mean()) if len(text) else np.nan

    return {
        "vocabulary": len(vocabulary),
        "share_with_numbers": share(_NUMBER),
        "share_with_units": share(_NUMBER_WITH_UNIT),
        "share_with_latex_math": share(_LATEX_MATH),
        "share_with_math_symbols": share(_MATH_SYMBOLS),
    }


def breakdown(metadata: pd.DataFrame, column: str, top: int = 8) -> pd.Series | None:
    """Share of captions per value of ``column`` (the ``top`` commonest, the rest as ``other``), or None
    when the column is absent or empty."""
    if column not in metadata.columns or metadata[column].isna().all():
        return None
    counts = metadata[column].fillna("unknown").astype(str).value_counts()
    if len(counts) > top:
        counts = pd.concat([counts.iloc[:top], pd.Series({"other": counts.iloc[top:].sum()})])
    return counts / counts.sum()
