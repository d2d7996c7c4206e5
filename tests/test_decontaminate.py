"""Decontamination: descriptors, eval-set readers, search, the stage's outputs, calibration, ISC, CLI."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageOps

from sciclip_utils import cli, commonpool
from sciclip_utils import decontam as dc
from sciclip_utils.decontam import calibration, descriptors
from sciclip_utils.evalsets import find_eval_sets


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _encode(img: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def _copy_of(img: Image.Image, crop: float, flip: bool, scale: float) -> Image.Image:
    """A near-duplicate as the sample corpus plants them: centred crop, flip, colour shift, resize, JPEG."""
    w, h = img.size
    dx, dy = round(w * crop / 2), round(h * crop / 2)
    out = img.crop((dx, dy, w - dx, h - dy))
    out = ImageOps.mirror(out) if flip else out
    out = ImageEnhance.Brightness(out).enhance(1.06)
    out = out.resize((round(out.width * scale), round(out.height * scale)), Image.Resampling.BICUBIC)
    return Image.open(io.BytesIO(_jpeg(out, 80))).convert("RGB")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A clip_benchmark eval set, an ImageFolder eval set and a CommonPool pool with 3 planted copies."""
    root = tmp_path_factory.mktemp("decontam")
    rng = np.random.default_rng(7)
    tiles = calibration._photo_tiles()  # china (0-8), flower (9-17), grace hopper (18-26)
    wds_images, folder_images = tiles[0:9], tiles[9:15]

    wds = root / "evalsets" / "photos"
    (wds / "test").mkdir(parents=True)
    with tarfile.open(wds / "test" / "0.tar", "w") as tar:
        for index, img in enumerate(wds_images):
            fmt, ext = [("WEBP", "webp"), ("PNG", "png"), ("JPEG", "jpg")][index % 3]
            for name, data in ((f"s{index:06d}.{ext}", _encode(img, fmt)), (f"s{index:06d}.cls", b"0")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (wds / "test" / "nshards.txt").write_text("1\n")
    (wds / "classnames.txt").write_text("photo\n")

    folder = root / "flowers"
    for index, img in enumerate(folder_images):
        klass = folder / ("petal" if index % 2 else "leaf")
        klass.mkdir(parents=True, exist_ok=True)
        img.save(klass / f"img{index}.png")

    clean = [("hopper", img) for img in tiles[18:27]]
    clean += [
        ("plots", calibration._plot_image(rng, kind))
        for kind in ("line", "bar", "scatter", "hist", "heatmap") * 3
    ]
    clean += [("textures", calibration._texture_image(rng)) for _ in range(6)]
    planted = [
        ("web", _copy_of(wds_images[3], 0.12, True, 0.8), "photos", "0.tar/s000003.webp"),
        ("web", _copy_of(wds_images[7], 0.10, False, 1.25), "photos", "0.tar/s000007.png"),
        ("paper", _copy_of(folder_images[3], 0.10, True, 0.9), "flowers", "petal/img3.png"),
    ]
    records = [
        commonpool.Record(_jpeg(img), f"clean {i}", source, f"p{i}", "fig1")
        for i, (source, img) in enumerate(clean)
    ]
    records[5:5] = [
        commonpool.Record(_jpeg(img), f"copy {i}", source, f"copy{i}", "fig1")
        for i, (source, img, _, _) in enumerate(planted)
    ]
    data = root / "pool"
    commonpool.write_dataset(records, data, samples_per_shard=12)
    meta = commonpool.read_metadata(data)
    planted_uids = {
        meta.loc[meta["paper_id"] == f"copy{i}", "uid"].item(): (eval_set, image)
        for i, (_, _, eval_set, image) in enumerate(planted)
    }
    out = root / "out"
    report = dc.decontaminate(data, [root / "evalsets", folder], out, progress=False, batch_size=8)
    return {"root": root, "data": data, "wds": wds, "folder": folder, "out": out, "report": report,
            "planted": planted_uids, "meta": meta}  # fmt: skip


def test_removes_exactly_the_planted_near_duplicates(corpus: dict) -> None:
    report, scores = corpus["report"], pd.read_parquet(corpus["out"] / "scores.parquet")
    removed = scores[scores["removed"]]
    assert set(removed["uid"]) == set(corpus["planted"])
    for _, row in removed.iterrows():
        assert (row["dedup_eval_set"], row["dedup_eval_image"]) == corpus["planted"][row["uid"]]
    assert report.removed == 3 and report.samples == len(corpus["meta"]) == 33
    assert report.removed_per_source == {
        "hopper": {"samples": 9, "removed": 0},
        "paper": {"samples": 1, "removed": 1},
        "plots": {"samples": 15, "removed": 0},
        "textures": {"samples": 6, "removed": 0},
        "web": {"samples": 2, "removed": 2},
    }
    assert report.removed_per_eval_set == {"photos": 2, "flowers": 1}
    assert report.eval_images == {"photos": 9, "flowers": 6}
    kept_max = scores.loc[~scores["removed"], "dedup_score"].max()
    print(f"planted scores {sorted(removed['dedup_score'].round(3))}, best clean score {kept_max:.3f}")
    assert kept_max <= report.threshold == dc.DCT_THRESHOLD < removed["dedup_score"].min()


def test_outputs_are_complete_and_consistent(corpus: dict) -> None:
    out, meta = corpus["out"], corpus["meta"]
    scores = pd.read_parquet(out / "scores.parquet")
    assert list(scores.columns) == list(dc.SCORE_COLUMNS)
    assert sorted(scores["uid"]) == sorted(meta["uid"]) and scores["uid"].is_unique
    assert scores["dedup_score"].between(-1.0001, 1.0001).all()
    kept = commonpool.array_to_uids(commonpool.load_uid_subset(out / "kept_uids.npy"))
    written = commonpool.read_metadata(out)
    assert sorted(kept) == sorted(written["uid"]) == sorted(scores.loc[~scores["removed"], "uid"])
    assert [s.uid for s in commonpool.iter_samples(out)] == list(written["uid"])
    sizes = json.loads((out / "sizes.json").read_text())
    assert sum(sizes.values()) == len(kept) == 30
    report = json.loads((out / "report.json").read_text())
    assert report["descriptor"] == "dct" and report["removed"] == 3 and report["search"] == "exact"
    with Image.open(out / "closest_pairs.png") as grid:
        assert grid.format == "PNG" and grid.height > grid.width


def test_rerun_resumes_from_the_embedding_cache(
    corpus: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "again"
    shutil.copytree(corpus["out"] / ".cache", out / ".cache")

    def no_embedding(*_: object) -> None:
        raise AssertionError("embedded again although cached")

    monkeypatch.setattr(dc.DCTDescriptor, "embed", no_embedding)
    monkeypatch.setattr(dc.DCTDescriptor, "embed_reference", no_embedding)
    again = dc.decontaminate(corpus["data"], [corpus["wds"], corpus["folder"]], out, progress=False)
    first = pd.read_parquet(corpus["out"] / "scores.parquet")
    pd.testing.assert_frame_equal(again.scores.reset_index(drop=True), first)


def test_sources_share_the_eval_embeddings(
    corpus: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``eval_cache`` the eval sets are embedded by the first run only: another source's run against
    the same sets reads them (the sources of a plan do so), with the same scores."""
    against = [corpus["wds"], corpus["folder"]]
    first = dc.decontaminate(
        corpus["data"], against, tmp_path / "a", eval_cache=tmp_path / "eval", progress=False
    )
    assert not (tmp_path / "a" / ".cache" / dc.DCTDescriptor().cache_id / "eval").exists()
    assert len(list((tmp_path / "eval").rglob("*.npz"))) == 2

    def no_embedding(*_: object) -> None:
        raise AssertionError("eval sets embedded again although cached")

    monkeypatch.setattr(dc.DCTDescriptor, "embed_reference", no_embedding)
    again = dc.decontaminate(
        corpus["data"], against, tmp_path / "b", eval_cache=tmp_path / "eval", progress=False
    )
    pd.testing.assert_frame_equal(again.scores, first.scores)


def test_faiss_search_matches_exact(corpus: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    queries = descriptors._unit_rows(rng.standard_normal((500, 64)).astype(np.float32))
    reference = descriptors._unit_rows(rng.standard_normal((300, 64)).astype(np.float32))
    exact_scores, exact_rows = dc.nearest(queries, reference, chunk=128)
    faiss_scores, faiss_rows = dc.nearest(queries, reference, use_faiss=True)
    np.testing.assert_array_equal(exact_rows, faiss_rows)
    np.testing.assert_allclose(exact_scores, faiss_scores, atol=1e-5)
    np.testing.assert_allclose(exact_scores, (queries @ reference.T).max(axis=1), atol=1e-6)

    out = tmp_path / "faiss"
    shutil.copytree(corpus["out"] / ".cache", out / ".cache")
    report = dc.decontaminate(
        corpus["data"], [corpus["wds"], corpus["folder"]], out, faiss_min_rows=1, progress=False
    )
    assert report.search == "faiss"
    exact = pd.read_parquet(corpus["out"] / "scores.parquet")
    pd.testing.assert_frame_equal(report.scores.drop(columns="dedup_score").reset_index(drop=True),
                                  exact.drop(columns="dedup_score"))  # fmt: skip
    np.testing.assert_allclose(report.scores["dedup_score"], exact["dedup_score"], atol=1e-5)


def test_eval_set_discovery(corpus: dict, tmp_path: Path) -> None:
    sets = find_eval_sets([corpus["root"] / "evalsets", corpus["folder"]])
    assert [(s.name, s.layout) for s in sets] == [("photos", "webdataset"), ("flowers", "imagefolder")]
    ids = [image_id for image_id, _ in sets[0].images()]
    assert ids == [f"0.tar/s{i:06d}.{['webp', 'png', 'jpg'][i % 3]}" for i in range(9)]
    assert sorted(i for i, _ in sets[1].images())[:2] == ["leaf/img0.png", "leaf/img2.png"]
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no eval set"):
        find_eval_sets([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="eval set folder not found"):
        find_eval_sets([tmp_path / "missing"])


def test_a_zipped_eval_set_is_found_and_searched(corpus: dict, tmp_path: Path) -> None:
    """DataComp's WinoGAViL images stay in ``winogavil_images.zip`` beside its CSV: found inside a folder
    of eval sets, read in place, and a pool image copied from it is removed (ids name the zip member)."""
    import zipfile

    tiles = calibration._photo_tiles()
    zipped = tiles[15:18]  # flowers used by no other set
    root = tmp_path / "evalsets"
    shutil.copytree(corpus["wds"], root / "photos")
    (root / "winogavil").mkdir()
    (root / "winogavil" / "winogavil_dataset.csv").write_text("cue,candidates,associations\n")
    with zipfile.ZipFile(root / "winogavil" / "winogavil_images.zip", "w") as archive:
        for index, img in enumerate(zipped):
            archive.writestr(f"winogavil_images/w{index}.jpg", _jpeg(img))
        archive.writestr("__MACOSX/winogavil_images/._w0.jpg", b"resource fork")
        archive.writestr("winogavil_images/readme.txt", b"not an image")
    sets = find_eval_sets([root])
    assert [(s.name, s.layout) for s in sets] == [("photos", "webdataset"), ("winogavil", "zip")]
    assert [i for i, _ in sets[1].images()] == [
        f"winogavil_images.zip/winogavil_images/w{i}.jpg" for i in range(3)
    ]

    rng = np.random.default_rng(5)
    records = [commonpool.Record(_jpeg(calibration._plot_image(rng, kind)), f"clean {kind}", "plots", kind, "fig1")
               for kind in ("line", "bar", "scatter", "hist")]  # fmt: skip
    records.append(
        commonpool.Record(_jpeg(_copy_of(zipped[1], 0.1, True, 0.9)), "copy", "web", "copy", "fig1")
    )
    commonpool.write_dataset(records, tmp_path / "pool", samples_per_shard=10)
    report = dc.decontaminate(tmp_path / "pool", [root], tmp_path / "out", progress=False, batch_size=8)
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    removed = scores[scores["removed"]]
    meta = commonpool.read_metadata(tmp_path / "pool")
    assert list(removed["uid"]) == list(meta.loc[meta["paper_id"] == "copy", "uid"])
    assert report.removed_per_eval_set == {"winogavil": 1}
    assert removed["dedup_eval_image"].item() == "winogavil_images.zip/winogavil_images/w1.jpg"
    assert report.eval_images == {"photos": 9, "winogavil": 3}


def test_dct_descriptor_is_normalised_and_mirror_invariant() -> None:
    rng = np.random.default_rng(3)
    images = [calibration._texture_image(rng), calibration._shape_image(rng), calibration._photo_tiles()[4]]
    model = dc.DCTDescriptor()
    plain = model.embed(images)
    mirrored = model.embed([ImageOps.mirror(img) for img in images])
    assert plain.dtype == np.float32 and plain.shape == (3, model.dim)
    np.testing.assert_allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(plain, mirrored, atol=1e-4)
    views, owner = model.embed_reference(images)
    assert views.shape == (30, model.dim) and owner.tolist() == [i for i in range(3) for _ in range(10)]
    padded = ImageOps.expand(images[2], border=20, fill=(0, 0, 0))
    assert float(model.embed([padded])[0] @ plain[2]) > 0.95


def test_calibration_meets_the_target_at_the_module_threshold() -> None:
    population = dc.calibration_images(1, plots=56, textures=16, digits=16, shapes=24, stock_plots=4)
    result = dc.calibrate(
        "dct", seed=1, population=population, threshold=dc.DCT_THRESHOLD, transforms_alone=False
    )
    print(f"held-out calibration (seed 1, {result.images} images): TPR {result.tpr:.3f}, FPR {result.fpr:.4f} "
          f"at {result.threshold}; set-level FPR {result.set_fpr:.3f}")  # fmt: skip
    assert result.images == 27 + 116 and result.positives == 2 * result.images
    assert result.tpr >= 0.95 and result.fpr <= 0.01
    roc = result.roc
    assert roc["threshold"].is_monotonic_increasing and roc["tpr"].is_monotonic_decreasing
    assert roc["fpr"].is_monotonic_decreasing and set(result.per_category) == {
        "digit",
        "photo",
        "plot",
        "shape",
        "texture",
    }


def test_isc_checkpoint_round_trip(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    network = dc.build_isc_network().eval()
    for module in network.modules():  # non-trivial BatchNorm statistics, scales that keep activations finite
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.2, 0.5)
    state = network.state_dict()
    assert state["fc.weight"].shape == (256, 512) and "fc.bias" not in state
    assert state["backbone.conv_stem.weight"].shape == (24, 3, 3, 3) and state["bn.running_var"].shape == (
        256,
    )
    path = tmp_path / dc.ISC_CHECKPOINT
    # the published file: DataParallel keys under "state_dict", plus arch and the training args
    torch.save({"epoch": 10, "arch": "tf_efficientnetv2_m_in21ft1k", "args": argparse.Namespace(input_size=512),
                "state_dict": {f"module.{key}": value for key, value in state.items()}}, path)  # fmt: skip
    loaded = dc.load_isc_state_dict(path)
    assert {k: v.shape for k, v in loaded.items()} == {k: v.shape for k, v in state.items()}

    model = dc.get_descriptor("isc", path, input_size=96, batch_size=2)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)) for _ in range(3)]
    embedded = model.embed(images)
    with torch.inference_mode():
        expected = network(model.preprocess(images)).numpy()
    assert embedded.shape == (3, 256) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedded, expected, atol=1e-5)
    assert model.default_threshold == dc.ISC_THRESHOLD == 0.604169


def test_isc_without_weights_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match="isc_ft_v107"):
        dc.get_descriptor("isc")
    missing = tmp_path / "isc_ft_v107.pth.tar"
    with pytest.raises(FileNotFoundError, match=f"ISC checkpoint not found: {missing}"):
        dc.get_descriptor("isc", missing)
    with pytest.raises(ValueError, match="unknown descriptor"):
        dc.get_descriptor("phash")
    code = cli.main(
        ["decontaminate", str(tmp_path), "--against", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "no CommonPool shards" in capsys.readouterr().err


def test_cli(corpus: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    shutil.copytree(corpus["out"] / ".cache", out / ".cache")
    argv = ["decontaminate", str(corpus["data"]), "--against", str(corpus["wds"]), str(corpus["folder"]),
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 of 33 samples removed (dct" in printed and "web: 2 of 2 removed" in printed
    assert (out / "report.json").is_file() and (out / "shards" / "00000000.tar").is_file()
    assert cli.main([*argv, "--threshold", "1.0"]) == 0
    assert "0 of 33 samples removed" in capsys.readouterr().out
    assert len(commonpool.read_metadata(out)) == 33
