"""JATS XML: the safe parser, the article's figures (caption and graphic hrefs), its licence and language.

The XML is parsed without DTDs, network access or entity expansion. Every ``<fig>`` is a figure, wherever
it sits (body, ``floats-group``, ``fig-group`` supplements, ``sub-article``, ``app``, ``boxed-text``); its
images are the ``xlink:href`` of its ``<graphic>`` elements (not ones inside a formula or the caption).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sciclip_utils.extract.items import ExtractionError

from .captions import _local, caption_text
from .language import detect_language, normalize_language
from .licenses import normalize_license

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ALI_LICENSE_REF = "{*}license_ref"  # NISO ALI; the namespace is spelt with and without a final slash
THUMBNAIL_TYPES = {"thumb", "thumbnail"}


def safe_parser() -> etree.XMLParser:
    """An lxml parser that never loads DTDs, touches the network or expands entities."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False
    )


@dataclass(frozen=True)
class Figure:
    """One ``<fig>``: its id, clean caption (may be empty), graphic hrefs (one per panel), and why not."""

    figure_id: str
    caption: str
    hrefs: tuple[str, ...]
    problem: str | None = None


@dataclass(frozen=True)
class Article:
    """What the XML says: the figures, the licence code, the declared or detected article language."""

    figures: list[Figure]
    license: str | None
    language: str | None


def parse_article(xml: bytes) -> Article:
    """Parse a JATS article safely; raise ExtractionError (stage ``xml``) when it is not a readable article."""
    if not xml.strip():
        raise ExtractionError("xml", "empty XML file")
    try:
        root = etree.fromstring(xml, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise ExtractionError("xml", f"invalid XML: {exc}") from exc
    if _local(root) != "article":
        raise ExtractionError("xml", f"root element is <{_local(root)}>, not <article>")
    return Article(find_figures(root), article_license(root), article_language(root))


def find_figures(root: etree._Element) -> list[Figure]:
    """Every ``<fig>`` in document order, with caption text and chosen graphic hrefs."""
    figures: list[Figure] = []
    seen: set[str] = set()
    for number, fig in enumerate(root.iter("fig"), start=1):
        figure_id = (fig.get("id") or "").strip() or f"fig{number}"
        if figure_id in seen:
            figure_id = f"{figure_id}-{number}"
        seen.add(figure_id)
        caption_element = fig.find("caption")
        caption = caption_text(caption_element) if caption_element is not None else ""
        hrefs = tuple(figure_hrefs(fig))
        problem = None
        if not hrefs:
            problem = "no <graphic> with an xlink:href"
        elif not caption:
            problem = "no caption text"
        figures.append(Figure(figure_id, caption, hrefs, problem))
    return figures


_NOT_FIGURE_GRAPHIC = {"disp-formula", "inline-formula", "caption", "chem-struct", "fig", "table-wrap"}


def figure_hrefs(fig: etree._Element) -> list[str]:
    """The hrefs of a figure's own graphics: one per panel, formula images and thumbnails left out."""
    groups: dict[int, list[etree._Element]] = {}
    order: list[int] = []
    for graphic in fig.iter("graphic"):
        parent, alternatives = graphic.getparent(), None
        while parent is not None and parent is not fig:
            if _local(parent) in _NOT_FIGURE_GRAPHIC:
                break
            if _local(parent) == "alternatives" and alternatives is None:
                alternatives = parent
            parent = parent.getparent()
        if parent is not fig or not (graphic.get(XLINK_HREF) or "").strip():
            continue
        group = id(alternatives) if alternatives is not None else id(graphic)
        if group not in groups:
            groups[group] = []
            order.append(group)
        groups[group].append(graphic)
    chosen = [_best_graphic(groups[group]) for group in order]
    full = [g for g in chosen if not _is_thumbnail(g)]
    return [g.get(XLINK_HREF).strip() for g in (full or chosen)]


def _is_thumbnail(graphic: etree._Element) -> bool:
    kinds = {(graphic.get(a) or "").lower() for a in ("content-type", "specific-use")}
    return bool(kinds & THUMBNAIL_TYPES)


def _best_graphic(graphics: list[etree._Element]) -> etree._Element:
    """Among alternatives: not a thumbnail, not a ``.gif``, in document order."""
    return min(
        graphics,
        key=lambda g: (_is_thumbnail(g), (g.get(XLINK_HREF) or "").lower().endswith(".gif")),
    )


def article_license(root: etree._Element) -> str | None:
    """The article's licence from ``article-meta/permissions`` (not figure permissions), as a code."""
    licenses = root.findall("front/article-meta/permissions/license") or root.findall(".//front//license")
    for license_element in licenses:
        candidates = [license_element.get(XLINK_HREF)]
        candidates += [ref.text for ref in license_element.iter(ALI_LICENSE_REF)]
        candidates += [link.get(XLINK_HREF) for link in license_element.iter("ext-link")]
        candidates += [" ".join(license_element.itertext()), license_element.get("license-type")]
        for candidate in candidates:
            code = normalize_license(candidate)
            if code is not None:
                return code
    for ref in root.iterfind("front/article-meta/permissions/" + ALI_LICENSE_REF):
        code = normalize_license(ref.text)
        if code is not None:
            return code
    return "NO-CC CODE" if licenses else None


def article_language(root: etree._Element) -> str | None:
    """The article's ``xml:lang``, else the language detected on its title and abstract."""
    declared = normalize_language(root.get(XML_LANG))
    if declared:
        return declared
    parts = [" ".join(el.itertext()) for el in root.iterfind("front/article-meta/title-group/article-title")]
    parts += [" ".join(el.itertext()) for el in root.iterfind("front/article-meta/abstract")]
    detected = detect_language(" ".join(parts))
    return None if detected == "und" else detected
