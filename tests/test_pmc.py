"""PMC extraction on the real JATS fixtures (legacy packages and 2026 folders) and on documents written here."""

from __future__ import annotations

import http.server
import io
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from sciclip_utils import cli
from sciclip_utils.archives import read_package
from sciclip_utils.commonpool import iter_samples, read_metadata
from sciclip_utils.extract import ExtractionError, extract_pmc
from sciclip_utils.images import prepare_image
from sciclip_utils.pmc import (
    detect_language,
    find_image,
    href_stem,
    index_media,
    normalize_license,
    parse_article,
    plan_inputs,
)

# (status, pairs) per article, counted by reading each XML: every <fig> has a caption and a graphic.
EXPECTED = {
    "PMC1790863.1": ("ok", 3),  # 2026 folder; 24 formula <graphic>s in disp-formula are not figures
    "PMC2329613": ("skipped", 0),  # no <fig>
    "PMC2599765.1": ("ok", 3),  # figures in <floats-group>
    "PMC2994229": ("skipped", 0),  # no <fig>
    "PMC3166277.1": ("ok", 4),
    "PMC3460867": ("ok", 4),  # legacy: .jpg plus .gif thumbnail per graphic
    "PMC3574550": ("ok", 2),
    "PMC3585041": ("ok", 1),
    "PMC5828200": ("ok", 11),  # F1..F11: F1 must not take F10/F11's image
    "PMC6398430.1": ("ok", 4),
    "PMC7417471": ("ok", 6),  # Springer: inline-formula with tex-math + MathML + inline-graphic
    "PMC9130353": ("failed", 0),  # PeerJ: hrefs are absolute URLs, no image files in the package
    "PMC9202375.1": ("ok", 14),
    "PMC9370071": ("ok", 31),  # eLife: fig-group supplements and sub-article figures
    "PMC9376516": ("ok", 25),  # eLife kitchen sink: app/boxed-text, sub-article; f005 used twice
    "PMC9461546": ("ok", 7),  # hrefs end in .tif, files are .jpg
    "PMC9818487": ("ok", 23),
    "PMC9907959": ("ok", 20),
    "PMC9916787.1": ("ok", 5),
}
# Captions checked by hand against the XML.
CAPTIONS = {
    # floats-group; title-less caption of two <p>s joined by one space
    (
        "PMC2599765",
        "f1-ehp-116-1694",
    ): "Exposure to PBDE-47 depressed circulating concentrations of total T4 in "
    "males and females (A), but had no effect on total T3 in males (B). *p < 0.05 compared with control.",
    # <title> and <p> joined by a space; M<italic>m</italic>PPOX is one word; label and object-id left out
    (
        "PMC3460867",
        "pone-0046493-g001",
    ): "Chemical structure of inhibitors. Chemical structures of A, THL and B, "
    "MmPPOX. The proposed mechanism of action involves the opening of the cycle in each molecule. Nucleophilic "
    "sites attacked by catalytic serine are indicated by an arrow. Theoretical exact masses were calculated "
    "using the online calculator provided by SIS, Inc. (http://www.sisweb.com/referenc/tools/exactmass.htm).",
    # a title without a final full stop is still not glued to the paragraph
    (
        "PMC5828200",
        "F9",
    ): "CSP increased phagocytosis of BV2 microglia (A-B) Representative images of ingested "
    "microspheres (red) in the BV2 cells (green) treated with 0 or 2.2 μM CSP for 1 hr. Scale bar = 25 μm. (C) "
    "CSP significantly increased the phagocytosis index. N = 11,480 cells in control group; N = 18,199 cells in "
    "CSP treated group. (D) BV2 cells were treated with 1 μM oAβ and 0 or 2.2 μM CSP for 24 hrs. Levels of "
    "residual Aβ in the media were lower in the CSP treated group. Results were analyzed by t test. *, p < 0.05; "
    "**, p < 0.01.",
    # eLife figure supplement in a fig-group: no "Figure 1—figure supplement 1." label, no DOI paragraph
    (
        "PMC9818487",
        "fig1s1",
    ): "Frequency of rosette colonies in S. rosetta environmental isolate ATCC 50818, RCA "
    "with and without A. machipongonensis and a monoxenic line with A. machipongonensis feeder bacteria (Px1). "
    "Altering bacterial diversity in S. rosetta cultures alters the frequency of rosette colonies. Data are the "
    "whisker-box plots of the frequency of colonial cells in ATCC 50818 and a monoxenic culture of S. rosetta "
    "fed only A. machipongonensis bacteria (Px1) for three experiments.",
    ("PMC9461546", "fig1s2"): "Close-up of parasegment-specific expression patterns. Embryos expressing the "
    "INTACT marker in parasegments 4–7 were obtained as in Figure 1B. All are at ∼10 hr of development, prior "
    "to dorsal closure; they were dissected along the dorsal midline, and flattened to display the epidermis in "
    "one focal plane. The last panel shows an embryo stained for UBX (in blue) and ABD-A (in brown) (Karch et "
    "al., 1990), to illustrate the expression patterns of these two proteins in parasegments 4–7.",
    # nested supplementary-material ("Figure 1—source data 1") and the inline graphic left out
    (
        "PMC9376516",
        "fig1",
    ): "Rosette colony development in S. rosetta is regulated by A. machipongonensis. (A). "
    "The original culture of S. rosetta, ATCC 50818, contains diverse co-isolated environmental bacteria and "
    "forms rosette colonies (arrowheads) rarely. (B). Treatment of ATCC50818 with a cocktail of antibiotics "
    "reduced the bacterial diversity and yielded an S. rosetta culture line, RCA, in which rosette colonies "
    "never formed. (Representative single cells indicated by arrows.) (C). Addition of A. machipongonensis to "
    "RCA cultures was sufficient to induce rosette development. Scale bar, 20 μm. Here is an example of making "
    "text display in different colours: red and blue. Here is an example of pulling in an inline graphic.",
    # inline formula: <alternatives> of tex-math (with a LaTeX preamble), MathML and an image -> MathML text
    (
        "PMC7417471",
        "Fig6",
    ): "a Schematic representation of the fabrication of EE2 electrochemical biosensor. b "
    "Cyclic voltammetry measurements using a PBS buffer solution (pH 7.4) and scan rate of 100 mV s−1 for PTO, "
    "PVP/Chi/rGO ES NFs and PVP/Chi/rGO ES NFs coated with Laccase enzyme. c Nyquist plots of EIS for (a) FTO, "
    "(b) PVP nanofibers, (c) PVP/Chi nanofibers, (d) PVP/Chi/rGO nanofibers and (e) PVP/Chi/rGO nanofibers "
    "coated with Laccase in a 5 mmol L-1[Fe(CN)6]3-/4- solution with 0.1 mol L−1 KCl. d Amperometric response "
    "upon successive additions of EE2 ethanol solution recorded at PVP/Chi/rGO_Laccase coated electrode in a "
    "phosphate buffer solution pH 7.0 in concentrations ranging from 0.25 to 20 pmol L−1 at a fixed potential "
    "of − 0.3 V. The inset shows the calibration curve with the respective linear fit. a–d reproduced from with "
    "permission from [162] Copyright 2018 Elsevier. (E) Schematic of cyclic voltammetry shown the "
    "electrochemical behaviour of BSA/BH/PNF/GCE in presence of [Fe(CN)6]3−/4− at different scan rates "
    "(20–160 mV/s). It can be revealed that, the increase in the peak to peak voltage difference is also an "
    "indication of the progressive immobilization and the anodic peak shifts towards the higher potential value "
    "whereas the cathodic peaks shift towards lower potential value with the increase in the scan rate "
    "Reproduced with permission from [129] Copyright 2019 Wiley",
    (
        "PMC9916787",
        "pone.0124658.g004",
    ): "AUC curve over time. (A) overall survival, (B) disease-free survival.",
    ("PMC6398430", "F3"): "Relative proportions of presence categories per season.",
}
# License column of the fixtures' oa_file_list.csv, and what each XML's <license> says.
CSV_LICENSES = {"PMC3574550": "CC BY", "PMC9370071": "CC0", "PMC9202375": "CC BY", "PMC2994229": "CC0"}
XML_LICENSES = {
    "PMC2599765.1": "PD",  # creativecommons.org/publicdomain/mark
    "PMC6398430.1": "CC BY",  # xlink:href + license-type="cc-by"
    "PMC1790863.1": None,  # no <permissions>
    "PMC3574550.tar.gz": "CC BY-NC",  # licenses/by-nc/3.0
    "PMC3460867.tar.gz": "CC BY",  # prose only: "Creative Commons Attribution License"
    "PMC7417471.tar.gz": "CC BY",  # Springer: license-type="OpenAccess" + prose
    "PMC2994229.tar.gz": None,  # copyright statement only
}


