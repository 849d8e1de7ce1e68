"""The text pipeline: deterministic, row-independent, equal on both encoding paths."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from features.text import (
    N_BUCKETS,
    NGRAM_SIZES,
    PROJECTION_SEED,
    char_stats,
    encode,
    hash_projection,
    join,
    normalize,
    text_signals,
)

_M64 = (1 << 64) - 1
TEXTS = np.array(
    ["Replica  BAG!!", "", None, "Crème brûlée\tKIT", "x", "100% effective cure"] * 20,
    dtype=object,
)


def _splitmix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _reference_projection(text: bytes, n_dims: int) -> np.ndarray:
    padded = b" " + text + b" "
    out = np.zeros(n_dims)
    count = 0
    for size in NGRAM_SIZES:
        for p in range(len(padded) - size + 1):
            h = 14695981039346656037
            for byte in padded[p : p + size]:
                h = ((h ^ byte) * 1099511628211) & _M64
            signs = _splitmix((h & (N_BUCKETS - 1)) ^ PROJECTION_SEED)
            out += [1.0 if (signs >> k) & 1 else -1.0 for k in range(n_dims)]
            count += 1
    return out / np.sqrt(count) if count else out


def test_projection_matches_pure_python_reference() -> None:
    data, offsets = normalize(encode(TEXTS[:6]))
    got = hash_projection((data, offsets), n_dims=8)
    for i in range(6):
        expected = _reference_projection(bytes(data[offsets[i] : offsets[i + 1]]), 8)
        np.testing.assert_allclose(got[i], expected, rtol=0, atol=1e-12)
    assert got[0].any()  # a non-empty text has a non-zero signal
    assert not got[1].any() and not got[2].any()  # empty and missing text: all zeros


def test_small_and_arrow_encodings_agree() -> None:
    small = encode(TEXTS[:6])
    big_data, big_offsets = encode(TEXTS)  # > 64 rows: through Arrow
    for i in range(6):
        assert bytes(big_data[big_offsets[i] : big_offsets[i + 1]]) == bytes(
            small[0][small[1][i] : small[1][i + 1]]
        )
    sliced = encode(pa.array(list(TEXTS[:10])).slice(3, 4))
    assert bytes(sliced[0][sliced[1][0] : sliced[1][1]]) == "Crème brûlée\tKIT".encode()


def test_one_row_equals_its_row_in_a_batch() -> None:
    batch = text_signals(encode(TEXTS), prefix="t", n_dims=4)
    for i in (0, 3, 5, 119):
        one = text_signals(encode(TEXTS[i : i + 1]), prefix="t", n_dims=4)
        for name, values in batch.items():
            assert one[name][0].tobytes() == values[i].tobytes(), name


def test_normalize_join_and_char_stats() -> None:
    text = join(encode(np.array(["  A  B ", "É"], dtype=object)), encode(np.array(["C!", None])))
    data, offsets = normalize(text)
    assert bytes(data[offsets[0] : offsets[1]]) == b"a b c!"
    assert bytes(data[offsets[1] : offsets[2]]).decode() == "É"  # only ASCII is lower-cased
    stats = char_stats(encode(np.array(["AbÉ!!", ""], dtype=object)))
    assert stats["chars"].tolist() == [5.0, 0.0]
    assert stats["upper"].tolist() == [1.0, 0.0]
    assert stats["letters"].tolist() == [2.0, 0.0]
    assert stats["marks"].tolist() == [2.0, 0.0]


def test_dims_are_bounded() -> None:
    with pytest.raises(ValueError, match="n_dims"):
        hash_projection(encode(TEXTS[:1]), n_dims=65)
