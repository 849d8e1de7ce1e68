"""Lexicon counting: whole words, optional plural, no overlaps; the byte kernel equals RE2."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.lexicon import LEXICON, group_pattern, term_counts
from features.text import encode, normalize


def _counts(texts: list[str | None]) -> dict[str, np.ndarray]:
    return term_counts(*normalize(encode(np.array(texts, dtype=object))))


@pytest.mark.parametrize(
    ("text", "group", "expected"),
    [
        ("Replica AAA bag, 1:1 quality", "counterfeit", 3),
        ("AAAA batteries, replicated", "counterfeit", 0),
        ("Cures acne, a MIRACLE!", "claim", 2),
        ("secure manicure procure", "claim", 0),
        ("Lose  10kg\tfast, 100% effective", "claim", 2),
        ("steroids and knuckle-dusters", "prohibited", 2),
        ("vape juice, pepper sprays", "prohibited", 2),
        ("", "claim", 0),
        (None, "counterfeit", 0),
    ],
)
def test_examples(text: str | None, group: str, expected: int) -> None:
    assert _counts([text])[group][0] == expected


_fragments = st.sampled_from(
    [t for terms in LEXICON.values() for t in terms]
    + ["s", "x", "1", " ", "  ", "\t", ",", "-", "é", "A", "cure", "secure", "_"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_fragments, max_size=8).map("".join), min_size=1, max_size=5))
def test_kernel_equals_re2_pattern(texts: list[str]) -> None:
    data, offsets = normalize(encode(np.array(texts, dtype=object)))
    normalized = pa.array(
        [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(texts))]
    )
    counts = term_counts(data, offsets)
    for group in LEXICON:
        expected = pc.count_substring_regex(normalized, group_pattern(group)).to_numpy()
        np.testing.assert_array_equal(counts[group], expected.astype(float))