@pytest.fixture(scope="module")
def pmc_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "pmc"


@pytest.fixture(scope="module")
def extracted(pmc_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """All fixtures, in-process; ``oa_file_list.csv`` in the input folder is picked up by itself."""
    out = tmp_path_factory.mktemp("pmc")
    summary = extract_pmc([pmc_dir], out, workers=0, progress=False)
    return summary, read_metadata(out)


def _jpeg(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_pairs_per_article(extracted) -> None:
    summary, metadata = extracted
    manifest = summary.manifest.set_index("key")
    assert {k: (r.status, r.pairs_written) for k, r in manifest.iterrows()} == EXPECTED
    assert summary.pairs == sum(pairs for _, pairs in EXPECTED.values()) == len(metadata)
    assert summary.counts == {"ok": 16, "skipped": 2, "failed": 1}
    assert metadata.groupby("paper_id").size().to_dict() == {
        key.split(".")[0]: pairs for key, (_, pairs) in EXPECTED.items() if pairs
    }
    assert set(metadata["source"]) == {"pmc"} and set(metadata["language"]) == {"en"}
    assert manifest.loc["PMC2329613", "reason"] == "no <fig> elements in the article"
    assert manifest.loc["PMC9370071", "figures_found"] == 31
    assert manifest.loc["PMC9370071", "main_file"] == "PMC9370071/elife_elife04953.nxml"
    assert manifest.loc["PMC9916787.1", "main_file"] == "PMC9916787.1.xml"


def test_exact_captions(extracted) -> None:
    _, metadata = extracted
    captions = metadata.set_index(["paper_id", "figure_id"])["text"]
    for key, caption in CAPTIONS.items():
        assert captions[key] == caption, key
    assert not captions.str.contains(r"\\|\$|DOI:|  |source data|figure supplement \d\.$").any()


def test_peerj_absolute_url_hrefs_are_recorded(extracted) -> None:
    summary, _ = extracted
    row = summary.manifest.set_index("key").loc["PMC9130353"]
    assert row.stage == "images"
    assert row.reason == "no pairs from 4 figures: 4 absolute URL href with no local file"
    assert list(row.problems) == [
        f"fig-{n}: absolute URL href with no local file: https://peerj.com/articles/1000/fig-{n}.png"
        for n in range(1, 5)
    ]


def test_images_are_the_full_files_by_exact_stem(extracted, pmc_dir: Path) -> None:
    """Every pair of two articles carries exactly its own full image (never fig10 for fig1, never a .gif)."""
    _, metadata = extracted
    with tarfile.open(pmc_dir / "PMC5828200.tar.gz") as tar:
        files = {Path(m.name).name: tar.extractfile(m).read() for m in tar if m.isfile()}
    files.update({p.name: p.read_bytes() for p in (pmc_dir / "PMC9202375.1").iterdir()})
    expected = {
        **{("PMC5828200", f"F{n}"): f"oncotarget-09-10681-g{n:03d}.jpg" for n in range(1, 12)},
        **{("PMC9202375", f"fig{n}"): f"elife00005f{n:03d}.jpg" for n in range(1, 14)},
        ("PMC9202375", "fig9s1"): "elife00005fs001.jpg",
    }
    jpegs = {(s.json["paper_id"], s.json["figure_id"]): s.jpg for s in iter_samples(extracted[0].out_dir)}
    for key, name in expected.items():
        assert jpegs[key] == prepare_image(files[name], name).jpeg, key
    gif_size = Image.open(io.BytesIO(files["oncotarget-09-10681-g001.gif"])).size
    legacy = metadata[metadata["paper_id"].isin(["PMC3460867", "PMC5828200", "PMC9370071"])]
    assert (legacy["original_width"] > gif_size[0]).all()


def test_licenses_from_file_list_and_xml(extracted, pmc_dir: Path, tmp_path: Path) -> None:
    summary, metadata = extracted
    manifest = summary.manifest.set_index("paper_id")
    for paper_id, code in CSV_LICENSES.items():
        assert manifest.loc[paper_id, "license"] == code
        assert manifest.loc[paper_id, "license_source"] == "file_list"
    assert set(metadata.loc[metadata["paper_id"] == "PMC3574550", "license"]) == {"CC BY"}  # csv over XML
    inputs = [pmc_dir / name for name in XML_LICENSES]  # files and folders, not the folder with the csv
    result = extract_pmc(inputs, tmp_path / "xml", workers=0, progress=False).manifest
    got = {Path(r.input).name: r.license for r in result.itertuples()}
    assert got == XML_LICENSES
    assert set(result["license_source"].dropna()) == {"xml"}


def test_license_filters(pmc_dir: Path, tmp_path: Path) -> None:
    inputs = [pmc_dir / "PMC3574550.tar.gz", pmc_dir / "PMC1790863.1", pmc_dir / "PMC6398430.1"]
    commercial = extract_pmc(inputs, tmp_path / "c", license="commercial", workers=0, progress=False)
    rows = commercial.manifest.set_index("key")
    assert rows.loc["PMC3574550", "reason"] == "license CC BY-NC not allowed by license='commercial'"
    assert rows.loc["PMC1790863.1", "reason"] == "license unknown not allowed by license='commercial'"
    assert rows.loc["PMC3574550", "figures_filtered"] == 2
    assert list(rows["status"]) == ["skipped", "skipped", "ok"] and commercial.pairs == 4
    noncommercial = extract_pmc(inputs, tmp_path / "n", license="noncommercial", workers=0, progress=False)
    assert noncommercial.pairs == 6
    with pytest.raises(ValueError, match="unknown license filter"):
        extract_pmc(inputs, tmp_path / "x", license="open")


def test_normalize_license() -> None:
    cases = {
        "http://creativecommons.org/licenses/by-nc-nd/4.0/": "CC BY-NC-ND",
        "https://creativecommons.org/licenses/by-sa/3.0/igo/": "CC BY-SA",
        "http://creativecommons.org/publicdomain/zero/1.0/": "CC0",
        "CC BY-NC": "CC BY-NC",
        "cc-by": "CC BY",
        "CC0": "CC0",
        "NO-CC CODE": "NO-CC CODE",
        "Creative Commons Attribution Non-Commercial Share Alike License": "CC BY-NC-SA",
        "open-access": None,
        "": None,
    }
    assert {value: normalize_license(value) for value in cases} == cases


def test_media_mapping_is_exact() -> None:
    names = ["p/fig10.jpg", "p/fig1.gif", "p/fig1.jpg", "p/pnas.2314795121fig01.tif", "other/fig1.png"]
    index = index_media(names, prefer_dir="p")
    assert find_image("fig1", index) == "p/fig1.jpg"  # full image before the thumbnail
    assert find_image("fig1.tif", index) == "p/fig1.jpg"  # a known extension is probed, not required
    assert find_image("FIG10", index) == "p/fig10.jpg"
    assert find_image("pnas.2314795121fig01", index) == "p/pnas.2314795121fig01.tif"
    assert find_image("fig", index) is None and find_image("fig2", index) is None  # no prefixes
    assert find_image("https://peerj.com/articles/1000/fig-1.png", index) is None
    assert href_stem("pnas.2314795121fig01") == "pnas.2314795121fig01"
    assert href_stem("https://peerj.com/articles/1000/fig-1.png") == "fig-1"
    assert find_image("fig1", index_media(["p/fig10.jpg", "p/fig1.gif"])) == "p/fig1.gif"


def test_language_helper() -> None:
    assert detect_language("The cells were treated with the drug for two days.") == "en"
    assert detect_language("Die Zellen wurden mit dem Medikament für zwei Tage behandelt.") == "de"
    assert detect_language("Kaplan–Meier curves", hint="en") == "en"  # too short: the article's language
    assert detect_language("Kaplan–Meier curves") == "und"
    chinese = "细胞在药物处理后的生长曲线与对照组的比较 (control, n = 3)"  # mostly non-Latin letters
    assert detect_language(chinese, hint="zh") == "zh" and detect_language(chinese, hint="en") == "und"
    assert detect_language("The μ-opioid receptor α-subunit in the β cells of the islets") == "en"


SYNTHETIC = """<?xml version="1.0"?>
<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML"
  xml:lang="en"><front><article-meta><permissions><license xlink:href="http://creativecommons.org/licenses/by/4.0/">
  <license-p>CC BY</license-p></license></permissions></article-meta></front><body>
<fig id="f1"><label>Figure 1</label><caption><title>Growth at <inline-formula><alternatives>
  <tex-math>$\\beta$</tex-math><mml:math><mml:mi>α</mml:mi><mml:mo>=</mml:mo><mml:mn>2</mml:mn></mml:math>
  <inline-graphic xlink:href="inf1"/></alternatives></inline-formula>.</title><p>The cells in the
  culture.</p></caption>
  <alternatives><graphic xlink:href="f1-thumb.gif" content-type="thumb"/><graphic xlink:href="f1.tif"/></alternatives>
</fig>
<fig id="f2"><caption><p>Only an equation <disp-formula><graphic xlink:href="eq1"/></disp-formula>.</p></caption></fig>
<fig id="f3"><caption><p>Two panels of the same experiment with the control and the treatment.</p></caption>
  <graphic id="g3a" position="anchor" xlink:href="f3a"/><graphic xlink:href="f3b"/></fig>
<fig><graphic xlink:href="f4"/></fig>
<fig id="f5"><caption><p>Die Verteilung der Zellen in der Kultur und die Ergebnisse.</p></caption>
  <graphic xlink:href="f5"/></fig>
<fig id="f6"><caption><p>The image of the figure is missing from the package.</p></caption>
  <graphic xlink:href="f6"/></fig>
</body></article>"""


def _synthetic_article(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / f"{folder.name}.xml").write_text(SYNTHETIC, encoding="utf-8")
    colors = {"f1": (200, 0, 0), "f1-thumb": (0, 0, 0), "eq1": (0, 0, 0), "f3a": (0, 200, 0)}
    colors |= {"f3b": (0, 0, 200), "f4": (90, 90, 90), "f5": (10, 100, 10), "f60": (1, 2, 3)}
    for stem, color in colors.items():
        (folder / f"{stem}.{'gif' if 'thumb' in stem else 'jpg'}").write_bytes(_jpeg(color))
    return folder


def test_synthetic_article_rules(tmp_path: Path) -> None:
    """alternatives + thumbnails, formula graphics, several graphics, no caption, language filter."""
    article = _synthetic_article(tmp_path / "in" / "PMC123.1")
    (tmp_path / "outside.jpg").write_bytes(_jpeg((1, 1, 1)))
    (article / "f6.jpg").symlink_to(tmp_path / "outside.jpg")  # never followed
    summary = extract_pmc([article], tmp_path / "out", workers=0, progress=False)
    row = summary.manifest.iloc[0]
    assert (row.key, row.status, row.figures_found, row.pairs_written) == ("PMC123.1", "ok", 6, 3)
    assert list(row.problems) == [
        "f2: no <graphic> with an xlink:href",
        "fig4: no caption text",
        "f6: image not found: f6",  # f60.jpg is not f6
    ]
    samples = {s.json["figure_id"]: s for s in iter_samples(tmp_path / "out")}
    assert samples["f1"].text == "Growth at α = 2. The cells in the culture."
    assert Image.open(io.BytesIO(samples["f1"].jpg)).getpixel((30, 20))[0] > 150  # f1.jpg, not the thumbnail
    assert Image.open(io.BytesIO(samples["f3"].jpg)).width > 2 * 64  # two panels, one composite image
    languages = read_metadata(tmp_path / "out").set_index("figure_id")["language"].to_dict()
    assert languages == {"f1": "en", "f3": "en", "f5": "de"}
    english = extract_pmc([article], tmp_path / "en", language="en", workers=0, progress=False)
    assert english.pairs == 2 and english.manifest.iloc[0]["figures_filtered"] == 1


def _serve(hits: list[str]) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY secret "FROM-THE-NETWORK">')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _article_with(doctype: str, entity: str) -> bytes:
    return (
        f'<?xml version="1.0"?>{doctype}<article xmlns:xlink="http://www.w3.org/1999/xlink"><body>'
        f'<fig id="f1"><caption><p>Value &{entity}; here.</p></caption><graphic xlink:href="f1"/></fig>'
        "</body></article>"
    ).encode()


def test_safe_xml(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    hits: list[str] = []
    server = _serve(hits)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
        billion = _article_with(f'<!DOCTYPE article [<!ENTITY l0 "lol">{laughs}]>', "l9")
        xxe = _article_with(f'<!DOCTYPE article [<!ENTITY xxe SYSTEM "file://{secret}">]>', "xxe")
        external_dtd = _article_with(f'<!DOCTYPE article SYSTEM "{url}/evil.dtd">', "secret")
        parameter = _article_with(f'<!DOCTYPE article [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]>', "secret")
        with pytest.raises(ExtractionError) as error:
            parse_article(billion)
        assert error.value.stage == "xml" and "amplification" in error.value.reason
        for document in (xxe, external_dtd, parameter):
            assert [f.caption for f in parse_article(document).figures] == ["Value here."]
    finally:
        server.shutdown()
    assert hits == []
    folder = tmp_path / "PMC7.1"
    folder.mkdir()
    (folder / "PMC7.1.xml").write_bytes(xxe)
    (folder / "f1.jpg").write_bytes(_jpeg((5, 5, 5)))
    summary = extract_pmc([folder], tmp_path / "out", workers=0, progress=False)
    assert summary.pairs == 1 and "TOP-SECRET" not in next(iter_samples(tmp_path / "out")).text


def test_invalid_xml_fails_the_item(tmp_path: Path) -> None:
    (tmp_path / "PMC5.1").mkdir()
    (tmp_path / "PMC5.1" / "PMC5.1.xml").write_text("<article><body><fig></body></article>")
    (tmp_path / "PMC6.xml").write_text("<html/>")
    manifest = extract_pmc([tmp_path], tmp_path / "out", workers=0, progress=False).manifest.set_index("key")
    assert manifest.loc["PMC5.1", "stage"] == "xml"
    assert manifest.loc["PMC5.1", "reason"].startswith("invalid XML: Opening and ending tag mismatch: fig")
    assert manifest.loc["PMC6", "reason"] == "root element is <html>, not <article>"
    assert set(manifest["status"]) == {"failed"}


def test_versions_keep_the_highest(pmc_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(pmc_dir / "PMC9916787.1", tmp_path / "PMC9916787.1")
    newer = tmp_path / "nested" / "PMC9916787.2"
    shutil.copytree(pmc_dir / "PMC9916787.1", newer)
    (newer / "PMC9916787.1.xml").rename(newer / "PMC9916787.2.xml")
    shutil.copy(pmc_dir / "PMC3585041.tar.gz", tmp_path)
    (tmp_path / "PMC3585041.1").mkdir()
    (tmp_path / "PMC3585041.1" / "PMC3585041.1.xml").write_bytes(
        read_package((pmc_dir / "PMC3585041.tar.gz").read_bytes()).files["PMC3585041/pp_pntd.0002065.nxml"]
    )
    manifest = extract_pmc([tmp_path], tmp_path / "out", workers=0, progress=False).manifest.set_index("key")
    assert manifest.loc["PMC9916787.1", "reason"] == "superseded by PMC9916787.2"
    assert manifest.loc["PMC3585041", "reason"] == "superseded by PMC3585041.1"
    assert manifest.loc["PMC9916787.2", "pairs_written"] == 5
    assert manifest.loc["PMC3585041.1", "reason"] == "no pairs from 1 figures: 1 image not found"
    assert list(manifest["paper_id"]) == ["PMC3585041", "PMC3585041", "PMC9916787", "PMC9916787"]


def test_plan_inputs(pmc_dir: Path, tmp_path: Path) -> None:
    plan = plan_inputs([pmc_dir])
    assert len(plan.items) == 19 and plan.skips == {} and plan.file_lists == [pmc_dir / "oa_file_list.csv"]
    with pytest.raises(FileNotFoundError, match="input not found"):
        plan_inputs([tmp_path / "missing"])
    with pytest.raises(ValueError, match="no PMC articles found"):
        plan_inputs([pmc_dir / "oa_file_list.csv", tmp_path])
    (tmp_path / "notes.txt").write_text("not an article")
    with pytest.raises(ValueError, match="not a PMC input"):
        plan_inputs([tmp_path / "notes.txt"])


def test_resume_and_dask(extracted, pmc_dir: Path, tmp_path: Path) -> None:
    """A rerun reuses every stored item; Dask workers give the same shards as the in-process run."""
    summary, metadata = extracted
    again = extract_pmc([pmc_dir], summary.out_dir, workers=0, progress=False)
    pd.testing.assert_frame_equal(again.manifest, summary.manifest)  # same per-item seconds: not rerun
    inputs = [pmc_dir / "PMC9202375.1", pmc_dir / "PMC5828200.tar.gz", pmc_dir / "PMC9130353.tar.gz"]
    parallel = extract_pmc(inputs, tmp_path / "dask", workers=2, progress=False)
    assert parallel.counts == {"ok": 2, "skipped": 0, "failed": 1}
    subset = metadata[metadata["paper_id"].isin(["PMC9202375", "PMC5828200"])]
    assert sorted(read_metadata(tmp_path / "dask")["uid"]) == sorted(subset["uid"])


def test_cli_exit_codes(pmc_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["extract", "pmc", str(pmc_dir / "PMC9130353.tar.gz"), str(pmc_dir / "PMC6398430.1")]
    assert cli.main([*args, "--out", str(out), "--workers", "0", "--language", "en", "--no-progress"]) == 0
    assert "2 articles (1 ok, 0 skipped, 1 failed), 4 pairs" in capsys.readouterr().out
    assert (out / "manifest.parquet").is_file() and (out / "sizes.json").is_file()
    assert cli.main(["extract", "pmc", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "input not found" in capsys.readouterr().err
    missing_list = ["--file-list", str(tmp_path / "none.csv"), "--out", str(out)]
    assert cli.main([*args, *missing_list]) == 2
    assert "file list not found" in capsys.readouterr().err
    assert cli.main([*args, "--out", str(out), "--language", "english!"]) == 2
    (tmp_path / "file").write_text("x")
    assert cli.main([*args, "--out", str(tmp_path / "file" / "out")]) == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*args, "--out", str(out), "--license", "free"])
    assert exit_info.value.code == 2


def _one_figure_article(folder: Path, image_name: str, image: bytes) -> None:
    """A 2026-layout article folder whose one figure is ``image_name``."""
    folder.mkdir(parents=True)
    (folder / f"{folder.name}.xml").write_text(
        '<article xmlns:xlink="http://www.w3.org/1999/xlink"><body><fig id="f1"><caption><p>The only figure '
        f'of the article.</p></caption><graphic xlink:href="{image_name}"/></fig></body></article>'
    )
    (folder / image_name).write_bytes(image)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header for ``width`` x ``height`` RGB pixels, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(bytes(64))), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(kind, data) for kind, data in chunks)


@pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript (gs) is not installed")
def test_cli_item_limits_fail_only_the_items_over_them(tmp_path: Path) -> None:
    """``--item-timeout-s`` and ``--item-memory-mb`` reach the run: an EPS that never ends is killed at the
    timeout, a figure whose pixels (9000 x 9000) need more than the memory cap fails, the rest is kept.

    The command runs in a new process, as it is used: a sandbox forked from this long-lived test process
    would inherit its freed-but-mapped heap, room that the cap (address space beyond the worker's own)
    does not count."""
    inputs = tmp_path / "in"
    _one_figure_article(inputs / "PMC1.1", "f1.jpg", _jpeg((200, 0, 0)))
    _one_figure_article(inputs / "PMC2.1", "f1.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n{} loop\n")
    _one_figure_article(inputs / "PMC3.1", "f1.png", _png_claiming(9000, 9000))
    args = ["extract", "pmc", str(inputs), "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress"]
    limits = ["--item-timeout-s", "1", "--item-memory-mb", "128"]
    command = [sys.executable, "-c", "import sys; from sciclip_utils.cli import main; sys.exit(main())"]
    subprocess.run([*command, *args, *limits], check=True, capture_output=True, timeout=120)
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert {row.paper_id: (row.status, row.stage, row.reason) for row in manifest.itertuples()} == {
        "PMC1": ("ok", None, None),
        "PMC2": ("failed", "timeout", "no result after 1 s: item process killed"),
        "PMC3": ("failed", "memory", "out of memory (item memory cap 128 MiB)"),
    }


def test_unsafe_package_members_are_skipped_and_recorded(tmp_path: Path) -> None:
    article = (
        b'<article xmlns:xlink="http://www.w3.org/1999/xlink"><body><fig id="f1"><caption><p>A figure of the '
        b'cells.</p></caption><graphic xlink:href="f1"/></fig></body></article>'
    )
    package = tmp_path / "PMC8.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        for name, data in [("PMC8/a.nxml", article), ("PMC8/f1.jpg", _jpeg((9, 9, 9))), ("../f1.jpg", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("PMC8/f2.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    row = extract_pmc([package], tmp_path / "out", workers=0, progress=False).manifest.iloc[0]
    assert (row.status, row.pairs_written, row.main_file) == ("ok", 1, "PMC8/a.nxml")
    assert list(row.problems) == [
        "package: skipped ../f1.jpg: unsafe path",
        "package: skipped PMC8/f2.jpg: link member",
    ]


def test_invisible_characters_leave_pmc_captions() -> None:
    """Issue 22: a zero-width no-break space and MathML's invisible times never reach the caption text;
    TeX maths reads as in arXiv captions."""
    xml = """<?xml version="1.0"?>
<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML"><body>
<fig id="f1"><caption><p>\ufeffGrowth of <italic>E.\u200bcoli</italic> at rate <inline-formula><mml:math>
  <mml:mi>k</mml:mi><mml:mo>\u2062</mml:mo><mml:mi>t</mml:mi></mml:math></inline-formula>, non\u00adlinear
  fit\u2063.</p></caption><graphic xlink:href="f1"/></fig>
<fig id="f2"><caption><p>Rotation <inline-formula><tex-math><![CDATA[\\documentclass{minimal}
  \\begin{document}$v\\sin{i} \\subset {\\cal S}$\\end{document}]]></tex-math></inline-formula>.</p></caption>
  <graphic xlink:href="f2"/></fig>
</body></article>""".encode()
    first, second = parse_article(xml).figures
    assert first.caption == "Growth of E.coli at rate kt, nonlinear fit."
    assert second.caption == "Rotation v sin i ⊂ S."  # tex-math through the arXiv caption converter
