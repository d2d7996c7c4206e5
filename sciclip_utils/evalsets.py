"""Evaluation sets on disk, found the same way by decontamination (what to remove look-alikes of) and by
evaluation (what to score models on): clip_benchmark webdataset folders (``DIR/test/*.tar``), ImageFolder
trees, or folders of zipped images (DataComp's WinoGAViL mirror: ``winogavil_images.zip`` beside its CSV,
read in place), each a set on its own or several under one folder."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass(frozen=True)
class EvalSet:
    """One evaluation set: a clip_benchmark webdataset (``DIR/test/*.tar``), an ImageFolder tree, or a
    folder of zipped images (``DIR/*.zip``)."""

    name: str
    path: Path
    layout: str  # "webdataset" | "imagefolder" | "zip"

    def files(self) -> list[Path]:
        """The files this set is read from (their sizes key the embedding cache)."""
        if self.layout == "webdataset":
            return sorted((self.path / "test").glob("*.tar"))
        if self.layout == "zip":
            return _image_zips(self.path)
        return sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())

    def images(self) -> Iterator[tuple[str, bytes]]:
        """``(image id, encoded bytes)`` for every image, in a stable order."""
        if self.layout == "imagefolder":
            for path in self.files():
                yield path.relative_to(self.path).as_posix(), path.read_bytes()
            return
        if self.layout == "zip":
            for path in self.files():
                with zipfile.ZipFile(path) as archive:
                    for member in _zipped_images(archive):
                        yield f"{path.name}/{member}", archive.read(member)
            return
        for shard in self.files():
            with tarfile.open(shard) as tar:
                for member in tar:
                    if member.isfile() and Path(member.name).suffix.lower() in IMAGE_EXTENSIONS:
                        handle = tar.extractfile(member)
                        if handle is not None:
                            yield f"{shard.name}/{member.name}", handle.read()


def find_eval_sets(paths: Sequence[str | Path]) -> list[EvalSet]:
    """Eval sets under ``paths``: each path is a set (named after its folder) or a folder of sets (named by
    their path below it, searched recursively)."""
    found: list[EvalSet] = []
    for raw in paths:
        root = Path(raw)
        if not root.is_dir():
            raise FileNotFoundError(f"eval set folder not found: {root}")
        before = len(found)
        layout = _layout(root)
        if layout:
            found.append(EvalSet(root.name, root, layout))
        else:
            for sub in _subdirs(root):
                _collect_eval_sets(sub, sub.name, found)
        if len(found) == before:
            raise ValueError(
                f"{root}: no eval set (expected test/*.tar, class folders of images or a zip of images)"
            )
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise ValueError(f"eval set names are not unique: {sorted(names)}")
    return found


def _collect_eval_sets(folder: Path, name: str, found: list[EvalSet]) -> None:
    layout = _layout(folder)
    if layout:
        found.append(EvalSet(name, folder, layout))
        return
    for sub in _subdirs(folder):
        _collect_eval_sets(sub, f"{name}/{sub.name}", found)


def _layout(folder: Path) -> str:
    """``webdataset``, ``imagefolder`` or ``""`` (not an eval set)."""
    if any((folder / "test").glob("*.tar")):
        return "webdataset"
    if _has_images(folder) or any(_has_images(sub) for sub in _subdirs(folder)):
        return "imagefolder"
    if _image_zips(folder):
        return "zip"
    return ""


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_zips(folder: Path) -> list[Path]:
    """The zip files directly in ``folder`` that hold images (a zip's directory is read, not its data)."""
    zips = []
    for path in sorted(folder.glob("*.zip")):
        if path.is_file() and not path.name.startswith("."):
            try:
                with zipfile.ZipFile(path) as archive:
                    if _zipped_images(archive):
                        zips.append(path)
            except zipfile.BadZipFile as error:
                raise ValueError(f"{path}: not a readable zip: {error}") from error
    return zips


def _zipped_images(archive: zipfile.ZipFile) -> list[str]:
    """The image members of a zip in name order (macOS resource forks left out)."""
    return sorted(
        info.filename
        for info in archive.infolist()
        if not info.is_dir()
        and Path(info.filename).suffix.lower() in IMAGE_EXTENSIONS
        and not info.filename.startswith("__MACOSX/")
        and not Path(info.filename).name.startswith("._")
    )


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())
