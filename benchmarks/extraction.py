"""What ``bench_arxiv.py`` and ``bench_pmc.py`` share: the split of an item's time by phase, the obvious
baseline's output, image floors, and 1 -> 2 worker scaling on a Dask ``LocalCluster``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from benchlib import interleaved

from sciclip_utils.extract import ItemResult, WorkItem, run_extraction
from sciclip_utils.extract.runner import task_batches
from sciclip_utils.images import reduced_decoding, shrunk_size

JPEG_QUALITY = 95  # the output JPEG quality (sciclip_utils.images.JPEG_QUALITY)
PHASES = ("reading", "parsing", "captions", "images", "writing")


class Stopwatch:
    """Seconds spent in chosen functions (outermost calls only), by phase, while active.

    ``targets`` maps a phase to (owner, attribute) pairs: a module or class and the function's name there.
    """

    def __init__(self, targets: dict[str, list[tuple[Any, str]]]) -> None:
        self.targets = targets
        self.seconds = dict.fromkeys(targets, 0.0)
        self._depth = 0
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, phase: str, function: Callable) -> Callable:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self._depth -= 1

        return timed_call

    def __enter__(self) -> Stopwatch:
        for phase, places in self.targets.items():
            for owner, name in places:
                function = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                self._saved.append((owner, name, function))
                setattr(owner, name, self._wrap(phase, function))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, function in reversed(self._saved):
            setattr(owner, name, function)
        self._saved.clear()


def split_round(
    items: Sequence[WorkItem], process: Callable[[WorkItem], ItemResult], targets: dict[str, list]
) -> dict[str, float]:
    """One in-process pass over ``items``: seconds by phase (parsing = the rest of the item's time), the
    writing of the pairs as a CommonPool dataset, and the pair count."""
    from sciclip_utils.commonpool import write_dataset

    with Stopwatch(targets) as watch:
        start = time.perf_counter()
        records = [record for item in items for record in process(item).records]
        total = time.perf_counter() - start
    seconds = dict(watch.seconds)
    seconds["parsing"] = total - sum(seconds.values())
    with tempfile.TemporaryDirectory() as folder:
        seconds["writing"] = timed_write(lambda: write_dataset(records, Path(folder) / "out"))
    seconds["item"] = total
    seconds["pairs"] = len(records)
    return seconds


def timed_write(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def write_baseline_tar(pairs: list[tuple[bytes, str]], path: Path) -> None:
    """The obvious writer: ``tarfile`` with a .jpg and a .txt per pair."""
    with tarfile.open(path, "w") as tar:
        for number, (jpeg, text) in enumerate(pairs):
            for suffix, data in (("jpg", jpeg), ("txt", text.encode())):
                info = tarfile.TarInfo(f"{number:09d}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def pillow_thumbnail_jpeg(data: bytes) -> bytes:
    """The obvious image path: Pillow decodes everything, ``thumbnail`` to 512 px, save as JPEG."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    img = img.convert("RGB")
    img.thumbnail((512, 512))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def raster_decode_floor(data: bytes) -> np.ndarray | None:
    """The least any decoder must do: a JPEG's entropy-coded data read (decoded at 1/8 scale), another
    raster decoded in full by OpenCV; None when OpenCV cannot decode it."""
    flag = cv2.IMREAD_REDUCED_COLOR_8 if data[:3] == b"\xff\xd8\xff" else cv2.IMREAD_COLOR
    return cv2.imdecode(np.frombuffer(data, np.uint8), flag)


def output_scale_flag(data: bytes, max_side: int = 512) -> int:
    """The OpenCV flag that decodes a JPEG at the smallest of libjpeg's scales (1/8, 1/4, 1/2, 1) keeping
    it at least as large as its output (longest side ``max_side``): the least a decoder must produce before
    any resampling; other rasters in full."""
    from PIL import Image

    header = Image.open(io.BytesIO(data))
    if header.format != "JPEG":
        return cv2.IMREAD_COLOR
    width, height = header.size
    return cv2.IMREAD_COLOR | reduced_decoding(width, height, shrunk_size(width, height, max_side))[1]


def encode_floor(pixels: np.ndarray) -> bytes:
    """Encoding the output (512-px pixels) as the JPEG that is stored."""
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes()


def output_pixels(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def replicated(items: Sequence[WorkItem], copies: int) -> list[WorkItem]:
    """``copies`` of every item under distinct keys: enough work for two workers to share evenly."""
    return [dataclasses.replace(item, key=f"{item.key}#{n}") for n in range(copies) for item in items]


def scaling(
    items: Sequence[WorkItem], process: Callable[[WorkItem], ItemResult], source: str, seconds: float
) -> dict:
    """Seconds of ``run_extraction`` on 1 and on 2 Dask workers: both clusters started as the runner starts
    its own (``cluster.dask_client`` with :data:`~sciclip_utils.extract.runner.DASK_SETTINGS`) and warmed
    up by an untimed run first (the figure is the work, not the start-up), then their runs alternated for
    ``seconds`` (at least twice each) so that both meet the same load, the best of each; the pairs
    extracted (the writer keeps one of each duplicate)."""
    from sciclip_utils.cluster import dask_client
    from sciclip_utils.extract.runner import DASK_SETTINGS

    counts = {"runs": 0, "pairs": 0}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        schedulers = {
            workers: stack.enter_context(
                dask_client(workers, None, folder / "dask", DASK_SETTINGS)
            ).scheduler.address
            for workers in (1, 2)
        }

        def run(workers: int) -> float:
            out = folder / str(counts["runs"])
            counts["runs"] += 1
            start = time.perf_counter()
            summary = run_extraction(items, process, out, source=source, scheduler=schedulers[workers], progress=False)  # fmt: skip
            elapsed = time.perf_counter() - start
            counts["pairs"] = pairs_extracted(summary.manifest)
            shutil.rmtree(out)
            return elapsed

        for workers in schedulers:
            run(workers)
        times = interleaved({workers: functools.partial(run, workers) for workers in schedulers}, seconds)
    return {
        "seconds": {workers: times[workers]["best"] for workers in schedulers},
        "median ratio": times[1]["median"] / times[2]["median"],
        "rounds": times[1]["rounds"],
        "pairs": counts["pairs"],
        "items": len(items),
        "per_task": {workers: len(task_batches(list(items), workers)[0]) for workers in schedulers},
    }


def pairs_extracted(manifest: Any) -> int:
    """Pairs the items produced, the duplicates the writer dropped included (``pairs_duplicate``)."""
    dropped = manifest["pairs_duplicate"].sum() if "pairs_duplicate" in manifest else 0
    return int(manifest["pairs_written"].sum() + dropped)


def report_split(report: Any, group: str, split: dict[str, float]) -> None:
    """Pairs/s per worker and each phase's share, from the best in-process round."""
    pairs = split["pairs"]
    total = split["item"] + split["writing"]
    report.add(group, "pairs/s per worker (1 process, in-process)", pairs / total, "pairs/s")
    for phase in PHASES:
        report.add(
            group,
            f"  {phase}",
            1000 * split[phase] / pairs,
            "ms/pair",
            note=f"{split[phase] / total:.0%} of the time",
        )


def report_scaling(report: Any, group: str, result: dict) -> None:
    one, two = result["seconds"][1], result["seconds"][2]
    pairs = result["pairs"]
    report.add(group, "1 Dask worker", pairs / one, "pairs/s")
    report.add(
        group, "2 Dask workers (speed-up over 1)", pairs / two, "pairs/s",
        baseline=pairs / one, baseline_name="1 worker", target=">= 1.7",
        note=f"{result['items']} items ({result['per_task'][1]} / {result['per_task'][2]} per task), {pairs} "
        f"pairs; LocalClusters set up as the runner's, warmed up, then their runs alternated, best of "
        f"{result['rounds']} each (ratio of the medians {result['median ratio']:.2f})",
    )  # fmt: skip
