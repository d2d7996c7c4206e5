"""PMC part of the sample corpus: JATS articles as legacy OA packages and 2026 per-version folders.

Each article's figures are planned with what extraction should make of them (JATS semantics): every
``<fig>`` with a caption and a local image gives one pair, wherever it sits (body, ``floats-group``,
``fig-group`` supplements, ``boxed-text``, ``app``, ``sub-article``); a fig without caption text (a
graphical abstract) or whose image is only a remote URL gives none; ``<graphic>`` in ``disp-formula`` or
``table-wrap`` is not a figure. ``oa_file_list.csv`` lists every package with its licence.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image

from sciclip_utils.sample_corpus.captions import describe_figure, short_caption
from sciclip_utils.sample_corpus.eval import eval_spec, planted_image_bytes
from sciclip_utils.sample_corpus.figures import (
    FigureSpec,
    figure_image,
    sample_figure,
)
from sciclip_utils.sample_corpus.io import gzip_bytes, image_bytes, minimal_pdf, rng_for, tar_bytes
from sciclip_utils.sample_corpus.text import Caption, Math, Token, to_jats

KIND_WEIGHTS = {"adipose": 0.09, "tumor": 0.09, "stroma": 0.08, "lymphocytes": 0.08, "fluorescent": 0.11,
                "bar": 0.14, "line": 0.12, "scatter": 0.1, "histogram": 0.06, "heatmap": 0.08, "schematic": 0.05}  # fmt: skip
LICENSES = {
    "CC BY": 0.55,
    "CC BY-NC": 0.15,
    "CC0": 0.1,
    "NO-CC CODE": 0.1,
    "CC BY-NC-ND": 0.05,
    "CC BY-SA": 0.05,
}
LICENSE_URLS = {
    "CC BY": "https://creativecommons.org/licenses/by/4.0/",
    "CC BY-NC": "https://creativecommons.org/licenses/by-nc/4.0/",
    "CC BY-NC-ND": "https://creativecommons.org/licenses/by-nc-nd/4.0/",
    "CC BY-SA": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC0": "https://creativecommons.org/publicdomain/zero/1.0/",
}
# journal, abbreviation, file stem of the XML, graphic href pattern ({num}, {n}; eLife supplements add {k})
JOURNALS = [
    ("PLoS ONE", "PLoS One", "pone.{num}", "pone.{num}.g{n:03d}"),
    ("eLife", "eLife", "elife-{num}-v2", "elife-{num}-fig{n}-v2"),
    ("Scientific Reports", "Sci Rep", "41598_2023_{num}_OnlinePDF", "41598_2023_{num}_Fig{n}_HTML"),
    ("Proceedings of the National Academy of Sciences", "Proc Natl Acad Sci U S A", "pnas.{num}", "pnas.{num}fig{n:02d}"),
    ("Cancers", "Cancers (Basel)", "cancers-15-{num}", "cancers-15-{num}-g{n:03d}"),
    ("Frontiers in Oncology", "Front Oncol", "fonc-13-{num}", "fonc-13-{num}-g{n:03d}"),
    ("PeerJ", "PeerJ", "peerj-{num}", "peerj-{num}-fig-{n}"),
    ("BMC Cancer", "BMC Cancer", "12885_2023_{num}_MOESM", "12885_2023_{num}_Fig{n}_HTML"),
]  # fmt: skip
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Methods and statistics sentences that make biomedical captions longer than arXiv ones (paper, Table 1).
METHODS: list[Callable[[np.random.Generator], list[Token]]] = [
    lambda rng: ["Data are presented as mean ± s.d. of ", Math(f"n = {int(rng.integers(3, 7))}"),
                 " independent experiments; ", Math("p < 0.05"), " (two-tailed Student's t-test)."],
    lambda rng: ["Images are representative of ", Math(f"n = {int(rng.integers(4, 12))}"),
                 " mice per group; quantification was performed on five random fields per section."],
    lambda rng: ["Statistical significance was assessed by one-way ANOVA with Tukey's post hoc test (*",
                 Math("p < 0.05"), ", **", Math("p < 0.01"), ")."],
    lambda rng: ["Samples were fixed in 4% paraformaldehyde, permeabilised with 0.1% Triton X-100 and imaged at "
                 f"{int(rng.choice([10, 20, 40, 63]))}× magnification."],
]  # fmt: skip
SPECIAL_EVERY = 40
LONG_ARTICLE, VERSIONED_ARTICLE, REMOTE_HREF_ARTICLE = 5, 17, 29  # offsets in each block of articles


@dataclass
class FigPlan:
    """One ``<fig>`` and whether it should give a pair."""

    fig_id: str
    href: str
    caption: Caption | None
    image: bytes | None  # None: the graphic is a remote URL with no local file
    spec: FigureSpec | None
    place: str  # body | floats-group | fig-group | boxed-text | app | sub-article
    pair: bool
    reason: str | None = None
    label: str = "Figure"
    thumb: bool = False  # an <alternatives> thumbnail graphic beside the full image


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    probabilities = np.asarray(list(weights.values()))
    return keys[int(rng.choice(len(keys), p=probabilities / probabilities.sum()))]


def pmc_ids(seed: int, count: int) -> list[str]:
    """Distinct, increasing PMC accession ids."""
    rng = rng_for(seed, "ids", 1)
    return [
        f"PMC{number}"
        for number in np.sort(rng.choice(np.arange(9_000_000, 9_999_999), count, replace=False))
    ]


def build_article(
    seed: int, index: int, pmcid: str, plant: dict[str, Any] | None
) -> list[tuple[str, bytes, dict]]:
    """The files of one article: ``[(relative path under pmc/, bytes, info)]`` (a picklable worker job).

    A legacy article is one ``PMCnnn.tar.gz``; a 2026 article is a ``PMCnnn.V/`` folder of files (two folders
    when it has two versions, the older one superseded).
    """
    rng = rng_for(seed, "pmc", index)
    writer = _ArticleWriter(seed, rng, index, pmcid)
    special = index % SPECIAL_EVERY
    versions = 2 if special == VERSIONED_ARTICLE and not plant else 1
    legacy = versions == 1 and rng.random() < 0.55
    figures = writer.plan(plant, long=special == LONG_ARTICLE, remote=special == REMOTE_HREF_ARTICLE)
    info = writer.info(figures)
    outputs = []
    if legacy:
        files = writer.files(figures, legacy=True)
        stem = writer.stem
        members = {f"{pmcid}/{stem}.nxml": writer.xml(figures)}
        members.update({f"{pmcid}/{name}": data for name, data in files.items()})
        info.update(
            layout="legacy", input=f"{pmcid}.tar.gz", file=writer.oa_path(), formats=_formats(members)
        )
        outputs.append((f"{pmcid}.tar.gz", gzip_bytes(tar_bytes(members, directories=False)), info))
        return outputs
    for version in range(1, versions + 1):
        folder = f"{pmcid}.{version}"
        files = writer.files(figures, legacy=False)
        files[f"{folder}.xml"] = writer.xml(figures, version=version)
        version_info = dict(info, layout="2026", input=f"{folder}/", file=f"{folder}/", version=version,
                            formats=_formats(files))  # fmt: skip
        if version < versions:
            version_info.update(pairs=0, skip=f"superseded by {pmcid}.{versions}", figures=0)
        for name, data in sorted(files.items()):
            outputs.append((f"{folder}/{name}", data, version_info))
    return outputs


class _ArticleWriter:
    def __init__(self, seed: int, rng: np.random.Generator, index: int, pmcid: str) -> None:
        self.seed, self.rng, self.index, self.pmcid = seed, rng, index, pmcid
        self.journal, self.abbrev, stem, self.href_pattern = JOURNALS[int(rng.integers(len(JOURNALS)))]
        self.num = f"{int(rng.integers(10000, 99999))}"
        self.stem = stem.format(num=self.num)
        self.license = _weighted(rng, LICENSES)
        self.math_style = str(rng.choice(["tex", "mml", "markup"]))
        self.floats_group = bool(rng.random() < 0.25)
        self.pmid = "" if rng.random() < 0.15 else str(int(rng.integers(30_000_000, 38_000_000)))
        self.month, self.day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
        self.formula = bool(rng.random() < 0.15)
        self.table_image = bool(rng.random() < 0.1)
        self.extras: list[str] = []
        self.title = (
            f"{str(rng.choice(['Spatial', 'Quantitative', 'Longitudinal', 'Single-cell']))} analysis of "
            + str(
                rng.choice(
                    [
                        "tumor stroma",
                        "adipose remodelling",
                        "lymphocyte infiltration",
                        "cell migration",
                        "drug response",
                    ]
                )
            )
        )

    def _href(self, n: int, k: int | None = None) -> str:
        href = self.href_pattern.format(num=self.num, n=n)
        if k is not None:  # eLife figure supplement
            href = href.replace(f"fig{n}-", f"fig{n}-figsupp{k}-")
        return href

    def _figure_image(self, spec: FigureSpec) -> tuple[bytes, FigureSpec, Caption]:
        rng = self.rng
        caption = describe_figure(spec, rng)
        image = figure_image(spec)
        if rng.random() < 0.25:  # a two-panel figure assembled by the publisher
            second = sample_figure(rng, _weighted(rng, KIND_WEIGHTS), "bio")
            right = figure_image(second)
            right = right.resize((round(right.width * image.height / right.height), image.height))
            canvas = Image.new("RGB", (image.width + right.width + 10, image.height), "white")
            canvas.paste(image, (0, 0))
            canvas.paste(right, (image.width + 10, 0))
            image = canvas
            caption.body = ["(A) "] + caption.body + [" (B) "] + short_caption(second)
        for index in rng.choice(len(METHODS), size=int(rng.integers(1, 3)), replace=False):
            caption.body += [" "] + METHODS[int(index)](rng)
        return image_bytes(image, "jpg", quality=90), spec, caption

    def plan(self, plant: dict[str, Any] | None, long: bool, remote: bool) -> list[FigPlan]:
        rng = self.rng
        count = 11 if long else int(rng.integers(2, 6))
        if long:
            # unpadded numbers and no suffix: the href of fig1 is a prefix of fig10's file name
            self.journal, self.abbrev, stem, self.href_pattern = JOURNALS[6]
            self.stem = stem.format(num=self.num)
            self.extras.append("fig1-vs-fig10")
        elife = self.href_pattern.startswith("elife")
        figures: list[FigPlan] = []
        for n in range(1, count + 1):
            fig_id = f"fig{n}" if elife else str(rng.choice([f"F{n}", f"fig{n}", f"f{n}"]))
            if plant and n == 1:
                data, _ = planted_image_bytes(
                    self.seed, plant["eval_task"], plant["eval_index"], plant["transform"]
                )
                spec, _ = eval_spec(self.seed, plant["eval_task"], plant["eval_index"])
                caption = describe_figure(spec, rng)
                figures.append(
                    FigPlan(fig_id, self._href(n), caption, data, spec, "body", True, label=f"Figure {n}")
                )
                continue
            data, spec, caption = self._figure_image(sample_figure(rng, _weighted(rng, KIND_WEIGHTS), "bio"))
            place = "floats-group" if self.floats_group else "body"
            thumb = bool(rng.random() < 0.05)
            figures.append(
                FigPlan(fig_id, self._href(n), caption, data, spec, place, True, None, f"Figure {n}", thumb)
            )
            if thumb:
                self.extras.append("alternatives-thumbnail")
            if elife and rng.random() < 0.5:  # figure supplements inside a fig-group
                for k in range(1, int(rng.integers(2, 4))):
                    data, spec, caption = self._figure_image(
                        sample_figure(rng, _weighted(rng, KIND_WEIGHTS), "bio")
                    )
                    label = f"Figure {n}—figure supplement {k}"
                    figures.append(
                        FigPlan(
                            f"fig{n}s{k}",
                            self._href(n, k),
                            caption,
                            data,
                            spec,
                            "fig-group",
                            True,
                            None,
                            label,
                        )
                    )
        if remote:
            data, spec, caption = self._figure_image(sample_figure(rng, "bar", "bio"))
            url = f"https://dfzljdn9uc3pi.cloudfront.net/2023/{self.num}/1/fig-{count + 1}-full.png"
            label = f"Figure {count + 1}"
            figures.append(
                FigPlan(
                    f"fig-{count + 1}", url, caption, None, spec, "body", False, "remote image URL", label
                )
            )
        if not plant and rng.random() < 0.1:
            data, spec, _ = self._figure_image(sample_figure(rng, "schematic", "bio"))
            figures.insert(
                0,
                FigPlan(
                    "ga1",
                    f"{self.stem}-ga1",
                    None,
                    data,
                    spec,
                    "body",
                    False,
                    "no caption",
                    "Graphical abstract",
                ),
            )
        for place, chance in (("boxed-text", 0.06), ("app", 0.06), ("sub-article", 0.3 if elife else 0.0)):
            if rng.random() < chance:
                data, spec, caption = self._figure_image(
                    sample_figure(rng, _weighted(rng, KIND_WEIGHTS), "bio")
                )
                label = {
                    "boxed-text": "Box 1—figure 1",
                    "app": "Appendix 1—figure 1",
                    "sub-article": "Author response image 1",
                }[place]
                figures.append(
                    FigPlan(
                        f"{place[:3]}fig1",
                        f"{self.stem}-{place[:3]}1",
                        caption,
                        data,
                        spec,
                        place,
                        True,
                        None,
                        label,
                    )
                )
        return figures

    def info(self, figures: list[FigPlan]) -> dict[str, Any]:
        return {
            "id": self.pmcid, "journal": self.journal, "license": self.license, "figures": len(figures),
            "pairs": sum(f.pair for f in figures), "pairs_by_figure": {f.fig_id: int(f.pair) for f in figures},
            "kinds_by_figure": {f.fig_id: f.spec.kind for f in figures if f.spec},
            "places": dict(Counter(f.place for f in figures)), "math": self.math_style,
            "figure_skips": [[f.fig_id, f.reason] for f in figures if not f.pair],
            "extras": sorted(set(self.extras + ["formula-graphic"] * self.formula + ["table-graphic"] * self.table_image)),
            "skip": None, "near_duplicate": None, "citation": self.citation(), "pmid": self.pmid,
            "updated": f"2023-{self.month:02d}-{self.day:02d} 0{self.index % 10}:{self.index % 60:02d}:00",
        }  # fmt: skip

    def files(self, figures: list[FigPlan], legacy: bool) -> dict[str, bytes]:
        rng = rng_for(self.seed, "pmc", self.index, 2)  # the same media for every version of an article
        files: dict[str, bytes] = {}
        for fig in figures:
            if fig.image is None:
                continue
            stem = fig.href
            files[f"{stem}.jpg"] = fig.image
            if fig.thumb:
                files[f"{stem}-thumb.jpg"] = _thumbnail(fig.image, "jpg")
            if legacy:
                files[f"{stem}.gif"] = _thumbnail(fig.image, "gif")
        if self.formula:
            formula = Image.new("RGB", (120, 24), "white")
            files[f"{self.stem}.e001.jpg"] = image_bytes(formula, "jpg")
        if self.table_image:
            files[f"{self.stem}.t001.jpg"] = image_bytes(Image.new("RGB", (200, 80), (240, 240, 240)), "jpg")
        if legacy or rng.random() < 0.5:
            files[f"{self.stem}.pdf"] = minimal_pdf([self.title, self.journal, self.pmcid])
        if rng.random() < 0.2:
            files[f"{self.stem}-s001.csv"] = b"condition,value\ncontrol,1.0\ntreated,2.3\n"
        return files

    # ---- JATS -------------------------------------------------------------------------------------

    def _fig_xml(self, fig: FigPlan, fig_ids: dict[int, str]) -> str:
        rng = self.rng
        fig_type = str(rng.choice(["", ' fig-type="figure"', ' fig-type="Figure"']))
        specific = ' specific-use="child-fig"' if fig.place == "fig-group" else ""
        caption = ""
        if fig.caption is not None:
            title = to_jats(fig.caption.title, "the method", self.math_style, fig_ids)
            body = to_jats(fig.caption.body, "the method", self.math_style, fig_ids)
            paragraphs = [body]
            if rng.random() < 0.2 and ". " in body:
                head, tail = body.split(". ", 1)
                paragraphs = [head + ".", tail]
            if self.href_pattern.startswith("elife"):
                doi = f"10.7554/eLife.{self.num}.{int(rng.integers(3, 30)):03d}"
                paragraphs.append(f'<bold>DOI:</bold> <ext-link ext-link-type="doi" xlink:href="{doi}">'
                                  f"http://dx.doi.org/{doi}</ext-link>")  # fmt: skip
            title_xml = f"<title>{title}</title>" if rng.random() < 0.8 else ""
            if not title_xml:
                paragraphs[0] = title + " " + paragraphs[0]
            supplementary = ""
            if self.href_pattern.startswith("elife") and rng.random() < 0.3:
                supplementary = (f'<supplementary-material id="{fig.fig_id}sdata1"><label>Source data 1.</label>'
                                 "<caption><title>Numerical values plotted in this figure.</title></caption>"
                                 f'<media mimetype="application" mime-subtype="xlsx" '
                                 f'xlink:href="elife-{self.num}-{fig.fig_id}-data1-v2.xlsx"/></supplementary-material>')  # fmt: skip
            caption = (
                f"<caption>{title_xml}{''.join(f'<p>{p}</p>' for p in paragraphs)}{supplementary}</caption>"
            )
        href = fig.href
        if self.href_pattern.startswith("elife") and fig.image is not None and rng.random() < 0.5:
            href += ".tif"  # the XML names the TIFF, the package ships the JPEG
        attributes = [f"xlink:href={quoteattr(href)}"]
        if rng.random() < 0.4:
            attributes.insert(0, f'id="{fig.fig_id}g"')
        if rng.random() < 0.3:
            attributes.append('position="float"')
        if fig.thumb:
            graphic = (f"<alternatives><graphic {' '.join(attributes)}/>"
                       f'<graphic xlink:href={quoteattr(fig.href + "-thumb")} content-type="thumb"/></alternatives>')  # fmt: skip
        else:
            graphic = f'<graphic {" ".join(attributes)} mimetype="image" mime-subtype="jpeg"/>'
        object_id = (
            f'<object-id pub-id-type="doi">10.1371/journal.{fig.fig_id}</object-id>'
            if rng.random() < 0.3
            else ""
        )
        return (f'<fig id="{fig.fig_id}" position="float"{fig_type}{specific}>{object_id}<label>{escape(fig.label)}</label>'
                f"{caption}{graphic}</fig>")  # fmt: skip

    def _paragraph(self, fig_ids: dict[int, str]) -> str:
        number = int(self.rng.integers(1, max(2, len(fig_ids) + 1)))
        rid = fig_ids.get(number, "F1")
        return (f"<p>Samples were processed as described previously [<xref ref-type=\"bibr\" rid=\"B{number}\">"
                f"{number}</xref>]. Representative results are shown in <xref ref-type=\"fig\" rid=\"{rid}\">"
                f"Figure {number}</xref>; all experiments were repeated three times.</p>")  # fmt: skip

    def xml(self, figures: list[FigPlan], version: int = 1) -> bytes:
        self.rng = rng_for(self.seed, "pmc", self.index, 1)  # the same XML for every version, but the version
        numbered = [f for f in figures if f.place in ("body", "floats-group")]
        fig_ids = {n: f.fig_id for n, f in enumerate(numbered, start=1)}
        body_figs, floats, groups = [], [], []
        for fig in figures:
            if fig.place == "fig-group":
                groups[-1].append(fig)
            elif fig.place in ("body", "floats-group"):
                groups.append([fig])
        for group in groups:
            xml = "".join(self._fig_xml(f, fig_ids) for f in group)
            if len(group) > 1:
                xml = f"<fig-group>{xml}</fig-group>"
            (floats if group[0].place == "floats-group" else body_figs).append(xml)
        sections = []
        for index, title in enumerate(["Introduction", "Materials and methods", "Results", "Discussion"]):
            content = self._paragraph(fig_ids)
            if index == 1 and self.formula:
                content += (f'<disp-formula id="E1"><label>(1)</label><graphic xlink:href="{self.stem}.e001"/>'
                            "</disp-formula>")  # fmt: skip
            if index == 2:
                content += "".join(body_figs)
                if self.table_image:
                    content += (f'<table-wrap id="T1" position="float"><label>Table 1</label><caption><p>Summary of the '
                                f'cohort.</p></caption><graphic xlink:href="{self.stem}.t001"/></table-wrap>')  # fmt: skip
                for fig in figures:
                    if fig.place == "boxed-text":
                        content += (f'<boxed-text id="box1"><caption><title>Box 1. Key concepts</title></caption>'
                                    f"<p>Background for non-specialists.</p>{self._fig_xml(fig, fig_ids)}</boxed-text>")  # fmt: skip
            sections.append(f'<sec id="s{index + 1}"><title>{title}</title>{content}</sec>')
        back = "<back>"
        for fig in figures:
            if fig.place == "app":
                back += (f'<app-group><app id="app1"><title>Appendix 1</title><p>Additional analyses.</p>'
                         f"{self._fig_xml(fig, fig_ids)}</app></app-group>")  # fmt: skip
        back += "<ref-list>" + "".join(
            f'<ref id="B{n}"><mixed-citation publication-type="journal">Author {n}. Title {n}. '
            f"<source>J Synth Biol</source>. 2020;{n}:1-10.</mixed-citation></ref>"
            for n in range(1, 8)
        ) + "</ref-list></back>"  # fmt: skip
        sub_article = ""
        for fig in figures:
            if fig.place == "sub-article":
                sub_article += (f'<sub-article article-type="reply" id="SA1"><front-stub><title-group><article-title>'
                                f"Author response</article-title></title-group></front-stub><body><p>We added the "
                                f"requested analysis.</p>{self._fig_xml(fig, fig_ids)}</body></sub-article>")  # fmt: skip
        floats_group = f"<floats-group>{''.join(floats)}</floats-group>" if floats else ""
        article = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.3 20210610//EN" '
            '"JATS-archivearticle1-3.dtd">\n'
            '<article xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML" '
            'xmlns:ali="http://www.niso.org/schemas/ali/1.0/" article-type="research-article" dtd-version="1.3" '
            f'xml:lang="en">{self._front(version)}<body>{"".join(sections)}</body>{back}{floats_group}{sub_article}'
            "</article>\n"
        )
        return article.encode()

    def _front(self, version: int) -> str:
        license_xml = self._license()
        return (
            f"<front><journal-meta><journal-id journal-id-type=\"nlm-ta\">{escape(self.abbrev)}</journal-id>"
            f"<journal-title-group><journal-title>{escape(self.journal)}</journal-title></journal-title-group>"
            f"<issn pub-type=\"epub\">1234-5678</issn><publisher><publisher-name>Synthetic Publisher</publisher-name>"
            f"</publisher></journal-meta><article-meta>"
            + (f'<article-id pub-id-type="pmid">{self.pmid}</article-id>' if self.pmid else "")
            + f'<article-id pub-id-type="pmcid">{self.pmcid}</article-id>'
            f'<article-id pub-id-type="pmcid-ver">{self.pmcid}.{version}</article-id>'
            f'<article-id pub-id-type="doi">10.5555/synth.{self.num}</article-id>'
            f"<title-group><article-title>{escape(self.title)}</article-title></title-group>"
            '<contrib-group><contrib contrib-type="author"><name><surname>Author</surname><given-names>A.</given-names>'
            "</name></contrib></contrib-group>"
            f'<pub-date pub-type="epub"><day>{self.day}</day><month>{self.month}</month><year>2023</year></pub-date>'
            f"<volume>{int(self.num) % 40 + 1}</volume><elocation-id>e{self.num}</elocation-id>"
            f"<permissions><copyright-statement>© 2023 Author et al.</copyright-statement>"
            f"<copyright-year>2023</copyright-year>{license_xml}</permissions>"
            "<abstract><p>We describe a synthetic study used to test figure extraction.</p></abstract>"
            "</article-meta></front>"
        )  # fmt: skip

    def _license(self) -> str:
        url = LICENSE_URLS.get(self.license)
        if url is None:
            return ("<license><license-p>This article is made available via the PMC Open Access Subset for unrestricted "
                    "research re-use and secondary analysis in any form or by any means with acknowledgement of the "
                    "original source.</license-p></license>")  # fmt: skip
        ali = f"<ali:license_ref>{url}</ali:license_ref>" if self.rng.random() < 0.5 else ""
        return (f'<license license-type="open-access" xlink:href="{url}">{ali}<license-p>This is an open access article '
                f'distributed under the terms of the <ext-link ext-link-type="uri" xlink:href="{url}">{self.license} '
                "licence</ext-link>.</license-p></license>")  # fmt: skip

    def oa_path(self) -> str:
        digest = hashlib.md5(self.pmcid.encode()).hexdigest()
        return f"oa_package/{digest[:2]}/{digest[2:4]}/{self.pmcid}.tar.gz"

    def citation(self) -> str:
        return (
            f"{self.abbrev}. 2023 {MONTHS[self.month - 1]} {self.day}; {int(self.num) % 40 + 1}:e{self.num}"
        )


def file_list_rows(articles: list[dict]) -> list[list[str]]:
    """Rows of ``oa_file_list.csv`` for the written articles (one per package or version folder)."""
    rows = []
    for info in articles:
        rows.append(
            [info["file"], info["citation"], info["id"], info["updated"], info["pmid"], info["license"]]
        )
    return rows


def write_file_list(path: Any, rows: list[list[str]]) -> None:
    """Write ``oa_file_list.csv`` with PMC's header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["File", "Article Citation", "Accession ID", "Last Updated (YYYY-MM-DD HH:MM:SS)", "PMID", "License"]
    )
    writer.writerows(rows)
    path.write_text(buffer.getvalue())


def _thumbnail(jpeg: bytes, fmt: str) -> bytes:
    thumb = Image.open(io.BytesIO(jpeg))
    thumb.thumbnail((100, 100))
    return image_bytes(thumb, fmt)


def _formats(files: dict[str, bytes]) -> dict[str, int]:
    return dict(Counter(name.rsplit(".", 1)[-1] for name in files))
