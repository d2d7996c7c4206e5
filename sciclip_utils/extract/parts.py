"""Part files: one parquet file per processed item under ``out_dir/parts/`` holding its pairs (prepared
JPEGs and metadata) and, in the schema metadata, its manifest row. A part exists once its item is done."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from sciclip_utils.commonpool import Record
from sciclip_utils.extract.items import STATUSES, ItemResult, WorkItem
from sciclip_utils.files import atomic_write, read_parquet, read_schema_metadata
from sciclip_utils.images import PreparedImage, jpeg_size

MANIFEST_COLUMNS = (
    "input", "paper_id", "status", "stage", "reason", "main_file", "figures_found", "pairs_written",
    "pairs_duplicate", "duplicate_of", "seconds", "problem_count", "problems",
)  # fmt: skip


def part_path(parts_dir: Path, key: str) -> Path:
    """Where the result of the item with ``key`` is stored."""
    digest = hashlib.sha1(key.encode()).hexdigest()
    return parts_dir / digest[:2] / f"{digest}.parquet"


def manifest_row(item: WorkItem, result: ItemResult, seconds: float) -> dict[str, Any]:
    """One manifest row for an item."""
    if result.status not in STATUSES:
        raise ValueError(f"unknown status {result.status!r}")
    return {
        "key": item.key,
        "input": item.input if item.member is None else f"{item.input}!{item.member}",
        "paper_id": item.paper_id,
        "status": result.status,
        "stage": result.stage,
        "reason": result.reason,
        "main_file": result.main_file,
        "figures_found": result.figures_found,
        "pairs_written": len(result.records),
        "seconds": round(seconds, 4),
        "problem_count": len(result.problems),
        "problems": list(result.problems),
        **result.extra,
    }


def write_part(path: Path, records: list[Record], row: dict[str, Any]) -> None:
    """Store an item's records and manifest row as one parquet file, atomically."""
    atomic_write(path, part_bytes(records, row), per_process=True)  # a retried item may overlap


def part_bytes(records: list[Record], row: dict[str, Any]) -> bytes:
    """The parquet bytes of an item's part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [r.image for r in records]
    if not all(isinstance(image, PreparedImage) for image in images):
        raise TypeError("records must carry PreparedImage images (prepare them in the worker)")
    table = pa.table(
        {
            "jpeg": pa.array([image.jpeg for image in images], pa.binary()),
            "width": pa.array([image.width for image in images], pa.int64()),
            "height": pa.array([image.height for image in images], pa.int64()),
            "original_width": pa.array([image.original_width for image in images], pa.int64()),
            "original_height": pa.array([image.original_height for image in images], pa.int64()),
            "text": pa.array([r.text for r in records], pa.string()),
            "source": pa.array([r.source for r in records], pa.string()),
            "paper_id": pa.array([r.paper_id for r in records], pa.string()),
            "figure_id": pa.array([r.figure_id for r in records], pa.string()),
            "license": pa.array([r.license for r in records], pa.string()),
            "url": pa.array([r.url for r in records], pa.string()),
            "extra": pa.array([json.dumps(r.extra, sort_keys=True) for r in records], pa.string()),
        }
    ).replace_schema_metadata({"sciclip_row": json.dumps(row, sort_keys=True, default=str)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none", use_dictionary=False)  # snappy: < 1% off figure JPEGs
    return buffer.getvalue()


def read_part_row(path: Path) -> dict[str, Any]:
    """Only the manifest row of an item's part (its parquet metadata)."""

    return json.loads(read_schema_metadata(path)[b"sciclip_row"])


def read_part(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """Load an item's manifest row and records from its part file."""
    table = read_parquet(path)
    row = json.loads(table.schema.metadata[b"sciclip_row"])
    records = []
    for r in table.to_pylist():
        size = (r["width"], r["height"]) if "width" in r else jpeg_size(r["jpeg"])  # older parts: no size
        records.append(
            Record(
                image=PreparedImage(r["jpeg"], *size, r["original_width"], r["original_height"]),
                text=r["text"],
                source=r["source"],
                paper_id=r["paper_id"],
                figure_id=r["figure_id"],
                license=r["license"],
                url=r["url"],
                extra=json.loads(r["extra"]),
            )
        )
    return row, records
