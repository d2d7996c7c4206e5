"""arXiv extraction on the real source packages in ../shared/fixtures/arxiv and on packages built here."""

from __future__ import annotations

import argparse
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sciclip_utils import arxiv
from sciclip_utils.archives import read_package
from sciclip_utils.cli import main as sciclip_main
from sciclip_utils.commonpool import iter_samples, read_metadata
from sciclip_utils.extract import WorkItem, extract_arxiv
from sciclip_utils.extract import cli as extract_cli
from sciclip_utils.images import load_image

FIXTURE_PAPERS = {
    "1911.02782": 4,
    "2004.14974": 7,
    "astropy-v2.0-paper": 7,
    "graph-genomics-review": 3,
    "kepler-flares1": 8,
}


# ----------------------------------------------------------------------------------------------------------
# Helpers building packages in memory
# ----------------------------------------------------------------------------------------------------------


def _png(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _pdf(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PDF")
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


MAIN_TEX = rb"""\documentclass{article}
\usepackage{graphicx,subcaption}
\graphicspath{{figs/}{plots/}}
\newcommand{\method}[1]{\textsc{#1}-Net\xspace}
\begin{document}
\input{sections/results}
\begin{figure}
  \begin{subfigure}{0.5\linewidth}\includegraphics{red}\caption{Red panel of \method{Deep}.}\end{subfigure}
  \begin{subfigure}{0.5\linewidth}\includegraphics{blue.png}\caption{Blue panel.}\end{subfigure}
  \caption{Two colours.}
\end{figure}
\begin{figure}
  \includegraphics{red}\includegraphics{blue}\includegraphics{green}
  \caption{Three panels without sub-captions.}
\end{figure}
\begin{figure}\centering
\begin{tikzpicture}\draw (0,0) -- (1,1);\end{tikzpicture}
\caption{A TikZ drawing.}
\end{figure}
\begin{figure}\includegraphics{green}\end{figure}
\begin{figure}\includegraphics{plots/missing}\caption{Missing image.}\end{figure}
\begin{figure}\includegraphics{gre}\caption{A prefix of an image name is not that image.}\end{figure}
% \begin{figure}\includegraphics{red}\caption{Commented out.}\end{figure}
\include{sections/loop}
\begin{figure}\plotone{green}\caption{An AASTeX plot.}\end{figure}
\begin{figure}
\subfloat[Left.]{\includegraphics{red}}\subfloat[Right.]{\epsfig{file=blue.png,width=3cm}}
\caption{Subfloats.}
\end{figure}
\begin{figure}\includesvg{diagram}\caption{An SVG exported by the svg package.}\end{figure}
\begin{figure}\includesvg[width=3cm]{other}\caption{An SVG nobody exported.}\end{figure}
\end{document}
"""

RESULTS_TEX = rb"""\section{Results}
\begin{figure*}
\includegraphics[width=\textwidth]{scatter.eps}
\caption{A scatter plot, asked as EPS, shipped as PDF.}
\end{figure*}
\begin{figure}
\includegraphics{converted.eps}
\caption{A plot converted by epstopdf.}
\end{figure}
"""

OLD_TEX = rb"""\documentclass{article}
\begin{document}
\begin{figure}\includegraphics{figs/red}\caption{Old draft figure.}\end{figure}
\end{document}
"""


def _constructs_package() -> dict[str, bytes]:
    return {
        "main.tex": MAIN_TEX,
        "main.bbl": b"",
        "old_main.tex": OLD_TEX,
        "._main.tex": b"\x00\x05\x16\x07 AppleDouble junk",
        "__MACOSX/._old_main.tex": b"junk",
        "sections/results.tex": RESULTS_TEX,
        "sections/loop.tex": b"\\input{sections/loop}",
        "svg-inkscape/diagram_svg-tex.pdf": _pdf((90, 90, 90)),
        "other.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "figs/red.png": _png((220, 30, 30)),
        "figs/blue.png": _png((30, 30, 220)),
        "figs/green.PNG": _png((30, 200, 30)),
        "figs/unused.png": _png((0, 0, 0)),
        "plots/scatter.pdf": _pdf((200, 200, 0)),
        "plots/converted-eps-converted-to.pdf": _pdf((0, 200, 200)),
    }


# ----------------------------------------------------------------------------------------------------------
# The five real papers, extracted once (Dask, 2 workers)
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_run(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    inputs = sorted((fixtures_dir / "arxiv").glob("*.gz"))
    out = tmp_path_factory.mktemp("arxiv_fixtures")
    summary = extract_arxiv(inputs, out, workers=2, progress=False)
    return summary, read_metadata(out), out


def _captions(metadata: pd.DataFrame, paper_id: str) -> dict[str, str]:
    rows = metadata[metadata.paper_id == paper_id]
    return dict(zip(rows.figure_id, rows.text, strict=True))


def test_fixture_manifest(fixture_run) -> None:
    summary, metadata, out = fixture_run
    manifest = summary.manifest.set_index("paper_id")
    assert sorted(manifest.index) == sorted(FIXTURE_PAPERS)
    assert set(manifest.status) == {"ok"}
    assert manifest.pairs_written.to_dict() == FIXTURE_PAPERS
    assert summary.pairs == sum(FIXTURE_PAPERS.values()) == len(metadata)
    assert manifest.main_file.to_dict() == {
        "1911.02782": "main.tex",
        "2004.14974": "emnlp2020.tex",
        "astropy-v2.0-paper": "main.tex",
        "graph-genomics-review": "main.tex",  # not guide/template.tex, the second \begin{document}
        "kepler-flares1": "ms.tex",
    }
    assert (out / "manifest.parquet").is_file() and (out / "sizes.json").is_file()
    assert set(metadata.source) == {"arxiv"} and metadata.license.isna().all()
    for text in metadata.text:
        assert text and "\\" not in text and "{" not in text and "}" not in text, text


def test_fixture_s2orc_macros_and_cites(fixture_run) -> None:
    captions = _captions(fixture_run[1], "1911.02782")
    assert sorted(captions) == ["fig1", "fig2", "fig3", "fig4"]  # oa_distro.png is never referenced
    assert captions["fig1"] == (
        "Inline citations and references to figures and tables are annotated in S2ORC's structured full "
        "text. Citations are linked to bibliography entries, which are linked to other papers in S2ORC. "
        "Figure and table references are linked to their captions."
    )
    assert captions["fig2"] == "Distribution of papers by Microsoft Academic field of study."
    assert captions["fig3"] == (
        "Word2vec embeddings associated with 20k papers in six AI-related arXiv categories visualized "
        "using t-SNE. Example papers from two randomly selected sub-regions A and B are given in Table [ref]."
    )
    assert captions["fig4"] == (
        "Visualization of contextual representations from layer 9 of S2ORC-SciBERT on numeric surface "
        "forms in a subsample of body text from S2ORC. Labels are heuristics based on token-level patterns."
    )


def test_fixture_scifact_inputs_and_dead_drafts(fixture_run) -> None:
    captions = _captions(fixture_run[1], "2004.14974")
    assert sorted(captions) == [f"fig{n}" for n in range(1, 8)]
    # Figures come from \input{figures/*.tex} (one without ".tex") in sections that are themselves \input.
    assert captions["fig2"] == (
        "Corpus construction. Citing abstracts are identified for each seed document. A claim is written "
        "based on the source citance in the citing abstract."
    )
    assert captions["fig4"] == (
        "A claim supported by two rationales from the same abstract. The text of each rationale on its own "
        "provides sufficient evidence to verify the claim."
    )
    assert captions["fig5"] == "Fraction of evidence abstracts in which each MESH term occurs."
    assert captions["fig7"] == "The evidence collection interface."
    assert captions["fig1"].startswith("A SciFact claim refuted by evidence.")
    joined = " ".join(captions.values())
    # figures/partial.tex is only \input by the dead _old-08-discussion.tex;
    # negation.tex and rationale-stats.tex by no file at all.
    assert (
        "partially supports" not in joined
        and "negating" not in joined
        and "rationales supporting" not in joined
    )


def test_fixture_astropy_graphicspath_and_href_macros(fixture_run) -> None:
    captions = _captions(fixture_run[1], "astropy-v2.0-paper")
    assert sorted(captions) == [f"fig{n}" for n in range(1, 8)]
    assert captions["fig1"] == (
        "Left panel: Distribution of number of commits per committer. Middle panel: Cumulative number of "
        "commits to the astropy core package over time. Right panel: Number of unique committers per month "
        "to the astropy core package."
    )
    assert captions["fig2"] == (
        "The full graph of possible reference frame transformations implemented in astropy.coordinates. "
        "Arrows indicate transformations from one frame to another. Arrows that point back to the same frame "
        "indicate self-transformations that involve a change of reference frame parameters (e.g., equinox)."
    )
    assert captions["fig5"] == (
        "An example of figure made using the astropy.visualization.wcsaxes subpackage, using Spitzer/IRAC "
        "8.0 μm data from the Cygnus-X Spitzer Legacy survey."
    )
    # {ngc6977} has no extension and lives in figures/ (\graphicspath{{figures/}}).
    assert captions["fig6"] == (
        "An RGB color image of the region near the Hickson 88 group constructed from SDSS images and the "
        "astropy.visualization tools. This example uses astropy.visualization.wcsaxes to display the sky "
        "coordinate grid, and the make_lupton_rgb() function to produce the RGB image from three SDSS filter "
        "images (g, r, i). The image on the left shows the image with the default parameters, whereas the "
        "image on the right has paramets set to show a greater dynamical range."
    )
    assert captions["fig4"].startswith(
        "An example showing different modes of convolution available in the Python"
    )


def test_fixture_graph_genomics_composite_and_minipage(fixture_run) -> None:
    captions = _captions(fixture_run[1], "graph-genomics-review")
    assert sorted(captions) == ["fig1", "fig2", "fig3"]  # sub-figures without sub-captions: one pair
    assert captions["fig1"].startswith(
        "Pangenomic models. Left panel: top left: In reference based genomic analyses, all genomes"
    )
    assert captions["fig2"] == (
        "Visualizing a graph of GRCh38 and its alternate sequences in the gene HLA-DRB1 built with VG msga. "
        "Top: Bandage's force directed layout reveals large scale structures. Top middle: ODGI viz's binned, "
        "linearized rendering of the paths (colored bars) versus the sequence and topology of the graph "
        "(below). Bottom middle: A fragment of VG viz's linearized rendering, showing base-level detail. "
        "Bottom: The same fragment rendered with the Sequence Tube Map. Dashed lines show correspondence "
        "between the visualizations. Path colors are assigned independently by each method."
    )
    # The long caption, not the [short] one.
    assert captions["fig3"].startswith(
        "The mean alternate allele fraction at heterozygous variants in HG002/NA24385 validated in the "
        "Genome in a Bottle truth set as a function of deletion or insertion size (SNPs at 0)."
    )


def test_fixture_kepler_multi_image_figures(fixture_run) -> None:
    captions = _captions(fixture_run[1], "kepler-flares1")
    assert sorted(captions) == [f"fig{n}" for n in range(1, 9)]
    assert captions["fig1"].startswith(
        "Two examples of flare star light curves we have analyzed. Kepler SAP_FLUX is shown (black line) "
        "with the final quiescent light curve model overlaid (blue line)."
    )
    assert captions["fig3"] == (
        "Histogram of number of flare event candidates per star. This includes the entire sample of "
        "2,304,930 flare event candidates from 207,617 stars. For the vast majority of stars the event "
        "candidates have small energies and are likely spurious detections that the iterative de-trending "
        "algorithm failed to remove."
    )
    assert "Carrington" not in captions["fig6"]  # a %-comment inside the caption
    assert captions["fig6"].endswith(
        "Unlike GJ 1243, a break is apparent in the flare frequency distribution power-law at high energies."
    )


def test_fixture_images_are_sensible(fixture_run, fixtures_dir: Path) -> None:
    _summary, metadata, out = fixture_run
    images = {
        (s.json.get("paper_id"), s.json.get("figure_id")): Image.open(io.BytesIO(s.jpg))
        for s in iter_samples(out)
    }
    assert len(images) == len(metadata)
    for image in images.values():
        assert image.format == "JPEG" and max(image.size) <= 512 and min(image.size) > 16
    package = read_package((fixtures_dir / "arxiv" / "kepler-flares1.gz").read_bytes())
    panel = load_image(package.files["fig1a.pdf"], "fig1a.pdf")
    two_panels, six_panels = images[("kepler-flares1", "fig1")], images[("kepler-flares1", "fig7")]
    assert two_panels.width / two_panels.height > 1.7 * panel.width / panel.height
    assert six_panels.width > six_panels.height  # 3 x 2 grid of landscape panels
    genomics = images[("graph-genomics-review", "fig1")]
    assert genomics.width > genomics.height  # two sub-figure panels side by side
    # A composite is mostly white background with ink, never a black flattened-alpha square.
    assert (np.asarray(two_panels.convert("L")) > 200).mean() > 0.5


# ----------------------------------------------------------------------------------------------------------
# LaTeX constructs on a package written for the test (in-process)
# ----------------------------------------------------------------------------------------------------------


def test_constructs_package(tmp_path: Path) -> None:
    source = tmp_path / "constructs.tar.gz"
    source.write_bytes(_tar_gz(_constructs_package()))
    result = arxiv.process_item(WorkItem(key="k", input=str(source), paper_id="constructs"))
    assert result.status == "ok" and result.main_file == "main.tex"
    texts = {record.figure_id: record.text for record in result.records}
    assert texts == {
        "fig1": "A scatter plot, asked as EPS, shipped as PDF.",
        "fig2": "A plot converted by epstopdf.",
        "fig3a": "Two colours. Red panel of Deep-Net.",
        "fig3b": "Two colours. Blue panel.",
        "fig4": "Three panels without sub-captions.",
        "fig9": "An AASTeX plot.",
        "fig10a": "Subfloats. Left.",
        "fig10b": "Subfloats. Right.",
        "fig11": "An SVG exported by the svg package.",
    }
    sizes = {
        record.figure_id: (record.image.original_width, record.image.original_height)
        for record in result.records
    }
    assert sizes["fig4"][0] > 120 and sizes["fig4"][1] > 80  # the three panels in one composite
    assert result.figures_found == 12
    problems = "\n".join(result.problems)
    assert "fig5: tikz/pgfplots only, no image file" in problems
    assert "fig6: no caption" in problems
    assert "fig7: image not found: plots/missing" in problems
    assert "fig8: image not found: gre" in problems  # never guessed by prefix
    assert "fig12: unsupported graphic \\includesvg: other" in problems
    assert "include cycle: sections/loop.tex" in problems
    assert "Old draft" not in " ".join(texts.values()) and "Commented out" not in problems


def test_single_tex_pdf_only_and_unsafe_members(tmp_path: Path) -> None:
    tex = tmp_path / "2301.00003.gz"
    tex.write_bytes(
        gzip.compress(
            rb"\documentclass{article}\begin{document}\begin{figure}\begin{tikzpicture}\end{tikzpicture}"
            rb"\caption{Drawn in TikZ.}\end{figure}\end{document}"
        )
    )
    result = arxiv.process_item(WorkItem(key="a", input=str(tex), paper_id="2301.00003"))
    assert (result.status, result.stage, result.main_file) == ("skipped", "figures", "2301.00003.tex")
    assert result.reason.startswith("no figures with images")

    pdf = tmp_path / "2301.00004.gz"
    pdf.write_bytes(gzip.compress(_pdf((1, 2, 3))))
    result = arxiv.process_item(WorkItem(key="b", input=str(pdf), paper_id="2301.00004"))
    assert (result.status, result.stage, result.reason) == ("skipped", "package", "pdf-only submission")

    files = _constructs_package()
    files["../escape.tex"] = b"\\documentclass{article}"
    unsafe = tmp_path / "unsafe.tar.gz"
    unsafe.write_bytes(_tar_gz(files))
    result = arxiv.process_item(WorkItem(key="c", input=str(unsafe), paper_id="unsafe"))
    assert result.status == "ok" and len(result.records) == 9
    assert any(p.startswith("member skipped: ../escape.tex") for p in result.problems)


def test_each_tex_file_is_parsed_for_includes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking the candidates resolves every file's includes for each candidate main file, but parses
    the file once; a file without an include command gives none without a brace map."""
    from sciclip_utils import latex
    from sciclip_utils.latex import source

    files = {f"sec{n}.tex": f"\\section{{S{n}}} text\\\\ more".encode() for n in range(6)}
    files["main.tex"] = (
        b"\\documentclass{article}\\begin{document}\\input{sec0}\\include{sec1}\\end{document}"
    )
    parsed: list[str] = []
    find_includes = latex.find_includes
    monkeypatch.setattr(latex, "find_includes", lambda text: parsed.append(text) or find_includes(text))
    project = arxiv.Project(files)
    assert project.main_file() == "main.tex"
    assert sorted(parsed) == sorted(project.source(name) for name in files)
    source.cached_source.cache_clear()
    assert (
        latex.find_includes(project.source("sec2.tex")) == []
        and source.cached_source.cache_info().misses == 0
    )
    assert [found[2:] for found in latex.find_includes(project.source("main.tex"))] == [
        ("input", "sec0"),
        ("include", "sec1"),
    ]


def test_main_file_ranking_and_graphic_resolution() -> None:
    project = arxiv.Project(
        {
            "paper.tex": b"\\documentclass{article}\\begin{document}\\input{body}\\end{document}",
            "body.tex": b"x" * 5000,
            "response_to_referees.tex": b"\\documentclass{article}\\begin{document}" + b"y" * 9000,
            "template/sample.tex": b"\\documentclass{article}\\begin{document}\\end{document}",
            "chapter.tex": b"\\documentclass[paper]{subfiles}\\begin{document}z\\end{document}",
            "fig/a.pdf": b"%PDF",
            "fig/a-eps-converted-to.pdf": b"%PDF",
            "b.eps": b"%!PS",
            "fig/c.JPG": b"j",
            "fig/d.1.png": b"p",
            "a.png": b"p",
        }
    )
    assert project.main_file() == "paper.tex"
    split_preamble = arxiv.Project(
        {
            "setup/preamble.tex": b"\\documentclass{revtex4}\\usepackage{graphicx}",
            "article.tex": b"\\input{setup/preamble}\\begin{document}text\\end{document}",
        }
    )
    assert split_preamble.main_file() == "article.tex"  # the root, not the file holding \documentclass
    resolve = project.resolve_graphic
    assert resolve("a", "paper.tex", "paper.tex", ["fig/"]) == "fig/a.pdf"  # .pdf before .png, as graphicx
    assert resolve("a.eps", "paper.tex", "paper.tex", ["fig/"]) == "fig/a.pdf"
    assert resolve("fig/c", "paper.tex", "paper.tex", []) == "fig/c.JPG"
    assert resolve("d.1", "paper.tex", "paper.tex", ["fig/"]) == "fig/d.1.png"  # dots in the name
    assert resolve("./b", "paper.tex", "paper.tex", []) == "b.eps"
    assert resolve("c.png", "paper.tex", "paper.tex", ["fig/"]) == "fig/c.JPG"  # .png asked, .JPG shipped
    assert resolve("../fig/a", "paper.tex", "paper.tex", []) is None
    assert resolve("fi", "paper.tex", "paper.tex", []) is None


def test_paper_ids_and_months() -> None:
    assert arxiv.paper_id_from_name("2004/2004.14974.gz") == "2004.14974"
    assert arxiv.paper_id_from_name("9901/hep-th9901001.gz") == "hep-th/9901001"
    assert arxiv.paper_id_from_name("math.GT0309136.gz") == "math.GT/0309136"
    assert arxiv.paper_id_from_name("my-paper.tar.gz") == "my-paper"
    assert arxiv.paper_yymm("hep-th/9901001") == "9901" and arxiv.paper_yymm("2301.00001v2") == "2301"
    assert arxiv.paper_yymm("astropy-v2.0-paper") is None
    assert arxiv.yymm_key("9901") < arxiv.yymm_key("0001") < arxiv.yymm_key("2301")
    with pytest.raises(ValueError, match="YYMM"):
        arxiv.yymm_key("2313")


# ----------------------------------------------------------------------------------------------------------
# Inputs: bulk tars with a manifest, unpacked directories, resume, CLI
# ----------------------------------------------------------------------------------------------------------

MANIFEST_XML = """<?xml version='1.0' encoding='UTF-8'?>
<arXivSRC>
{entries}
</arXivSRC>
"""
MANIFEST_ENTRY = """  <file>
    <content_md5sum>0</content_md5sum>
    <filename>src/{name}</filename>
    <first_item>{first}</first_item>
    <last_item>{last}</last_item>
    <md5sum>0</md5sum>
    <num_items>{count}</num_items>
    <seq_num>1</seq_num>
    <size>{size}</size>
    <timestamp>2020-06-01 00:00:00</timestamp>
    <yymm>{yymm}</yymm>
  </file>"""


def _bulk_dir(tmp_path: Path, fixtures_dir: Path) -> Path:
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    kepler = (fixtures_dir / "arxiv" / "kepler-flares1.gz").read_bytes()
    tars = {
        "arXiv_src_2004_001.tar": {
            "2004/2004.00001.gz": kepler,
            "2004/2004.00002.gz": gzip.compress(_pdf((9, 9, 9))),
        },
        "arXiv_src_1911_001.tar": {
            "1911/1911.02782.gz": (fixtures_dir / "arxiv" / "1911.02782.gz").read_bytes()
        },
    }
    entries = []
    for name, members in tars.items():
        path = _write_tar(bulk / name, members)
        ids = sorted(arxiv.paper_id_from_name(m) for m in members)
        entries.append(
            MANIFEST_ENTRY.format(
                name=name,
                first=ids[0],
                last=ids[-1],
                count=len(ids),
                size=path.stat().st_size,
                yymm=name[10:14],
            )
        )
    (bulk / arxiv.MANIFEST_NAME).write_text(MANIFEST_XML.format(entries="\n".join(entries)))
    return bulk


def test_bulk_tars_selected_by_manifest(tmp_path: Path, fixtures_dir: Path) -> None:
    bulk = _bulk_dir(tmp_path, fixtures_dir)
    manifest = bulk / arxiv.MANIFEST_NAME
    assert arxiv.select_bulk_tars(manifest) == ["arXiv_src_2004_001.tar", "arXiv_src_1911_001.tar"]
    assert arxiv.select_bulk_tars(manifest, "2001", "2012") == ["arXiv_src_2004_001.tar"]
    assert arxiv.select_bulk_tars(manifest.read_bytes(), None, "1912") == ["arXiv_src_1911_001.tar"]

    summary = extract_arxiv([manifest], tmp_path / "out", workers=0, progress=False, start="2001", end="2012")
    manifest_rows = summary.manifest.set_index("paper_id")
    assert sorted(manifest_rows.index) == ["2004.00001", "2004.00002"]
    assert manifest_rows.loc["2004.00001", "pairs_written"] == 8
    assert manifest_rows.loc["2004.00002", "reason"] == "pdf-only submission"
    assert manifest_rows.loc["2004.00001", "input"].endswith("arXiv_src_2004_001.tar!2004/2004.00001.gz")
    assert set(read_metadata(tmp_path / "out").paper_id) == {"2004.00001"}

    everything = arxiv.build_work_items([bulk])  # the folder: both tars, no date range
    assert [item.paper_id for item in everything] == ["1911.02782", "2004.00001", "2004.00002"]
    assert all(item.offset is not None for item in everything)
    assert [i.paper_id for i in arxiv.build_work_items([bulk], start="1901", end="1912")] == ["1911.02782"]


def test_truncated_bulk_tar_fails_only_what_is_lost(tmp_path: Path) -> None:
    single = gzip.compress(rb"\documentclass{article}\begin{document}Text.\end{document}")
    whole = _write_tar(tmp_path / "whole.tar", {"2004/2004.00001.gz": single, "2004/2004.00002.gz": single})
    truncated = tmp_path / "arXiv_src_2004_009.tar"
    truncated.write_bytes(whole.read_bytes()[:600])  # the first member whole, then a cut header
    summary = extract_arxiv([truncated], tmp_path / "out", workers=0, progress=False)
    rows = summary.manifest.set_index("paper_id")
    assert list(rows.index) == ["2004.00001", "arXiv_src_2004_009.tar"]
    assert tuple(rows.loc["2004.00001", ["status", "reason"]]) == ("skipped", "no figures")
    assert rows.loc["arXiv_src_2004_009.tar", "status"] == "failed"
    assert "unexpected end of data" in rows.loc["arXiv_src_2004_009.tar", "reason"]


def test_directory_input_and_resume(tmp_path: Path, fixtures_dir: Path) -> None:
    source = tmp_path / "inputs" / "kepler-flares1"
    source.mkdir(parents=True)
    with tarfile.open(fixtures_dir / "arxiv" / "kepler-flares1.gz") as tar:
        tar.extractall(source, filter="data")
    (tmp_path / "inputs" / "notes.gz").write_bytes(
        gzip.compress(b"\\documentclass{article}\\begin{document}No figures here.\\end{document}")
    )
    out = tmp_path / "out"
    first = extract_arxiv([tmp_path / "inputs"], out, workers=0, progress=False)
    rows = first.manifest.set_index("paper_id")
    assert (
        rows.loc["kepler-flares1", "pairs_written"] == 8
        and rows.loc["kepler-flares1", "main_file"] == "ms.tex"
    )
    assert (rows.loc["notes", "status"], rows.loc["notes", "reason"]) == ("skipped", "no figures")
    shards = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}

    parts = {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.parquet")}
    assert len(parts) == 2
    second = extract_arxiv([tmp_path / "inputs"], out, workers=0, progress=False)
    # Nothing processed again: the per-paper parts (with their timings) are untouched, output identical.
    assert {p: p.stat().st_mtime_ns for p in (out / "parts").rglob("*.parquet")} == parts
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == shards
    pd.testing.assert_frame_equal(first.manifest, second.manifest)


def test_cli_exit_codes(tmp_path: Path, fixtures_dir: Path, capsys) -> None:
    kepler = fixtures_dir / "arxiv" / "kepler-flares1.gz"
    out = tmp_path / "out"
    assert (
        sciclip_main(["extract", "arxiv", str(kepler), "--out", str(out), "--workers", "0", "--no-progress"])
        == 0
    )
    assert "8 pairs" in capsys.readouterr().out
    assert len(read_metadata(out)) == 8

    assert sciclip_main(["extract", "arxiv", str(tmp_path / "nope.gz"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert sciclip_main(["extract", "arxiv", str(kepler), "--out", str(blocker / "out")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert (
        sciclip_main(["extract", "arxiv", str(kepler), "--out", str(out), "--from", "2010", "--to", "2001"])
        == 2
    )
    with pytest.raises(SystemExit) as exited:
        sciclip_main(["extract", "arxiv", str(kepler), "--out", str(out), "--from", "20-01"])
    assert exited.value.code == 2

    parser = argparse.ArgumentParser()
    extract_cli.cli_configure(parser, "arxiv")
    args = parser.parse_args([str(kepler), "--out", str(out), "--max-papers", "1", "--workers", "0"])
    assert (args.max_papers, args.workers, args.start, args.end) == (1, 0, None, None)
    assert (args.item_timeout_s, args.item_memory_mb) == (None, None)  # the environment's, or the defaults
    args = parser.parse_args(
        [str(kepler), "--out", str(out), "--item-timeout-s", "2.5", "--item-memory-mb", "0"]
    )
    assert (args.item_timeout_s, args.item_memory_mb) == (2.5, 0)
    for bad in (["--item-timeout-s", "-1"], ["--item-timeout-s", "nan"], ["--item-memory-mb", "1.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args([str(kepler), "--out", str(out), *bad])


_EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 120 80
0 0.4 0.8 setrgbcolor 0 0 120 80 rectfill
showpage
"""


def test_eps_figures_with_a_relative_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tex = rb"""\documentclass{article}\begin{document}
\begin{figure}\includegraphics{plot}\caption{An EPS plot.}\end{figure}
\end{document}"""
    (tmp_path / "2301.00001.tar.gz").write_bytes(_tar_gz({"main.tex": tex, "plot.eps": _EPS}))
    monkeypatch.chdir(tmp_path)  # Ghostscript runs in its own folder: relative scratch paths must not leak
    assert (
        sciclip_main(
            ["extract", "arxiv", "2301.00001.tar.gz", "--out", "out", "--workers", "0", "--no-progress"]
        )
        == 0
    )
    (sample,) = iter_samples(tmp_path / "out")
    assert sample.text == "An EPS plot."
    assert load_image(sample.jpg).getpixel((10, 10))[2] > 150


# ----------------------------------------------------------------------------------------------------------
# Issue 22: floats never vanish unrecorded, the label column, a folder without packages
# ----------------------------------------------------------------------------------------------------------

_PANEL = r"""  \begin{subfigure}[b]{0.24\textwidth}
    \includegraphics[width=\linewidth]{%s}
    \caption{}
  \end{subfigure}\hfill
"""
_ISSUE_22_TEX = (
    r"""\documentclass[twocolumn]{article}
\usepackage{graphicx,subcaption}
\begin{document}
\begin{figure*}[t]
  \centering
"""
    + "".join(_PANEL % f"lc_{panel}.png" for panel in "abcd")
    + r"""  \caption{Light curves of the four flares: (a) quiescent, (b) rise, (c) peak, (d) decay.}
  \label{fig:lightcurves}
\end{figure*}
\begin{figure*}
"""
    + "".join(_PANEL % f"run_{panel}.png" for panel in "abcd")
    + r"""  \caption{Runs \#1 to \#4 of the simulation.}
\end{figure*}
\newcommand{\onefigure}[2]{\begin{figure}\includegraphics{#1}\caption{#2}\end{figure}}
\onefigure{single.png}{A float written by a macro.}
\begin{figure}\centering\end{figure}
\end{document}
"""
)


def test_subfigures_with_empty_captions_and_no_silent_float_loss(tmp_path: Path) -> None:
    wide = {f"{stem}_{panel}.png": _png((40 * i, 90, 160), (600, 110)) for stem in ("lc", "run") for i, panel in
            enumerate("abcd")}  # fmt: skip
    files = {"main.tex": _ISSUE_22_TEX.encode(), "single.png": _png((0, 120, 0)), **wide}
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "2301.00022.tar.gz").write_bytes(_tar_gz(files))
    summary = extract_arxiv([tmp_path / "in"], tmp_path / "out", workers=0, progress=False)
    (row,) = summary.manifest.to_dict("records")
    pairs = read_metadata(tmp_path / "out").set_index("figure_id")
    assert row["status"] == "ok" and row["pairs_written"] == 3
    assert pairs.text.to_dict() == {
        "fig1": "Light curves of the four flares: (a) quiescent, (b) rise, (c) peak, (d) decay.",
        "fig2": "Runs #1 to #4 of the simulation.",  # "\#1" is text, not a macro parameter
        "fig3": "A float written by a macro.",
    }
    assert pairs.label.to_dict() == {"fig1": "fig:lightcurves", "fig2": "", "fig3": ""}
    assert pairs.loc["fig1", "width"] > 2 * pairs.loc["fig1", "height"]  # the four wide panels in one image
    # Every float that gave no pair is in the manifest with the reason: the \newcommand template and the
    # empty float (found, but neither caption, image nor drawing).
    assert row["figures_found"] == 3
    assert list(row["problems"]) == [
        "figure float in main.tex left out: macro template (holds a parameter #1..#9)",
        "figure float in main.tex left out: no caption, image or drawing",
    ]


def test_label_column_for_sub_figures_and_floats(tmp_path: Path) -> None:
    tex = rb"""\documentclass{article}\usepackage{graphicx,subcaption}\begin{document}
\begin{figure}\begin{subfigure}{.5\linewidth}\includegraphics{a}\caption{Left.}\label{fig:left}\end{subfigure}
\begin{subfigure}{.5\linewidth}\includegraphics{b}\caption{Right.}\end{subfigure}
\caption{Two panels.}\label{fig:both}\end{figure}
\end{document}"""
    source = tmp_path / "2301.00023.tar.gz"
    source.write_bytes(_tar_gz({"main.tex": tex, "a.png": _png((200, 0, 0)), "b.png": _png((0, 0, 200))}))
    result = arxiv.process_item(WorkItem(key="k", input=str(source), paper_id="2301.00023"))
    labels = {record.figure_id: record.extra["label"] for record in result.records}
    assert labels == {"fig1a": "fig:left", "fig1b": "fig:both"}  # a sub-figure's own label, else the float's


@pytest.mark.parametrize("contents", [{}, {"notes.txt": b"not a paper", "readme.txt": b"nor this"}])
def test_a_folder_without_arxiv_packages_is_an_error(
    tmp_path: Path, contents: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    with pytest.raises(ValueError, match="no arXiv packages found in"):
        arxiv.build_work_items([folder])
    out = tmp_path / "out"
    assert sciclip_main(["extract", "arxiv", str(folder), "--out", str(out), "--workers", "0"]) == 2
    assert "no arXiv packages found" in capsys.readouterr().err and not out.exists()
    elsewhere = tmp_path / "packages"
    elsewhere.mkdir()
    (elsewhere / "2301.00024.gz").write_bytes(gzip.compress(rb"\documentclass{article}"))
    assert arxiv.build_work_items([elsewhere], start="2401") == []  # packages, none in the months asked
