"""``sciclip fetch evalsets``: Hub-like repos on a local server, mirrored into the folders that
clip_benchmark's ``wds/<task>`` loader (and so evaluation) reads."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from fetch_servers import file_server
from PIL import Image

from sciclip_utils import cli
from sciclip_utils.fetch.evalsets import EVALSET_REPOS, task_folder
from sciclip_utils.sample_corpus.eval import eval_sample_bytes, write_eval_task
from sciclip_utils.tasks import load_tasks


def _hub(root: Path) -> None:
    """Two repos in the Hub's layout: a classification set (plus a train split that must not be fetched)
    and a retrieval set, made by the sample corpus's eval-set writer."""
    made = root / "made"
    for task, count in (("shapes", 6), ("figure_retrieval", 4)):
        write_eval_task(made, task, [eval_sample_bytes(0, task, i) for i in range(count)])
    pcam = root / EVALSET_REPOS["vtab/pcam"]
    shutil.copytree(made / "shapes", pcam)
    shutil.copy(pcam / "test" / "0.tar", pcam / "test" / "1.tar")
    (pcam / "test" / "nshards.txt").write_text("2\n")
    (pcam / "train").mkdir()
    (pcam / "train" / "0.tar").write_bytes(b"not wanted")
    (pcam / ".gitattributes").write_text("*.tar filter=lfs\n")
    shutil.copytree(made / "figure_retrieval", root / EVALSET_REPOS["retrieval/flickr30k"])


def test_mirrors_test_splits_in_the_clip_benchmark_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from clip_benchmark.datasets.builder import build_dataset
    from torchvision import transforms

    hub, dest = tmp_path / "hub", tmp_path / "evalsets"
    _hub(hub)
    with file_server(hub) as (base, log):
        args = ["fetch", "evalsets", "--dest", str(dest), "--hf-endpoint", base]
        args += ["--tasks", "vtab/pcam,retrieval/flickr30k"]
        assert cli.main([*args, "--dry-run"]) == 0
        assert "DataComp eval sets: 2 tasks" in capsys.readouterr().out and not dest.exists()
        assert cli.main(args) == 0
        assert not any("/train/" in path for path, _ in log)

        pcam = dest / task_folder("vtab/pcam")
        tar = pcam / "test" / "1.tar"
        data = bytearray(tar.read_bytes())
        data[600] ^= 0xFF
        tar.write_bytes(bytes(data))  # corrupted (same size): fetched again
        log.clear()
        assert cli.main(args) == 0
        fetched = [path for path, _ in log if "/resolve/" in path]
        assert fetched == [f"/datasets/{EVALSET_REPOS['vtab/pcam']}/resolve/main/test/1.tar"]

    assert sorted(p.relative_to(pcam).as_posix() for p in pcam.rglob("*") if p.is_file()) == [
        "classnames.txt", "task.json", "test/0.tar", "test/1.tar", "test/nshards.txt",
        "zeroshot_classification_templates.txt",
    ]  # fmt: skip
    transform = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
    dataset = build_dataset(
        dataset_name="wds/vtab/pcam", root=str(pcam), transform=transform, split="test", download=False
    )
    assert len(list(dataset)) == 12
    retrieval = build_dataset(
        dataset_name="wds/retrieval/flickr30k",
        root=str(dest / task_folder("retrieval/flickr30k")),
        transform=transform,
        split="test",
        task="zeroshot_retrieval",
        download=False,
    )
    assert len(list(retrieval)) == 4


