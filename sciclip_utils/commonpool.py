"""DataComp CommonPool on disk: webdataset shards + per-shard parquet, the one format between stages.

Layout (img2dataset / DataComp): ``shards/{shard:08d}.tar`` holding ``{key}.jpg|.txt|.json`` per sample,
``{shard:08d}.parquet`` with the metadata, ``{shard:08d}_stats.json``; ``sizes.json`` (open_clip_train reads
it beside the shards, a copy sits at the dataset root). Keys are ``shard * 10**oom + index`` zero-padded
to 12 digits, where ``oom = ceil(log10(samples_per_shard))`` (``10**4`` for DataComp's 10,000).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sciclip_utils.files import atomic_write as atomic_write  # re-exported: stages write through commonpool
from sciclip_utils.files import read_frame, read_parquet
from sciclip_utils.images import PreparedImage, jpeg_size, prepare_image

KEY_DIGITS = 12
UID_DTYPE = np.dtype("u8,u8")
BASE_COLUMNS = (
    "uid", "key", "url", "text", "original_width", "original_height", "width", "height", "sha256",
    "source", "paper_id", "figure_id", "license", "caption_chars", "caption_words",
)  # fmt: skip


@dataclass
class Record:
    """One image-text pair with its provenance; ``extra`` becomes extra parquet columns and json fields."""

    image: bytes | Image.Image | PreparedImage
    text: str
    source: str
    paper_id: str
    figure_id: str
    license: str | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    uid: str | None = None  # set only to keep an existing uid (e.g. when re-sharding real CommonPool data)


@dataclass(frozen=True)
class Sample:
    """One sample read back from a shard."""

    key: str
    uid: str | None
    jpg: bytes
    text: str
    json: dict[str, Any]


@dataclass
class WriteStats:
    """What a writer did."""

    written: int = 0
    duplicates: int = 0
    shards: int = 0
    resumed_from: int = 0


def make_uid(source: str, paper_id: str, figure_id: str, sha256: str) -> str:
    """Deterministic 128-bit uid (32 hex chars) of a sample's provenance and image digest."""
    return hashlib.sha256("\x1f".join((source, paper_id, figure_id, sha256)).encode()).hexdigest()[:32]


def key_multiplier(samples_per_shard: int) -> int:
    """img2dataset's key scheme: ``key = shard * multiplier + index``."""
    return 10 ** max(1, math.ceil(math.log10(samples_per_shard)))


def shard_dir(data_dir: str | Path) -> Path:
    """The folder holding the ``.tar`` shards: ``data_dir/shards`` if present, else ``data_dir`` itself."""
    data_dir = Path(data_dir)
    return data_dir / "shards" if (data_dir / "shards").is_dir() else data_dir


def dedup_key(jpeg: bytes, text: str) -> tuple[str, str]:
    """What makes two samples exact duplicates: the SHA-256 of the image bytes and the caption with its
    whitespace collapsed (as written)."""
    return hashlib.sha256(jpeg).hexdigest(), " ".join(text.split())


def record_uid(record: Record, sha256: str) -> str:
    """The uid ``record`` is written under (its own, else derived from its source, paper, figure and image)."""
    return record.uid or make_uid(record.source, record.paper_id, record.figure_id, sha256)


class TarWriter:
    """Writes a tar of regular files (mode 0644, mtime 0, no owner names), byte for byte what Python's
    ``tarfile`` writes in GNU format, at a fifth of its cost per member (three members per sample)."""

    BLOCK, RECORD = 512, 20 * 512

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")

    def add(self, name: str, data: bytes) -> None:
        encoded = name.encode()
        if len(encoded) > 99 or len(data) >= 8**11:
            raise ValueError(f"tar member {name!r}: name over 99 bytes or data of 8 GiB or more")
        header = bytearray(self.BLOCK)
        header[: len(encoded)] = encoded
        header[100:124] = b"0000644\x000000000\x000000000\x00"  # mode, uid, gid
        header[124:148] = b"%011o\x00" % len(data) + b"00000000000\x00"  # size, mtime
        header[148:157] = b"        0"  # checksum placeholder (spaces), type: regular file
        header[257:265] = b"ustar  \x00"  # GNU magic and version
        header[148:156] = b"%06o\x00 " % sum(header)
        padding = -len(data) % self.BLOCK
        self._file.write(header)
        self._file.write(data)
        self._file.write(bytes(padding))

    def close(self) -> None:
        """End-of-archive blocks, padded to a whole record, as ``tarfile`` does."""
        end = self._file.tell() + 2 * self.BLOCK
        self._file.write(bytes(2 * self.BLOCK + -end % self.RECORD))
        self._file.close()


