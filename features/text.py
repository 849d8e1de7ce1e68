"""The text pipeline shared by listing titles, video captions, live titles and BYO text columns.

Text is normalised (`features.lexicon.normalize_text`), then turned into:
- policy lexicon hit counts per group;
- its length in characters;
- `n_dims` dense columns: character 3- and 4-grams of the UTF-8 bytes (text padded with one
  space each side) are hashed (FNV-1a, 2**20 buckets, like a `HashingVectorizer` with
  `alternate_sign=False, norm=None`), then projected by a fixed pseudo-random +-1 matrix derived
  from each bucket with splitmix64 (seed `PROJECTION_SEED`) and divided by sqrt(n-gram count).

Everything is deterministic and computed row by row, so one row gives the same floats alone
as inside a batch of a million.
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.lexicon import normalize_text, string_buffers, term_counts

#: Hash buckets before the projection (a power of two).
N_BUCKETS: Final = 2**20
#: Seed of the +-1 projection; changing it changes every text feature (bump the set versions).
PROJECTION_SEED: Final = 20_240_917
#: Character n-gram sizes hashed.
NGRAM_SIZES: Final = (3, 4)
#: Most projection columns one call can produce (bits of one splitmix64 word).
MAX_DIMS: Final = 64

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


@numba.njit(cache=True, nogil=True)
def _splitmix64(x: np.uint64) -> np.uint64:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _padded_byte(data: np.ndarray, start: int, end: int, p: int) -> np.uint64:
    # Position p of the text with one virtual space on each side: -1 and end-start are spaces.
    q = start + p
    if p < 0 or q >= end:
        return np.uint64(32)
    return np.uint64(data[q])


@numba.njit(cache=True, nogil=True)
def _project(
    data: np.ndarray, offsets: np.ndarray, n_dims: int, seed: np.uint64, sizes: np.ndarray
) -> np.ndarray:
    n_docs = offsets.shape[0] - 1
    out = np.zeros((n_docs, n_dims), dtype=np.float64)
    mask = np.uint64(N_BUCKETS - 1)
    one = np.uint64(1)
    for i in range(n_docs):
        start = offsets[i]
        end = offsets[i + 1]
        count = 0
        for size in sizes:
            for p in range(-1, end - start + 2 - size):
                h = _FNV_OFFSET
                for t in range(size):
                    h = (h ^ _padded_byte(data, start, end, p + t)) * _FNV_PRIME
                signs = _splitmix64((h & mask) ^ seed)
                for k in range(n_dims):
                    out[i, k] += 2.0 * np.float64((signs >> np.uint64(k)) & one) - 1.0
                count += 1
        if count > 0:
            scale = np.sqrt(np.float64(count))
            for k in range(n_dims):
                out[i, k] = out[i, k] / scale
    return out


def hash_projection(normalized: pa.Array | pa.ChunkedArray, *, n_dims: int) -> np.ndarray:
    """Dense (n_rows, n_dims) projection of hashed character n-grams of normalised text."""
    if not 1 <= n_dims <= MAX_DIMS:
        raise ValueError(f"n_dims must be between 1 and {MAX_DIMS}, got {n_dims}")
    if len(normalized) == 0:
        return np.zeros((0, n_dims), dtype=np.float64)
    data, offsets = string_buffers(normalized)
    return _project(
        data, offsets, n_dims, np.uint64(PROJECTION_SEED), np.array(NGRAM_SIZES, dtype=np.int64)
    )


def as_text_array(values: np.ndarray | list[object]) -> pa.Array:
    """An Arrow string array from an object array (None stays null)."""
    return pa.array(values, type=pa.string(), from_pandas=True)


def text_signals(
    values: np.ndarray | pa.Array | pa.ChunkedArray, *, prefix: str, n_dims: int
) -> dict[str, np.ndarray]:
    """Lexicon counts, length and hash projection of one text column, as float64 columns.

    Columns: `{prefix}_counterfeit_term_count`, `{prefix}_claim_term_count`,
    `{prefix}_prohibited_term_count`, `{prefix}_length`, `{prefix}_hash_0..n_dims-1`.
    """
    text = values if isinstance(values, pa.Array | pa.ChunkedArray) else as_text_array(values)
    normalized = normalize_text(text)
    out = {f"{prefix}_{group}_term_count": c for group, c in term_counts(normalized).items()}
    out[f"{prefix}_length"] = (
        pc.utf8_length(normalized).to_numpy(zero_copy_only=False).astype(np.float64)
    )
    projection = hash_projection(normalized, n_dims=n_dims)
    for k in range(n_dims):
        out[f"{prefix}_hash_{k}"] = np.ascontiguousarray(projection[:, k])
    return out
