"""PMC Open Access extraction: figure-caption pairs from JATS XML, legacy packages and 2026 folders.

Inputs are legacy OA packages (``PMCnnn.tar.gz`` holding ``PMCnnn/<name>.nxml`` and the media), 2026-layout
article folders (``PMCnnn.V/`` holding ``PMCnnn.V.xml`` and the media), bare ``.nxml``/``.xml`` files with
their media beside them, and folders of any of these. One work item per article; when several versions of
an article are given, only the highest is extracted (a legacy package counts as version 0).

The XML is parsed without DTDs, network access or entity expansion. Every ``<fig>`` is a figure, wherever
it sits (body, ``floats-group``, ``fig-group`` supplements, ``sub-article``, ``app``, ``boxed-text``); its
image is the ``xlink:href`` of its ``<graphic>`` (not one inside a formula or the caption), mapped to a
file by exact stem with extension probing (full images before ``.gif`` thumbnails; never by prefix).
Per-article work only (the item contract of :mod:`sciclip_utils.extract.items`); distribution, manifest
and resume are :func:`sciclip_utils.extract.runner.run_extraction`'s, the entry point
:func:`sciclip_utils.extract.extract_pmc`.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path, PurePosixPath
from typing import Any

from lxml import etree

from sciclip_utils.archives import (
    MAX_MEMBER_BYTES,
    ArchiveError,
    read_file_capped,
    read_package,
    read_regular_file,
)
from sciclip_utils.extract.items import ExtractionError, ItemResult, WorkItem
from sciclip_utils.latex import drop_invisible, tex_math_to_text

SOURCE = "pmc"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
ALI_LICENSE_REF = "{*}license_ref"  # NISO ALI; the namespace is spelt with and without a final slash

# File extensions probed for a graphic, best first: PMC ships a full image plus a ``.gif`` thumbnail.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".pdf", ".eps", ".ps", ".gif")
_STRIPPABLE_EXTENSIONS = {*IMAGE_EXTENSIONS, ".svg"}
THUMBNAIL_TYPES = {"thumb", "thumbnail"}

COMMERCIAL_LICENSES = frozenset({"CC0", "PD", "CC BY", "CC BY-SA", "CC BY-ND"})
NONCOMMERCIAL_LICENSES = COMMERCIAL_LICENSES | {"CC BY-NC", "CC BY-NC-SA", "CC BY-NC-ND"}
LICENSE_FILTERS: dict[str, frozenset[str] | None] = {
    "any": None,
    "commercial": COMMERCIAL_LICENSES,
    "noncommercial": NONCOMMERCIAL_LICENSES,
}
FILE_LIST_NAME = "oa_file_list.csv"
PLAN_NAME = "pmc_plan.json"

_PMC_NAME = re.compile(r"^(PMC\d+)(?:\.(\d+))?$", re.IGNORECASE)
_PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_XML_SUFFIXES = (".nxml", ".xml")
_PMC_ID_IN_XML = re.compile(rb'<article-id[^>]*pub-id-type="pmc(?:id)?"[^>]*>\s*(?:PMC)?(\d+)\s*<')


# --------------------------------------------------------------------------------------------- XML parsing
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


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


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


# ----------------------------------------------------------------------------------------------- captions
_BLOCK_TAGS = {
    "p", "title", "list", "list-item", "disp-formula", "disp-formula-group", "disp-quote", "def-list",
    "def-item", "term", "def", "break", "sec", "statement", "table-wrap", "fn", "attrib", "preformat",
    "chem-struct-wrap", "tr", "td", "th", "verse-line",
}  # fmt: skip
_DROPPED_TAGS = {
    "supplementary-material", "object-id", "media", "graphic", "inline-graphic", "permissions",
    "annotation", "annotation-xml",
}  # fmt: skip
_DROPPED = "\x02"
_GAP_BEFORE_PUNCTUATION = re.compile(r"\s*\x02\s*(?=[.,;:!?)\]])")
_DOI_PARAGRAPH = re.compile(r"^DOI:?\s*(?:https?://\S+|10\.\S+)$", re.IGNORECASE)


def caption_text(caption: etree._Element) -> str:
    """Readable caption text: title and paragraphs joined by single spaces, formulas as text.

    Nested ``supplementary-material``, ``object-id``, ``media``, graphics and labels (except list-item
    labels) are left out, as are eLife's ``DOI: http://dx.doi.org/...`` paragraphs and invisible format
    characters (zero-width no-break space, MathML's invisible times...); whitespace collapsed,
    and the space left before punctuation where an element was dropped removed (``graphic <g/>.``).
    """
    text = drop_invisible("".join(_render(child) for child in caption))
    return _collapse(_GAP_BEFORE_PUNCTUATION.sub("", text).replace(_DROPPED, ""))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _render(element: etree._Element) -> str:
    """Text of ``element`` and its tail (tails always survive a dropped element)."""
    tail = element.tail or ""
    if not isinstance(element.tag, str):  # comments, processing instructions, unexpanded entities
        return tail
    name = _local(element)
    if name in _DROPPED_TAGS or (name == "label" and _local(element.getparent()) != "list-item"):
        return _DROPPED + tail
    if element.tag == f"{{{MATHML_NS}}}math" or name == "math":
        return (
            f" {mathml_text(element)} {tail}"
            if element.get("display") == "block"
            else (mathml_text(element) + tail)
        )
    if name == "tex-math":
        return tex_math_to_text(element.text or "") + tail
    if name == "alternatives":
        return _render_alternatives(element) + tail
    inner = (element.text or "") + "".join(_render(child) for child in element)
    if name in _BLOCK_TAGS:
        if name == "p" and _DOI_PARAGRAPH.match(_collapse(inner)):
            return " " + tail
        return f" {inner} {tail}"
    return inner + tail


def _render_alternatives(element: etree._Element) -> str:
    """One representation of a formula: MathML, else TeX, else nothing (images are not text)."""
    children = [child for child in element if isinstance(child.tag, str)]
    for wanted in ("math", "tex-math"):
        for child in children:
            if _local(child) == wanted:
                return mathml_text(child) if wanted == "math" else tex_math_to_text(child.text or "")
    return ""


_SPACED_OPERATORS = set("=≠<>≤≥≈∼≃≅≡∝→←↔⇒⇐⇔±∓×÷∈∉⊂⊆") | {"~", "<=", ">=", "≪", "≫"}


def mathml_text(element: etree._Element) -> str:
    """MathML as plain text: token contents in order, relations spaced, fences and fractions kept."""
    return _collapse(_mathml(element))


def _mathml(element: etree._Element) -> str:
    name = _local(element)
    children = [child for child in element if isinstance(child.tag, str)]
    if name in {"annotation", "annotation-xml", "none", "mprescripts"}:
        return ""
    if name in {"mi", "mn", "mtext", "ms"}:
        return "".join(element.itertext()).strip()
    if name == "mo":
        operator = "".join(element.itertext()).strip()
        return f" {operator} " if operator in _SPACED_OPERATORS else operator
    if name == "mspace":
        return " "
    if name == "semantics":
        return _mathml(children[0]) if children else ""
    if name == "mfenced":
        separator = (element.get("separators") or ",").strip()[:1]
        inner = separator.join(_mathml(child) for child in children)
        return f"{element.get('open', '(')}{inner}{element.get('close', ')')}"
    if name == "mfrac" and len(children) == 2:
        return f"{_mathml(children[0])}/{_mathml(children[1])}"
    if name in {"msqrt", "mroot"} and children:
        return "√" + _mathml(children[0]) if name == "mroot" else "√" + "".join(map(_mathml, children))
    return "".join(_mathml(child) for child in children)


# ----------------------------------------------------------------------------------------------- licences
_CC_URL = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)", re.IGNORECASE)
_CC_CODE = re.compile(r"^cc[\s_-]*(0|zero|by(?:[\s_-]*(?:nc|sa|nd))*)$", re.IGNORECASE)


def normalize_license(value: str | None) -> str | None:
    """A licence URL, code, ``license-type`` or statement as a short code (``CC BY-NC``, ``CC0``, ``PD``...).

    ``NO-CC CODE`` (PMC's term for a non-Creative-Commons licence) is kept; None when nothing is recognised.
    """
    if not value or not value.strip():
        return None
    text = _collapse(value)
    low = text.lower()
    if low in {"no-cc code", "no cc code"}:
        return "NO-CC CODE"
    if low in {"public-domain", "public domain", "pd", "pdm"}:
        return "PD"
    url = _CC_URL.search(text)
    if url:
        kind, name = url.group(1).lower(), url.group(2).lower()
        if kind == "publicdomain":
            return "CC0" if name == "zero" else "PD"
        return _cc_code(name.split("-"))
    code = _CC_CODE.match(low)
    if code:
        parts = re.split(r"[\s_-]+", code.group(1))
        return "CC0" if parts[0] in {"0", "zero"} else _cc_code(parts)
    return _license_from_statement(low)


def _cc_code(parts: Iterable[str]) -> str | None:
    parts = [p for p in parts if p]
    if not parts or parts[0] != "by" or not set(parts) <= {"by", "nc", "sa", "nd"}:
        return None
    order = [p for p in ("nc", "sa", "nd") if p in parts]
    return "CC BY" + ("-" + "-".join(p.upper() for p in order) if order else "")


def _license_from_statement(low: str) -> str | None:
    """Licences named in prose: "Creative Commons Attribution Non-Commercial License" -> ``CC BY-NC``."""
    if re.search(r"\bcc0\b|creative commons zero|public domain dedication", low):
        return "CC0"
    if "creative commons" not in low or "attribution" not in low:
        return None
    parts = ["by"]
    if re.search(r"non[\s-]?commercial", low):
        parts.append("nc")
    if re.search(r"share[\s-]?alike", low):
        parts.append("sa")
    if re.search(r"no[\s-]?deriv", low):
        parts.append("nd")
    return _cc_code(parts)


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


def read_file_list(path: str | Path, paper_ids: Iterable[str] | None = None) -> dict[str, str]:
    """``oa_file_list.csv`` (File, Article Citation, Accession ID, Last Updated, PMID, License) as id -> code."""
    wanted = set(paper_ids) if paper_ids is not None else None
    licenses: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        if "license" not in columns or not ({"accession id", "file"} & set(columns)):
            raise ValueError(
                f"{path}: not an oa_file_list.csv (need 'Accession ID' or 'File', and 'License')"
            )
        for row in reader:
            accession = (row.get(columns.get("accession id", ""), "") or "").strip()
            if not accession:
                found = re.search(r"PMC\d+", row.get(columns.get("file", ""), "") or "")
                accession = found.group(0) if found else ""
            code = normalize_license(row.get(columns["license"]))
            if accession and code and (wanted is None or accession in wanted):
                licenses[accession] = code
    return licenses


# ------------------------------------------------------------------------------------------------ language
_STOPWORDS = {
    "en": "the of and in to a is for with on by at from as are was were be been that this these which or an "
    "it its not than between after before during using we our into each both all two three per shown "
    "indicate indicates represent represents show shows data mean values",
    "de": "der die das und ist nicht mit von zu den dem des ein eine einer eines im auf für sich bei aus nach "
    "wird werden oder auch wurden als wie zur zum sind über unter",
    "fr": "le la les et des du un une est dans pour par sur avec au aux ce cette qui que ne pas sont ou été "
    "entre plus",
    "es": "el la los las y de del en un una es por para con que se al como sobre entre fue son lo su sus",
    "pt": "o a os as e de do da dos das em um uma é para com por que no na nos nas ao se foi entre",
    "it": "il lo la gli le e di del della dei delle in un una è per con che da dal nella sono tra",
    "nl": "de het een en van in is op met voor dat die zijn niet aan bij om door ook",
}
_WORD_LANGUAGES: dict[str, tuple[str, ...]] = {}
for _language, _words in _STOPWORDS.items():
    for _word in _words.split():
        _WORD_LANGUAGES[_word] = (*_WORD_LANGUAGES.get(_word, ()), _language)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NON_LATIN_LETTER = re.compile(r"[^\W\d_A-Za-z\u00C0-\u024F]")
MIN_WORDS = 4
MIN_STOPWORD_RATIO = 0.08


def detect_language(text: str, hint: str | None = None) -> str:
    """ISO 639-1 code of ``text``, from the share of each language's stop words (no dependencies).

    Words are lower-cased letter runs; the language (en, de, fr, es, pt, it, nl) whose stop words make up
    the largest share of them wins if that share is at least 8% (English captions score 20-45%). Texts
    with fewer than four words, no clear winner, or mostly non-Latin letters return ``hint`` (e.g. the
    article's ``xml:lang``) or ``"und"`` (undetermined); a hint also breaks ties.
    """
    fallback = _normalize_language(hint) or "und"
    words = _WORD.findall(text.lower())
    if 2 * len(_NON_LATIN_LETTER.findall(text)) > sum(map(len, words)):  # mostly non-Latin letters
        return "und" if fallback == "en" else fallback
    if len(words) < MIN_WORDS:
        return fallback
    hits = Counter(chain.from_iterable(map(_WORD_LANGUAGES.get, words, repeat(()))))
    if not hits:
        return fallback
    best = max(hits, key=lambda lang: (hits[lang], lang == fallback))
    return best if hits[best] / len(words) >= MIN_STOPWORD_RATIO else fallback


def _normalize_language(code: str | None) -> str | None:
    if not code:
        return None
    primary = code.strip().lower().replace("_", "-").split("-")[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


def article_language(root: etree._Element) -> str | None:
    """The article's ``xml:lang``, else the language detected on its title and abstract."""
    declared = _normalize_language(root.get(XML_LANG))
    if declared:
        return declared
    parts = [" ".join(el.itertext()) for el in root.iterfind("front/article-meta/title-group/article-title")]
    parts += [" ".join(el.itertext()) for el in root.iterfind("front/article-meta/abstract")]
    detected = detect_language(" ".join(parts))
    return None if detected == "und" else detected


# ---------------------------------------------------------------------------------------------- media files
def href_stem(href: str) -> str:
    """The file stem a graphic href names: its last path part without a known image extension.

    Only image extensions are stripped: ``pnas.2314795121fig01`` keeps its dots; ``fig-1.png`` -> ``fig-1``.
    """
    name = PurePosixPath(href.split("?")[0].split("#")[0].replace("\\", "/")).name
    suffix = PurePosixPath(name).suffix.lower()
    return name[: -len(suffix)] if suffix in _STRIPPABLE_EXTENSIONS else name


@dataclass(frozen=True)
class MediaIndex:
    """Image files by exact stem and by lower-cased stem, each list best first."""

    exact: dict[str, list[str]]
    folded: dict[str, list[str]]


def index_media(names: Iterable[str], prefer_dir: str = ".") -> MediaIndex:
    """Index image files by stem, best first: full images before ``.gif`` thumbnails, then files in
    ``prefer_dir`` (the XML's folder) before files elsewhere."""
    index = MediaIndex({}, {})
    for name in names:
        path = PurePosixPath(name)
        suffix = path.suffix.lower()
        if suffix not in IMAGE_EXTENSIONS or path.name.startswith("._"):
            continue
        stem = path.name[: -len(suffix)]
        index.exact.setdefault(stem, []).append(name)
        index.folded.setdefault(stem.lower(), []).append(name)

    def rank(name: str) -> tuple[int, bool, str]:
        path = PurePosixPath(name)
        return IMAGE_EXTENSIONS.index(path.suffix.lower()), str(path.parent) != prefer_dir, name

    for files in (*index.exact.values(), *index.folded.values()):
        files.sort(key=rank)
    return index


def find_image(href: str, index: MediaIndex) -> str | None:
    """The file for a graphic href: exact stem first, then the same stem case-insensitively; no prefixes."""
    stem = href_stem(href)
    found = index.exact.get(stem) or index.folded.get(stem.lower())
    return found[0] if found else None


# ------------------------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class _Candidate:
    path: Path
    paper_id: str
    version: int  # 0 for unversioned names (legacy packages)


@dataclass
class Plan:
    """The work items, the items to skip (older versions, duplicates) with reasons, and the file lists."""

    items: list[WorkItem] = field(default_factory=list)
    skips: dict[str, str] = field(default_factory=dict)
    file_lists: list[Path] = field(default_factory=list)


def _name_id(name: str) -> tuple[str | None, int]:
    """``PMC123.2.xml`` -> ("PMC123", 2); ``PMC123.tar.gz`` -> ("PMC123", 0); other names -> (None, 0)."""
    match = _PMC_NAME.match(_strip_suffix(name))
    if not match:
        return None, 0
    return "PMC" + match.group(1)[3:], int(match.group(2) or 0)


def _is_article_xml_name(name: str) -> bool:
    return name.lower().endswith(".xml") and _name_id(name)[0] is not None


def _regular_files(folder: Path) -> list[os.DirEntry]:
    """Regular files directly in ``folder`` (symlinks never followed), sorted by name."""
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if e.is_file(follow_symlinks=False)), key=lambda e: e.name)


def _article_folder_id(folder: Path) -> tuple[str, int] | None:
    """(paper id, version) if ``folder`` is one article (2026 layout or an unpacked legacy package)."""
    files = _regular_files(folder)
    folder_id, folder_version = _name_id(folder.name)
    if folder_id and any(e.name.lower().endswith(_XML_SUFFIXES) for e in files):
        return folder_id, folder_version
    for entry in files:
        xml_id, xml_version = _name_id(entry.name)
        if xml_id and xml_version > 0 and entry.name.lower().endswith(".xml"):
            return xml_id, xml_version
    return None


def _bare_xml_id(path: Path) -> str:
    paper_id, _ = _name_id(path.name)
    if paper_id:
        return paper_id
    with open(path, "rb") as handle:
        found = _PMC_ID_IN_XML.search(handle.read(256 * 1024))
    return f"PMC{found.group(1).decode()}" if found else path.name.rsplit(".", 1)[0]


def _discover(path: Path, found: list[_Candidate], file_lists: list[Path], explicit: bool) -> None:
    if path.is_dir():
        article = _article_folder_id(path)
        if article is not None:
            found.append(_Candidate(path, *article))
            return
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:  # symlinks are never followed
            if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
                _discover(Path(entry.path), found, file_lists, explicit=False)
        return
    low = path.name.lower()
    if low == FILE_LIST_NAME:
        file_lists.append(path)
    elif low.endswith(_PACKAGE_SUFFIXES):
        paper_id, version = _name_id(path.name)
        found.append(_Candidate(path, paper_id or _strip_suffix(path.name), version))
    elif low.endswith(".nxml") or (low.endswith(".xml") and (explicit or _is_article_xml_name(path.name))):
        found.append(_Candidate(path, _bare_xml_id(path), _name_id(path.name)[1]))
    elif explicit:
        raise ValueError(
            f"not a PMC input: {path} (expected a .tar.gz/.tgz/.tar package, an .nxml/.xml file or a folder;"
            f" pass {FILE_LIST_NAME} with --file-list)"
        )


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suffix in (*_PACKAGE_SUFFIXES, *_XML_SUFFIXES):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan_inputs(inputs: Sequence[str | Path]) -> Plan:
    """Find every article under ``inputs``; keep the highest version of each, skip the rest with a reason."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise ValueError("no inputs given")
    found: list[_Candidate] = []
    plan = Plan()
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        _discover(path, found, plan.file_lists, explicit=True)
    if not found:
        raise ValueError(f"no PMC articles found in {', '.join(map(str, inputs))}")
    unique = sorted({c.path.resolve(): c for c in found}.values(), key=lambda c: str(c.path))
    by_paper: dict[str, list[_Candidate]] = {}
    for candidate in unique:
        by_paper.setdefault(candidate.paper_id, []).append(candidate)
    used_keys: set[str] = set()
    for paper_id in sorted(by_paper):
        group = by_paper[paper_id]
        best = max(group, key=lambda c: c.version)  # first of the highest version (paths sorted)
        best_name = paper_id + (f".{best.version}" if best.version else "")
        for candidate in [best, *(c for c in group if c is not best)]:
            key = paper_id + (f".{candidate.version}" if candidate.version else "")
            base, n = key, 1
            while key in used_keys:
                n += 1
                key = f"{base}~{n}"
            used_keys.add(key)
            plan.items.append(WorkItem(key=key, input=str(candidate.path), paper_id=paper_id))
            if candidate is not best:
                plan.skips[key] = (
                    f"superseded by {best_name}"
                    if candidate.version < best.version
                    else f"duplicate of {best.path}"
                )
    plan.file_lists = sorted(set(plan.file_lists))
    return plan


# ------------------------------------------------------------------------------------------------ per item
@dataclass(frozen=True)
class Options:
    """What a worker needs besides the item: filters and where the run's plan file is."""

    plan_file: str | None = None
    allowed_licenses: frozenset[str] | None = None
    license_filter: str = "any"
    language: str | None = None


@functools.lru_cache(maxsize=4)
def _load_plan(path: str, mtime_ns: int) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _plan(options: Options) -> dict[str, Any]:
    if options.plan_file is None:
        return {"licenses": {}, "skips": {}}
    return _load_plan(options.plan_file, os.stat(options.plan_file).st_mtime_ns)


@dataclass
class ArticleFiles:
    """The files of one article: names, and bytes on demand (folders are read lazily, packages in full)."""

    names: list[str]
    read: Callable[[str], bytes]
    problems: list[str]


def open_article(item: WorkItem) -> tuple[ArticleFiles, str]:
    """The article's files and the name of its XML file."""
    path = Path(item.input)
    if path.is_dir():
        files = _folder_files(path)
    elif path.name.lower().endswith(_XML_SUFFIXES):
        files = _folder_files(path.parent)
        return files, path.name
    else:
        try:
            package = read_package(read_file_capped(path), path.name)
        except ArchiveError as exc:
            raise ExtractionError("package", str(exc)) from exc
        problems = [f"package: skipped {name}: {reason}" for name, reason in package.skipped]
        files = ArticleFiles(sorted(package.files), package.files.__getitem__, problems)
    return files, _choose_xml(files.names, item.paper_id)


def _folder_files(folder: Path) -> ArticleFiles:
    """Regular files directly in ``folder``, read on demand by :func:`read_regular_file` (no symlinks,
    FIFOs or devices; the archive member size cap)."""

    def read(name: str) -> bytes:
        try:
            return read_regular_file(folder / name, MAX_MEMBER_BYTES)
        except ArchiveError as exc:
            raise ArchiveError(f"{name}: {exc}") from exc

    return ArticleFiles([entry.name for entry in _regular_files(folder)], read, [])


def _choose_xml(names: list[str], paper_id: str) -> str:
    """The article XML: ``.nxml`` before ``.xml``, a name carrying the PMC id first, then the shallowest."""
    candidates = [n for n in names if n.lower().endswith(".nxml")] or [
        n for n in names if n.lower().endswith(".xml") and not PurePosixPath(n).name.startswith("._")
    ]
    if not candidates:
        raise ExtractionError("package", "no .nxml or .xml article file")
    return min(candidates, key=lambda n: (_name_id(PurePosixPath(n).name)[0] != paper_id, n.count("/"), n))


def process_article(item: WorkItem, options: Options) -> ItemResult:
    """Extract one article's pairs (images prepared here, on the worker)."""
    from sciclip_utils.commonpool import Record
    from sciclip_utils.images import MAX_SIDE, ImageError, composite, load_image, prepare_image

    plan = _plan(options)
    listed = plan["licenses"].get(item.paper_id)
    if item.key in plan["skips"]:
        extra = {"license": listed, "license_source": "file_list" if listed else None}
        return ItemResult([], status="skipped", stage="input", reason=plan["skips"][item.key], extra=extra)
    files, xml_name = open_article(item)
    try:
        xml = files.read(xml_name)
    except ArchiveError as exc:
        raise ExtractionError("package", str(exc)) from exc
    article = parse_article(xml)
    license_code = listed or article.license
    extra = {
        "license": license_code,
        "license_source": "file_list" if listed else ("xml" if article.license else None),
        "language": article.language,
        "figures_filtered": 0,
    }
    result = ItemResult([], main_file=xml_name, figures_found=len(article.figures), extra=extra)
    result.problems.extend(files.problems)
    if not article.figures:
        return _finish(result, "skipped", "figures", "no <fig> elements in the article")
    if options.allowed_licenses is not None and license_code not in options.allowed_licenses:
        extra["figures_filtered"] = len(article.figures)
        reason = f"license {license_code or 'unknown'} not allowed by license={options.license_filter!r}"
        return _finish(result, "skipped", "filter", reason)
    index = index_media((n for n in files.names if n != xml_name), str(PurePosixPath(xml_name).parent))
    kinds: Counter[str] = Counter()
    for figure in article.figures:
        if figure.problem:
            kinds[figure.problem] += 1
            result.problems.append(f"{figure.figure_id}: {figure.problem}")
            continue
        language = detect_language(figure.caption, article.language)
        if options.language is not None and language != options.language:
            extra["figures_filtered"] += 1
            continue
        paths, missing = [], []
        for href in figure.hrefs:
            name = find_image(href, index)
            (paths if name else missing).append(name or href)
        if missing:
            absolute = all(re.match(r"^[a-z][a-z0-9+.-]*://", h, re.IGNORECASE) for h in missing)
            kind = "absolute URL href with no local file" if absolute else "image not found"
            kinds[kind] += 1
            result.problems.append(f"{figure.figure_id}: {kind}: {', '.join(missing)}")
            continue
        try:
            if len(paths) == 1:
                prepared = prepare_image(files.read(paths[0]), paths[0])
            else:
                panels = [load_image(files.read(p), p, max_side=MAX_SIDE) for p in paths]
                prepared = prepare_image(composite(panels))
        except (ImageError, ArchiveError) as exc:
            kinds["unreadable image"] += 1
            result.problems.append(f"{figure.figure_id}: unreadable image {', '.join(paths)}: {exc}")
            continue
        result.records.append(
            Record(
                image=prepared,
                text=figure.caption,
                source=SOURCE,
                paper_id=item.paper_id,
                figure_id=figure.figure_id,
                license=license_code,
                extra={"language": language},
            )
        )
    if result.records:
        return result
    if extra["figures_filtered"] and not kinds:
        reason = (
            f"no captions in language {options.language!r} ({extra['figures_filtered']} figures filtered)"
        )
        return _finish(result, "skipped", "filter", reason)
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    stage = "caption" if set(kinds) <= {"no caption text"} else "images"
    return _finish(result, "failed", stage, f"no pairs from {len(article.figures)} figures: {summary}")


def _finish(result: ItemResult, status: str, stage: str, reason: str) -> ItemResult:
    result.status, result.stage, result.reason = status, stage, reason
    return result