class ShardWriter:
    """Streams records into CommonPool shards; crash-safe and resumable.

    A shard's files appear under their final names only when complete (temp name, then rename; the stats
    file last). Opening a writer on a folder with complete shards continues after them: ``resume_offset``
    says how many input records those shards consumed, so the caller skips that many.
    """

    def __init__(self, out_dir: str | Path, samples_per_shard: int = 10_000) -> None:
        if samples_per_shard < 1:
            raise ValueError("samples_per_shard must be >= 1")
        self.out_dir = Path(out_dir)
        self.shards = self.out_dir / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        self.samples_per_shard = samples_per_shard
        self.multiplier = key_multiplier(samples_per_shard)
        self.stats = WriteStats()
        self.sizes: dict[str, int] = {}
        self._seen: set[tuple[str, str]] = set()
        self._consumed = 0
        self._shard = 0
        self._rows: list[dict[str, Any]] = []
        self._tar: TarWriter | None = None
        self._shard_duplicates = 0
        self._resume()

    @property
    def resume_offset(self) -> int:
        """Input records consumed by the complete shards found on disk."""
        return self.stats.resumed_from

    def _resume(self) -> None:
        for leftover in self.shards.glob("*.tmp"):
            leftover.unlink()
        while (self.shards / f"{self._shard:08d}_stats.json").is_file():
            name = f"{self._shard:08d}"
            stats = json.loads((self.shards / f"{name}_stats.json").read_text())
            table = read_parquet(self.shards / f"{name}.parquet", columns=["sha256", "text"])
            self._seen.update(
                zip(table.column("sha256").to_pylist(), table.column("text").to_pylist(), strict=True)
            )
            self.sizes[f"{name}.tar"] = stats["count"]
            self.stats.written += stats["count"]
            self.stats.duplicates += stats["duplicates"]
            self._consumed = stats["input_consumed"]
            self._shard += 1
        for stale in self.shards.glob(f"{self._shard:08d}*"):
            stale.unlink()  # files of the shard that was being written when a run died
        self.stats.shards = self._shard
        self.stats.resumed_from = self._consumed

    def write(self, record: Record) -> str | None:
        """Add one record; returns its uid, or None when it exactly duplicates one already written."""
        self._consumed += 1
        prepared = record.image if isinstance(record.image, PreparedImage) else prepare_image(record.image)
        sha256, text = dedup_key(prepared.jpeg, record.text)
        if (sha256, text) in self._seen:
            self.stats.duplicates += 1
            self._shard_duplicates += 1
            return None
        self._seen.add((sha256, text))
        if self._tar is None:
            self._tar = TarWriter(self.shards / f"{self._shard:08d}.tar.tmp")
        uid = record_uid(record, sha256)
        key = f"{self._shard * self.multiplier + len(self._rows):0{KEY_DIGITS}d}"
        row: dict[str, Any] = {
            "uid": uid,
            "key": key,
            "url": record.url or f"{record.source}:{record.paper_id}#{record.figure_id}",
            "text": text,
            "original_width": prepared.original_width,
            "original_height": prepared.original_height,
            "width": prepared.width,
            "height": prepared.height,
            "sha256": sha256,
            "source": record.source,
            "paper_id": record.paper_id,
            "figure_id": record.figure_id,
            "license": record.license,
            "caption_chars": len(text),
            "caption_words": len(text.split()),
            **{k: v for k, v in record.extra.items() if k not in BASE_COLUMNS},
        }
        self._tar.add(f"{key}.jpg", prepared.jpeg)
        self._tar.add(f"{key}.txt", text.encode())
        self._tar.add(f"{key}.json", json.dumps({**row, "caption": text}, sort_keys=True).encode())
        self._rows.append(row)
        if len(self._rows) >= self.samples_per_shard:
            self._finish_shard()
        return uid

    def _finish_shard(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"{self._shard:08d}"
        assert self._tar is not None
        self._tar.close()
        self._tar = None
        os.replace(self.shards / f"{name}.tar.tmp", self.shards / f"{name}.tar")
        columns = list(BASE_COLUMNS) + sorted({k for row in self._rows for k in row} - set(BASE_COLUMNS))
        table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in self._rows])
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        atomic_write(self.shards / f"{name}.parquet", buffer.getvalue())
        stats = {
            "count": len(self._rows),
            "successes": len(self._rows),
            "failed_to_download": 0,
            "failed_to_resize": 0,
            "duplicates": self._shard_duplicates,
            "input_consumed": self._consumed,
        }
        atomic_write(self.shards / f"{name}_stats.json", json.dumps(stats, indent=2, sort_keys=True).encode())
        self.sizes[f"{name}.tar"] = len(self._rows)
        self.stats.written += len(self._rows)
        self.stats.shards += 1
        self._rows, self._shard_duplicates = [], 0
        self._shard += 1

    def close(self) -> WriteStats:
        """Flush the last partial shard and write ``sizes.json``."""
        if self._rows:
            self._finish_shard()
        elif self._tar is not None:  # only duplicates went into an opened shard
            self._tar.close()
            self._tar = None
            (self.shards / f"{self._shard:08d}.tar.tmp").unlink()
        sizes = json.dumps(self.sizes, indent=2, sort_keys=True).encode()
        atomic_write(self.shards / "sizes.json", sizes)
        atomic_write(self.out_dir / "sizes.json", sizes)
        return self.stats

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None:
            self._tar.close()


