"""Looking into a corpus folder (generated or real): file counts, example figures with their source captions."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

_FLOAT = re.compile(r"\\begin\{figure\*?\}(.*?)\\end\{figure\*?\}", re.S)
_DEAD = re.compile(r"\\iffalse.*?\\fi\b|\\begin\{comment\}.*?\\end\{comment\}", re.S)
_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
_GRAPHIC = re.compile(r"\\includegraphics(?:\[[^\]]*\])?%?\s*\{([^}]+)\}")


def describe_inputs(root: str | Path) -> Any:
    """A DataFrame counting the files under ``root`` by top-level folder and extension."""
    import pandas as pd

    root = Path(root)
    counts: Counter[tuple[str, str]] = Counter()
    for path in root.rglob("*"):
        if path.is_file():
            parts = path.relative_to(root).parts
            suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".tar.gz") else path.suffix
            counts[(parts[0] if len(parts) > 1 else ".", suffix.lower() or "(none)")] += 1
    rows = [{"folder": folder, "extension": ext, "files": n} for (folder, ext), n in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["folder", "extension", "files"])


def _caption(text: str) -> str | None:
    start = text.find("\\caption")
    if start < 0:
        return None
    position = text.find("{", start)
    depth = 0
    for index in range(position, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[position + 1 : index]
    return None


def _project(data: bytes) -> dict[str, bytes] | None:
    """The files of a gzip'd tar paper package (None for a single .tex, a PDF or anything else)."""
    if data[:2] != b"\x1f\x8b":
        return None
    raw = gzip.decompress(data)
    if raw[257:262] != b"ustar":
        return None
    with tarfile.open(fileobj=io.BytesIO(raw)) as inner:
        return {m.name.removeprefix("./"): inner.extractfile(m).read() for m in inner if m.isfile()}


def _paper_projects(arxiv_dir: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """LaTeX projects in bulk tars (``*.tar``) and single packages (``*.gz``, ``*.tar.gz``) under a folder."""
    for path in sorted(arxiv_dir.rglob("*")):
        if path.name.endswith(".tar") and path.is_file():
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    files = _project(tar.extractfile(member).read()) if member.isfile() else None
                    if files:
                        yield Path(member.name).name.split(".gz")[0], files
        elif path.name.endswith((".gz", ".tgz")) and path.is_file():
            files = _project(path.read_bytes())
            if files:
                yield path.name.removesuffix(".gz").removesuffix(".tar").removesuffix(".tgz"), files


def preview_arxiv(arxiv_dir: str | Path, count: int = 6) -> list[dict[str, Any]]:
    """Single-image figures of the first papers: the rendered image and the caption as written in LaTeX."""
    from sciclip_utils.images import load_image

    found = []
    for paper_id, files in _paper_projects(Path(arxiv_dir)):
        tex = "\n".join(
            data.decode("utf-8", "replace")
            for name, data in files.items()
            if name.endswith(".tex") and not re.search(r"old|draft|^\._", Path(name).name)
        )
        tex = _DEAD.sub("", _COMMENT.sub("", tex))
        folders = [""] + re.findall(r"\\graphicspath\{\{([^}]*)\}", tex)
        for block in _FLOAT.findall(tex):
            graphics = _GRAPHIC.findall(block)
            if len(graphics) != 1 or "subfigure" in block or block.lstrip().startswith("%"):
                continue
            stem = graphics[0].removesuffix(".eps")
            matches = [f for f in files for d in folders if f == d + stem or f.startswith(d + stem + ".")]
            if matches:
                image = load_image(files[matches[0]], matches[0])
                image.thumbnail((512, 512))
                found.append({"source": "arxiv", "paper_id": paper_id, "file": matches[0], "image": image,
                              "caption": " ".join((_caption(block) or "").split())})  # fmt: skip
                break
        if len(found) >= count:
            break
    return found


def preview_pmc(pmc_dir: str | Path, count: int = 6) -> list[dict[str, Any]]:
    """The first captioned figure of the first articles: the image and the JATS ``<caption>`` markup."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    found = []
    for path in sorted(Path(pmc_dir).iterdir()):
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                files = {Path(m.name).name: tar.extractfile(m).read() for m in tar if m.isfile()}
        elif path.is_dir():
            files = {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
        else:
            continue
        xml = next((data for name, data in files.items() if name.endswith((".nxml", ".xml"))), None)
        if xml is None:
            continue
        for fig in etree.fromstring(xml, parser).iter("fig"):
            caption, graphic = fig.find("caption"), fig.find(".//graphic")
            if caption is None or graphic is None:
                continue
            href = graphic.get("{http://www.w3.org/1999/xlink}href", "").removesuffix(".tif")
            if f"{href}.jpg" in files:
                markup = etree.tostring(caption, encoding="unicode", with_tail=False)
                markup = re.sub(r' xmlns:\w+="[^"]*"', "", markup)
                image = Image.open(io.BytesIO(files[f"{href}.jpg"])).convert("RGB")
                found.append({"source": "pmc", "paper_id": path.name.split(".")[0], "file": f"{href}.jpg",
                              "image": image, "caption": markup})  # fmt: skip
                break
        if len(found) >= count:
            break
    return found


def eval_examples(task_dir: str | Path, count: int = 8) -> list[tuple[Image.Image, str]]:
    """The first images of an eval set with their class name (or first caption, for retrieval)."""
    task_dir = Path(task_dir)
    classes_file = task_dir / "classnames.txt"
    classes = classes_file.read_text().splitlines() if classes_file.exists() else []
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(task_dir / "test" / "0.tar") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
            if len(samples) > count:
                break
    examples = []
    for parts in list(samples.values())[:count]:
        image_ext = next(ext for ext in parts if ext in ("jpg", "png", "webp", "jpeg"))
        label = (
            classes[int(parts["cls"])] if "cls" in parts else parts.get("txt", b"").decode().splitlines()[0]
        )
        examples.append((Image.open(io.BytesIO(parts[image_ext])).convert("RGB"), label))
    return examples
