"""Caption language detection from stop words (no dependencies)."""

from __future__ import annotations

import re
from collections import Counter
from itertools import chain, repeat

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
    fallback = normalize_language(hint) or "und"
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


def normalize_language(code: str | None) -> str | None:
    if not code:
        return None
    primary = code.strip().lower().replace("_", "-").split("-")[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None