def write_dataset(
    records: Iterable[Record], out_dir: str | Path, samples_per_shard: int = 10_000
) -> WriteStats:
    """Write ``records`` as a CommonPool dataset under ``out_dir``; a rerun resumes after complete shards."""
    with ShardWriter(out_dir, samples_per_shard) as writer:
        for index, record in enumerate(records):
            if index >= writer.resume_offset:
                writer.write(record)
    return writer.stats


def shard_paths(data_dir: str | Path) -> list[Path]:
    """The ``.tar`` shards of a CommonPool-format folder, in order."""
    return sorted(shard_dir(data_dir).glob("*.tar"))


def read_metadata(data_dir: str | Path) -> Any:
    """All shards' parquet metadata as one DataFrame with a ``shard`` column (shard file stem)."""
    import pandas as pd

    frames = []
    for path in sorted(shard_dir(data_dir).glob("*.parquet")):
        frame = read_frame(path)
        frame.insert(0, "shard", path.stem)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["shard", *BASE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def iter_samples(data_dir: str | Path) -> Iterator[Sample]:
    """Iterate every sample of a CommonPool-format folder (ours or an img2dataset download)."""
    for path in shard_paths(data_dir):
        yield from iter_shard(path)


def iter_shard(path: str | Path) -> Iterator[Sample]:
    """Iterate the samples of one ``.tar`` shard."""
    with tarfile.open(path, "r") as tar:
        current: str | None = None
        parts: dict[str, bytes] = {}
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = Path(member.name).name.partition(".")
            if key != current and current is not None:
                sample = _sample_from_parts(current, parts)
                if sample is not None:
                    yield sample
                parts = {}
            current = key
            handle = tar.extractfile(member)
            parts[ext.lower()] = handle.read() if handle else b""
        if current is not None:
            sample = _sample_from_parts(current, parts)
            if sample is not None:
                yield sample


def _sample_from_parts(key: str, parts: dict[str, bytes]) -> Sample | None:
    image = next((parts[ext] for ext in ("jpg", "jpeg", "png", "webp") if ext in parts), None)
    if image is None:
        return None
    meta = json.loads(parts["json"]) if "json" in parts else {}
    text = parts["txt"].decode("utf-8", "replace") if "txt" in parts else meta.get("caption", "")
    return Sample(key=key, uid=meta.get("uid"), jpg=image, text=text, json=meta)


def uids_to_array(uids: Iterable[str]) -> np.ndarray:
    """DataComp's subset representation: sorted ``u8,u8`` pairs of the uid's two 64-bit halves."""
    pairs = sorted({(int(uid[:16], 16), int(uid[16:32], 16)) for uid in uids})
    return np.array(pairs, dtype=UID_DTYPE)


def array_to_uids(array: np.ndarray) -> list[str]:
    """Back from DataComp's ``u8,u8`` array to 32-hex-char uids."""
    return [f"{int(a):016x}{int(b):016x}" for a, b in array.tolist()]


def save_uid_subset(uids: Iterable[str], path: str | Path) -> np.ndarray:
    """Save uids as a DataComp subset ``.npy`` (sorted ``u8,u8``); returns the array."""
    array = uids_to_array(uids)
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write(Path(path), buffer.getvalue())
    return array


def load_uid_subset(path: str | Path) -> np.ndarray:
    """Load a DataComp subset ``.npy``."""
    array = np.load(path)
    if array.dtype != UID_DTYPE:
        raise ValueError(f"{path}: expected dtype {UID_DTYPE}, got {array.dtype}")
    return array


def apply_uid_subset(
    data_dir: str | Path,
    subset: str | Path | np.ndarray,
    out_dir: str | Path,
    samples_per_shard: int = 10_000,
) -> WriteStats:
    """Copy the samples whose uid is in ``subset`` into a new CommonPool dataset (like DataComp's resharder)."""
    array = subset if isinstance(subset, np.ndarray) else load_uid_subset(subset)
    wanted = set(array_to_uids(array))
    metadata = read_metadata(data_dir)
    rows = {row["uid"]: row for row in metadata.to_dict("records")} if len(metadata) else {}

    def records() -> Iterator[Record]:
        for sample in iter_samples(data_dir):
            if sample.uid in wanted:
                yield _record_from_sample(sample, rows.get(sample.uid, {}))

    return write_dataset(records(), out_dir, samples_per_shard)


def _record_from_sample(sample: Sample, row: dict[str, Any]) -> Record:
    """Rebuild a Record from a stored sample, keeping its uid, url and extra metadata."""
    meta = {**sample.json, **{k: v for k, v in row.items() if k != "shard"}}
    width = meta.get("original_width") or meta.get("width") or 0
    height = meta.get("original_height") or meta.get("height") or 0
    derived = {"key", "caption", "width", "height", "sha256", "caption_chars", "caption_words"}
    return Record(
        image=PreparedImage(sample.jpg, *jpeg_size(sample.jpg), int(width), int(height)),
        text=sample.text,
        source=meta.get("source") or "commonpool",
        paper_id=meta.get("paper_id") or "",
        figure_id=meta.get("figure_id") or "",
        license=meta.get("license"),
        url=meta.get("url"),
        uid=sample.uid,
        extra={k: v for k, v in meta.items() if k not in BASE_COLUMNS and k not in derived and _scalar(v)},
    )


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)
