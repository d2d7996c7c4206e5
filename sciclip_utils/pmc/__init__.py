"""PMC Open Access extraction: figure-caption pairs from JATS XML, legacy packages and 2026 folders.

Inputs are legacy OA packages (``PMCnnn.tar.gz`` holding ``PMCnnn/<name>.nxml`` and the media), 2026-layout
article folders (``PMCnnn.V/`` holding ``PMCnnn.V.xml`` and the media), bare ``.nxml``/``.xml`` files with
their media beside them, and folders of any of these. :mod:`.package` plans one work item per article and
reads its files and media; :mod:`.jats` parses the XML safely (figures, licence, language) with
:mod:`.captions`, :mod:`.licenses` and :mod:`.language`; :mod:`.article` is the per-article work,
:func:`process_article`. The entry point is :func:`sciclip_utils.extract.extract_pmc`.
"""

from .article import PLAN_NAME, SOURCE, Options, process_article
from .jats import parse_article
from .language import detect_language, normalize_language
from .licenses import FILE_LIST_NAME, LICENSE_FILTERS, normalize_license, read_file_list
from .package import IMAGE_EXTENSIONS, find_image, href_stem, index_media, open_article, plan_inputs

__all__ = [
    "FILE_LIST_NAME",
    "IMAGE_EXTENSIONS",
    "LICENSE_FILTERS",
    "PLAN_NAME",
    "SOURCE",
    "Options",
    "detect_language",
    "find_image",
    "href_stem",
    "index_media",
    "normalize_language",
    "normalize_license",
    "open_article",
    "parse_article",
    "plan_inputs",
    "process_article",
    "read_file_list",
]
