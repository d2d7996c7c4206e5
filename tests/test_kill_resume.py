"""Kill extraction at random moments (SIGKILL to its whole session, several times, seeded), rerun the same
command: the final shards, parquet and ``sizes.json`` are byte-identical to an uninterrupted run, the
manifest is the same but for timings, and no sample is lost or duplicated.

Kills land while items are processed (after a random number of the parts still to write), while shards
are assembled (after a random number of the shards still to write) and at random times.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hostile_corpus as hc
import pandas as pd
import pytest

from sciclip_utils.commonpool import read_metadata

SEED = 2311_04711


def _command(source: str, inputs: Path, out: Path, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "sciclip_utils.cli", "extract", source, str(inputs), "--out", str(out),
        "--workers", str(workers), "--samples-per-shard", "3", "--no-progress",
    ]  # fmt: skip


def _parts(out: Path) -> int:
    return sum(1 for _ in (out / "parts").glob("*/*.parquet"))


def _shards(out: Path) -> int:
    return sum(1 for _ in (out / "shards").glob("*_stats.json"))


def _session_alive(session: int) -> list[int]:
    """Processes still in the killed command's session (its workers, sandboxes, Ghostscript...)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _run_and_kill(
    command: list[str],
    out: Path,
    when: Callable[[float, int, int], bool],
    parts: Callable[[Path], int] = _parts,
) -> bool:
    """Start ``command`` in a new session; SIGKILL the whole session once ``when(seconds, new parts, new
    shards)`` holds (``parts`` counts the finished units of the first phase). False if it finished first."""
    base_parts, base_shards = parts(out), _shards(out)
    started = time.monotonic()
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while process.poll() is None:
        if when(time.monotonic() - started, parts(out) - base_parts, _shards(out) - base_shards):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            deadline = time.monotonic() + 5
            while _session_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _session_alive(process.pid) == [], "a process of the killed run survived"
            return True
        assert time.monotonic() - started < 180
        time.sleep(0.002)
    assert process.returncode == 0, process.stderr.read().decode()
    return False


def _kill_condition(
    kind: str, rng: random.Random, parts_left: int, shards_left: int, seconds: float
) -> tuple[Callable[[float, int, int], bool], bool]:
    """When to kill the next run, and whether that kill must happen: after a random number of the parts
    or shards still to write (certain), or at a random time (a run with little left to do may end first).
    A phase with fewer than two units left falls back to a random time."""
    if kind == "parts" and parts_left >= 2:
        count = rng.randint(1, parts_left - 1)
        return (lambda _seconds, parts, _shards: parts >= count), True
    if kind == "shards" and shards_left >= 2:
        count = rng.randint(1, shards_left - 1)
        return (lambda _seconds, _parts, shards: shards >= count), True
    moment = rng.uniform(0, seconds)
    return (lambda elapsed, _parts, _shards: elapsed >= moment), False


def _files(out: Path) -> dict[str, str]:
    files = {p.relative_to(out).as_posix(): p for p in (out / "shards").iterdir()}
    files["sizes.json"] = out / "sizes.json"
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in sorted(files.items())}


def _manifest(out: Path) -> pd.DataFrame:
    manifest = pd.read_parquet(out / "manifest.parquet")
    return manifest.drop(columns=[c for c in manifest if c.endswith("seconds")])


def _kill_and_resume(
    source: str, inputs: Path, clean: Path, out: Path, workers: int, kills: int, seed: int
) -> None:
    started = time.monotonic()
    subprocess.run(_command(source, inputs, clean, 0), check=True, capture_output=True, timeout=300)
    seconds = time.monotonic() - started
    items, shards = len(_manifest(clean)), _shards(clean)
    rng = random.Random(seed)
    killed = []
    for kind in (["parts", "time", "parts", "shards", "time", "shards"] * kills)[:kills]:
        when, certain = _kill_condition(kind, rng, items - _parts(out), shards - _shards(out), seconds)
        killed.append(_run_and_kill(_command(source, inputs, out, workers), out, when))
        assert killed[-1] or not certain
    assert any(killed), killed  # every certain kill is checked above; random-time ones may come too late
    subprocess.run(_command(source, inputs, out, workers), check=True, capture_output=True, timeout=300)
    assert _files(out) == _files(clean)
    pd.testing.assert_frame_equal(_manifest(out), _manifest(clean))
    uids = read_metadata(out)["uid"]
    assert uids.is_unique and len(uids) == len(read_metadata(clean))
    assert (
        not list(out.rglob("*.tmp")) and not (out / "tmp").exists() and not (out / "assembling.json").exists()
    )


