"""Licences: JATS licence URLs, codes and statements as short codes, the licence filters, and PMC's
``oa_file_list.csv``."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from .captions import _collapse

COMMERCIAL_LICENSES = frozenset({"CC0", "PD", "CC BY", "CC BY-SA", "CC BY-ND"})
NONCOMMERCIAL_LICENSES = COMMERCIAL_LICENSES | {"CC BY-NC", "CC BY-NC-SA", "CC BY-NC-ND"}
LICENSE_FILTERS: dict[str, frozenset[str] | None] = {
    "any": None,
    "commercial": COMMERCIAL_LICENSES,
    "noncommercial": NONCOMMERCIAL_LICENSES,
}
FILE_LIST_NAME = "oa_file_list.csv"

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
