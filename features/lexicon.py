"""The policy lexicon: phrases that signal a policy in listing, video and live text.

Matching runs on normalised text (`features.text.normalize`: ASCII lower-case, whitespace runs
collapsed) and on whole words: a phrase must not touch an ASCII letter, digit or underscore on
either side, an optional plural `s` is allowed and hits do not overlap. So `cure` matches
"Cures acne" but not "secure" or "manicure". That is exactly what the RE2 pattern
`group_pattern(group)` counts; the byte kernel below does the same much faster (a test checks
they agree).
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType
from typing import Final

import numba
import numpy as np

from features.vocabulary import Policy

#: Lexicon group -> phrases. Fake discounts are price based and have no lexicon.
LEXICON: Final = MappingProxyType(
    {
        "counterfeit": (
            "replica",
            "1:1",
            "aaa",
            "mirror quality",
            "inspired by",
            "dupe",
            "unbranded original",
            "factory direct luxury",
        ),
        "claim": (
            "cure",
            "miracle",
            "guaranteed results",
            "100% effective",
            "lose 10kg",
            "doctor approved",
            "clinically proven",
            "anti-aging instantly",
        ),
        "prohibited": (
            "nicotine",
            "vape juice",
            "pepper spray",
            "prescription",
            "steroid",
            "knuckle",
        ),
    }
)

#: The policy each lexicon group is evidence for.
GROUP_POLICY: Final = MappingProxyType(
    {
        "counterfeit": Policy.COUNTERFEIT,
        "claim": Policy.MISLEADING_CLAIM,
        "prohibited": Policy.PROHIBITED_ITEM,
    }
)

_REGEX_SPECIAL = set(r".^$*+?()[]{}|\-")


def _escape(term: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in term)


def group_pattern(group: str) -> str:
    """The RE2 pattern whose non-overlapping matches `term_counts` counts for one group."""
    terms = sorted(LEXICON[group], key=len, reverse=True)
    return rf"\b(?:{'|'.join(_escape(t) for t in terms)})s?\b"


@numba.njit(cache=True, nogil=True)
def _is_word(b: np.uint8) -> bool:
    return bool((97 <= b <= 122) or (65 <= b <= 90) or (48 <= b <= 57) or b == 95)


@numba.njit(cache=True, nogil=True)
def _count_terms(
    data: np.ndarray,
    offsets: np.ndarray,
    term_bytes: np.ndarray,
    term_offsets: np.ndarray,
    group_offsets: np.ndarray,
    first_bytes: np.ndarray,
) -> np.ndarray:
    # One pass per text: only word starts whose byte begins some phrase are tried; each group
    # keeps its own "next free position" so its hits never overlap.
    n_docs = offsets.shape[0] - 1
    n_groups = group_offsets.shape[0] - 1
    out = np.zeros((n_docs, n_groups), dtype=np.float64)
    next_free = np.zeros(n_groups, dtype=np.int64)
    for i in range(n_docs):
        start = offsets[i]
        end = offsets[i + 1]
        next_free[:] = start
        for j in range(start, end):
            groups = first_bytes[data[j]]
            if groups == 0 or (j > start and _is_word(data[j - 1])):
                continue
            for g in range(n_groups):
                if (groups >> g) & 1 == 0 or j < next_free[g]:
                    continue
                for t in range(group_offsets[g], group_offsets[g + 1]):
                    t0 = term_offsets[t]
                    length = term_offsets[t + 1] - t0
                    if j + length > end:
                        continue
                    same = True
                    for k in range(length):
                        if data[j + k] != term_bytes[t0 + k]:
                            same = False
                            break
                    if not same:
                        continue
                    k = j + length
                    if k < end and data[k] == 115 and (k + 1 == end or not _is_word(data[k + 1])):
                        out[i, g] += 1.0
                        next_free[g] = k + 1
                        break
                    if k == end or not _is_word(data[k]):
                        out[i, g] += 1.0
                        next_free[g] = k
                        break
    return out


@cache
def _term_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    term_bytes: list[bytes] = []
    group_offsets = [0]
    first_bytes = np.zeros(256, dtype=np.int64)
    for g, terms in enumerate(LEXICON.values()):
        encoded = [t.encode() for t in sorted(terms, key=len, reverse=True)]
        term_bytes.extend(encoded)
        group_offsets.append(len(term_bytes))
        for term in encoded:
            first_bytes[term[0]] |= 1 << g
    lengths = np.array([len(b) for b in term_bytes], dtype=np.int64)
    term_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.frombuffer(b"".join(term_bytes), dtype=np.uint8)
    return flat, term_offsets, np.array(group_offsets, dtype=np.int64), first_bytes


def term_counts(data: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """Lexicon hits per group (float64) in normalised UTF-8 text given as (bytes, offsets)."""
    counts = _count_terms(data, offsets, *_term_table())
    return {group: np.ascontiguousarray(counts[:, g]) for g, group in enumerate(LEXICON)}
