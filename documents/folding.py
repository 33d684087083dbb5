"""Vietnamese text as the search sees it: no diacritics, "đ" as "d", lower case.

People type "nga son" for "Nga Sơn" (and the other way round), so the indexed
text and the query are both folded the same way before the database's full-text
search sees them. Neither SQLite's `unicode61 remove_diacritics` nor PostgreSQL's
`unaccent` alone would do: "đ" (U+0111) has no decomposition, and a diacritic-less
query must find the accented text on both engines alike.

Snippets are cut from the original text (with its diacritics): `term_pattern`
matches a folded term against the original letters."""

from __future__ import annotations

import functools
import re
import unicodedata

# How many words of a query count, and how long one may be.
MAX_TERMS = 8
MAX_TERM_CHARS = 64
_WORD = re.compile(r"[^\W_]+")
# Letters of the Latin blocks (with Vietnamese's Latin Extended Additional): every
# letter a Vietnamese text uses, for the reverse of the folding.
_LATIN_RANGES = ((0x20, 0x24F), (0x1E00, 0x1EFF))


def _fold_char(ch: str) -> str:
    bare = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    # Composed again: what NFD split without marks (a Hangul syllable) stays one letter.
    return unicodedata.normalize("NFC", bare).replace("đ", "d").replace("Đ", "D").lower()


class _FoldTable(dict[int, str]):
    """`str.translate`'s table, filled on demand (a character is folded once)."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        self[code] = folded
        return folded


_TABLE = _FoldTable()


def fold(text: str) -> str:
    """`text` without diacritics, "đ"/"Đ" as "d", in lower case: "Nga Sơn" → "nga son"."""
    return unicodedata.normalize("NFC", text).translate(_TABLE)


def terms(query: str) -> list[str]:
    """The words of a search query, folded, deduplicated, at most MAX_TERMS of them."""
    found: list[str] = []
    for word in _WORD.findall(fold(query)):
        word = word[:MAX_TERM_CHARS]
        if word not in found:
            found.append(word)
        if len(found) == MAX_TERMS:
            break
    return found


@functools.cache
def _variants() -> dict[str, str]:
    """For each folded letter, every Latin letter that folds to it ("a" → "aàáảãạăằ…")."""
    variants: dict[str, set[str]] = {}
    for low, high in _LATIN_RANGES:
        for code in range(low, high + 1):
            ch = chr(code)
            folded = _fold_char(ch)
            if len(folded) == 1:
                variants.setdefault(folded, set()).add(ch)
    return {key: "".join(sorted(chars)) for key, chars in variants.items()}


def term_pattern(term: str) -> str:
    """A regular expression matching the start of a word whose folding starts with `term`
    ("son" matches "Sơn", "SƠN" and "son"), in NFC text."""
    variants = _variants()
    parts = []
    for ch in term:
        chars = variants.get(ch)
        parts.append(f"[{re.escape(chars)}]" if chars else re.escape(ch))
    return r"(?<![^\W_])" + "".join(parts)