def test_a_download_killed_midway_resumes(tmp_path: Path) -> None:
    """SIGKILL a `sciclip fetch evalsets` process while a shard streams in; a rerun continues the .part."""
    hub, dest = tmp_path / "hub", tmp_path / "evalsets"
    _hub(hub)
    shard = hub / EVALSET_REPOS["vtab/pcam"] / "test" / "1.tar"
    shard.write_bytes(os.urandom(4 * 2**20))  # 64 chunks of 64 KiB, 25 ms apart
    part = dest / "wds_vtab-pcam_test" / "test" / "1.tar.part"
    with file_server(hub, delay_s=0.025) as (base, log):
        args = ["fetch", "evalsets", "--dest", str(dest), "--hf-endpoint", base, "--tasks", "vtab/pcam"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        process = subprocess.Popen([sys.executable, "-m", "sciclip_utils.cli", *args], env=env)
        deadline = time.monotonic() + 60
        while not (part.is_file() and part.stat().st_size >= 256 * 1024) and time.monotonic() < deadline:
            assert process.poll() is None, "the download finished before it could be killed"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        done = part.stat().st_size
        assert 0 < done < shard.stat().st_size

        log.clear()
        assert cli.main(args) == 0
        ranged = [headers.get("range") for path, headers in log if path.endswith("/test/1.tar")]
    assert ranged == [f"bytes={done}-"]
    assert (dest / "wds_vtab-pcam_test" / "test" / "1.tar").read_bytes() == shard.read_bytes()
    assert not part.exists()


def test_every_datacomp_task_has_a_source_and_unknown_tasks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert len(EVALSET_REPOS) == 40 and set(EVALSET_REPOS) == set(load_tasks("datacomp"))
    for key, repo in EVALSET_REPOS.items():  # each mirror in the folder evaluation reads: the repo's name,
        assert task_folder(key) == load_tasks("datacomp")[key].folder == repo.split("/")[1]
    # ... which for DataComp's webdatasets is its download_evalsets.py / eval_utils folder
    datacomp_folder = {
        key: f"wds_{key.removeprefix('fairness/').replace('/', '-')}_test" for key in EVALSET_REPOS
    }
    assert task_folder("fairness/dollar_street") == datacomp_folder["fairness/dollar_street"]
    assert sum(task_folder(key) == datacomp_folder[key] for key in EVALSET_REPOS) == 37
    assert EVALSET_REPOS["fairness/dollar_street"] == "djghosh/wds_dollar_street_test"
    assert (
        EVALSET_REPOS["vtab/kitti_closest_vehicle_distance"]
        == "djghosh/wds_vtab-kitti_closest_vehicle_distance_test"
    )
    assert cli.main(["fetch", "evalsets", "--dest", str(tmp_path / "d"), "--tasks", "imagenet1k,nope"]) == 2
    assert "unknown eval task(s) ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_winogavil_is_mirrored_where_and_as_evaluation_reads_it(tmp_path: Path) -> None:
    """The ``nlphuji/winogavil`` repo's files (loading script, instances csv, image zip) land in the task's
    folder as they are, and evaluation's reader finds every instance's images in the mirrored zip."""
    from sciclip_utils.evaluate import winogavil

    hub, dest = tmp_path / "hub", tmp_path / "evalsets"
    repo = hub / EVALSET_REPOS["misc/winogavil"]
    repo.mkdir(parents=True)
    (repo / ".gitattributes").write_text("*.zip filter=lfs\n")
    (repo / "README.md").write_text("# Dataset Card for WinoGAViL\n")
    (repo / "winogavil.py").write_text('""" WinoGAViL Loading Script """\n')
    (repo / "winogavil_dataset.csv").write_text(
        "ID,cue,candidates,associations,num_associations,num_candidates\n"
        '7,Ocean,"[""wave"", ""fish"", ""car"", ""desk"", ""sand""]","[""wave"", ""sand""]",2,5\n'
    )
    with zipfile.ZipFile(repo / "winogavil_images.zip", "w") as archive:
        for name in ("wave", "fish", "car", "desk", "sand"):
            image = io.BytesIO()
            Image.new("RGB", (8, 8), (len(name) * 40, 0, 0)).save(image, format="JPEG")
            archive.writestr(f"winogavil_images/{name}.jpg", image.getvalue())
    with file_server(hub) as (base, _):
        args = ["fetch", "evalsets", "--dest", str(dest), "--hf-endpoint", base, "--tasks", "misc/winogavil"]
        assert cli.main(args) == 0
    folder = dest / load_tasks("datacomp")["misc/winogavil"].folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "winogavil.py", "winogavil_dataset.csv", "winogavil_images.zip",
    ]  # fmt: skip
    winogavil.check(folder)
    (instance,) = winogavil.read_instances(folder)
    assert instance.cue == "Ocean" and list(instance.truth) == [True, False, False, False, True]
    with winogavil.ImageArchive(folder / winogavil.IMAGES) as archive:
        assert archive.image("sand").size == (8, 8)