@pytest.fixture(scope="module")
def pmc_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pmc") / "in"
    token = "kill-resume"
    sentinel = folder.parent / "sentinel.txt"
    sentinel.write_text("keep")
    articles = {
        f"PMC7{n:05d}.tar.gz": hc.pmc_package(
            f"PMC7{n:05d}",
            hc.jats([(f"f{k}", f"Figure {k} of article {n}, a plot.", f"f{k}") for k in range(2)]),
            {f"f{k}.jpg": hc.jpeg(1000 + 2 * n + k) for k in range(2)},
        )
        for n in range(60)
    }  # fmt: skip
    hostile = {name: data for name, (data, _) in list(hc.pmc_hostile(token, sentinel).items())[:4]}
    hc.write_files(folder, articles | hostile)
    return folder


def test_pmc_extraction_killed_repeatedly_resumes_identically(pmc_inputs: Path, tmp_path: Path) -> None:
    _kill_and_resume("pmc", pmc_inputs, tmp_path / "clean", tmp_path / "out", workers=0, kills=6, seed=SEED)


def test_pmc_extraction_on_dask_killed_resumes_identically(pmc_inputs: Path, tmp_path: Path) -> None:
    _kill_and_resume(
        "pmc", pmc_inputs, tmp_path / "clean", tmp_path / "out", workers=2, kills=2, seed=SEED + 1
    )


def test_arxiv_extraction_killed_repeatedly_resumes_identically(tmp_path: Path) -> None:
    packages = {
        f"paper-{n:02d}.gz": hc.tar_gz([
            ("main.tex", hc.latex_paper([(f"f{k}", f"Figure {k} of paper {n}.") for k in range(3)]).encode()),
            *((f"f{k}.png", hc.png(2000 + 3 * n + k)) for k in range(3)),
        ])
        for n in range(15)
    }  # fmt: skip
    hc.write_files(tmp_path / "in", packages)
    _kill_and_resume(
        "arxiv", tmp_path / "in", tmp_path / "clean", tmp_path / "out", workers=0, kills=4, seed=SEED + 2
    )


def _train_cache(out: Path) -> int:
    return sum(1 for _ in out.glob(".cache/*/train/*.npz"))


def test_decontamination_killed_repeatedly_resumes_identically(pmc_inputs: Path, tmp_path: Path) -> None:
    """``sciclip decontaminate`` killed while embedding shards, while writing the kept samples and at random
    times gives the same kept shards, scores and uid subset as an uninterrupted run."""
    from sciclip_utils.extract import extract_pmc

    data = tmp_path / "data"
    extract_pmc([pmc_inputs], data, workers=0, progress=False, samples_per_shard=4)
    against = tmp_path / "eval" / "figures"
    against.mkdir(parents=True)
    for n in range(6):  # exact copies of six figures (removed) and six unrelated images
        (against / f"copy{n}.jpg").write_bytes(hc.jpeg(1000 + 2 * n))
        (against / f"other{n}.jpg").write_bytes(hc.jpeg(5000 + n))

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "sciclip_utils.cli", "decontaminate", str(data), "--against",
                str(tmp_path / "eval"), "--out", str(out), "--batch-size", "8", "--no-progress"]  # fmt: skip

    clean, out = tmp_path / "clean", tmp_path / "out"
    started = time.monotonic()
    subprocess.run(command(clean), check=True, capture_output=True, timeout=300)
    seconds = time.monotonic() - started
    embedded, kept_shards = _train_cache(clean), _shards(clean)
    rng = random.Random(SEED + 3)
    for kind in ["parts", "time", "shards", "time"]:
        when, certain = _kill_condition(
            kind, rng, embedded - _train_cache(out), kept_shards - _shards(out), seconds
        )
        assert _run_and_kill(command(out), out, when, parts=_train_cache) or not certain
    subprocess.run(command(out), check=True, capture_output=True, timeout=300)

    def outputs(folder: Path) -> dict[str, str]:
        paths = [folder / "scores.parquet", folder / "kept_uids.npy", folder / "sizes.json"]
        paths += sorted((folder / "shards").iterdir())
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    assert outputs(out) == outputs(clean)
    assert pd.read_parquet(out / "scores.parquet")["removed"].sum() >= 6
