"""The text pipeline shared by listing titles, video captions, live titles and BYO text columns.

Text is handled as UTF-8 bytes with row offsets, so the same numba kernels run on one request
row and on a million batch rows and give the same floats. Normalisation lower-cases ASCII
letters, collapses runs of ASCII whitespace to one space and trims (other characters are kept
as they are). A text column then becomes:
- policy lexicon hit counts per group (`features.lexicon`);
- its length in characters after normalisation;
- `n_dims` dense columns: character 3- and 4-grams of the normalised bytes (padded with one
  space each side) are hashed (FNV-1a into 2**20 buckets, like a `HashingVectorizer` with
  `alternate_sign=False, norm=None`), projected by a fixed pseudo-random +-1 matrix derived from
  each bucket with splitmix64 (seed `PROJECTION_SEED`), and divided by sqrt(n-gram count).
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.lexicon import term_counts

#: Hash buckets before the projection (a power of two).
N_BUCKETS: Final = 2**20
#: Seed of the +-1 projection; changing it changes every text feature (bump the set versions).
PROJECTION_SEED: Final = 20_240_917
#: Character n-gram sizes hashed.
NGRAM_SIZES: Final = (3, 4)
#: Most projection columns one call can produce (bits of one splitmix64 word).
MAX_DIMS: Final = 64
# Below this many rows, encoding in Python beats a round trip through Arrow.
_SMALL = 64

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)

TextBytes = tuple[np.ndarray, np.ndarray]


def encode(values: np.ndarray | pa.Array | pa.ChunkedArray) -> TextBytes:
    """(uint8 bytes, int64 offsets) of a text column; missing values read as empty text."""
    if isinstance(values, np.ndarray) and len(values) <= _SMALL:
        encoded = [v.encode() if isinstance(v, str) else b"" for v in values]
        bounds = [0]
        for chunk in encoded:
            bounds.append(bounds[-1] + len(chunk))
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return data, np.array(bounds, dtype=np.int64)
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else as_text_array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], pa.string())
    array = pc.fill_null(array, "").cast(pa.large_binary())
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    if data_buf is None:
        return np.zeros(0, np.uint8), np.zeros(len(array) + 1, dtype=np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def as_text_array(values: np.ndarray) -> pa.Array:
    """An Arrow string array from an object array (None stays null)."""
    return pa.array(values, type=pa.string(), from_pandas=True)


@numba.njit(cache=True, nogil=True)
def _is_space(b: np.uint8) -> bool:
    return bool(b == 32 or 9 <= b <= 13)


@numba.njit(cache=True, nogil=True)
def _normalize(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_docs = offsets.shape[0] - 1
    out = np.empty(data.shape[0], dtype=np.uint8)
    out_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    pos = 0
    for i in range(n_docs):
        pending_space = False
        wrote = False
        for j in range(offsets[i], offsets[i + 1]):
            b = data[j]
            if _is_space(b):
                pending_space = wrote
                continue
            if pending_space:
                out[pos] = 32
                pos += 1
                pending_space = False
            out[pos] = b + 32 if 65 <= b <= 90 else b
            pos += 1
            wrote = True
        out_offsets[i + 1] = pos
    return out[:pos], out_offsets


def normalize(text: TextBytes) -> TextBytes:
    """ASCII lower-case, whitespace runs collapsed to one space, trimmed."""
    return _normalize(*text)  # type: ignore[no-any-return]


@numba.njit(cache=True, nogil=True)
def _join(
    a: np.ndarray, a_offsets: np.ndarray, b: np.ndarray, b_offsets: np.ndarray, sep: np.uint8
) -> tuple[np.ndarray, np.ndarray]:
    n_docs = a_offsets.shape[0] - 1
    out = np.empty(a.shape[0] + b.shape[0] + n_docs, dtype=np.uint8)
    out_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    pos = 0
    for i in range(n_docs):
        for j in range(a_offsets[i], a_offsets[i + 1]):
            out[pos] = a[j]
            pos += 1
        out[pos] = sep
        pos += 1
        for j in range(b_offsets[i], b_offsets[i + 1]):
            out[pos] = b[j]
            pos += 1
        out_offsets[i + 1] = pos
    return out[:pos], out_offsets


def join(first: TextBytes, second: TextBytes) -> TextBytes:
    """Row-wise `first + " " + second`."""
    return _join(first[0], first[1], second[0], second[1], np.uint8(32))  # type: ignore[no-any-return]


# Byte classes for `_char_stats`: bit 0 starts a UTF-8 character, bit 1 ASCII upper-case,
# bit 2 ASCII letter, bit 3 not whitespace.
_BYTE_CLASS = np.array(
    [
        (b < 128 or b >= 192)
        | ((65 <= b <= 90) << 1)
        | ((65 <= b <= 90 or 97 <= b <= 122) << 2)
        | ((not (b == 32 or 9 <= b <= 13)) << 3)
        for b in range(256)
    ],
    dtype=np.int64,
)


@numba.njit(cache=True, nogil=True)
def _char_stats(
    data: np.ndarray, offsets: np.ndarray, mark: np.uint8, classes: np.ndarray
) -> np.ndarray:
    # Per row: characters, ASCII upper-case letters, ASCII letters, `mark` bytes, non-space bytes.
    n_docs = offsets.shape[0] - 1
    out = np.zeros((n_docs, 5), dtype=np.float64)
    for i in range(n_docs):
        chars = upper = letters = marks = visible = 0
        for j in range(offsets[i], offsets[i + 1]):
            b = data[j]
            c = classes[b]
            chars += c & 1
            upper += (c >> 1) & 1
            letters += (c >> 2) & 1
            visible += (c >> 3) & 1
            marks += b == mark
        out[i, 0] = chars
        out[i, 1] = upper
        out[i, 2] = letters
        out[i, 3] = marks
        out[i, 4] = visible
    return out


def char_stats(text: TextBytes, *, mark: str = "!") -> dict[str, np.ndarray]:
    """Per row: `chars`, `upper` and `letters` (ASCII), `marks` (count of `mark`), `visible`."""
    stats = _char_stats(text[0], text[1], np.uint8(ord(mark)), _BYTE_CLASS)
    names = ("chars", "upper", "letters", "marks", "visible")
    return {name: np.ascontiguousarray(stats[:, k]) for k, name in enumerate(names)}


@numba.njit(cache=True, nogil=True)
def _splitmix64(x: np.uint64) -> np.uint64:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _project(
    data: np.ndarray, offsets: np.ndarray, n_dims: int, seed: np.uint64, max_len: int
) -> np.ndarray:
    # 3- and 4-grams of each text padded with one space each side; a 4-gram's FNV hash extends
    # the 3-gram's starting at the same byte. Signs are counted as integers, so the result does
    # not depend on summation order.
    n_docs = offsets.shape[0] - 1
    out = np.zeros((n_docs, n_dims), dtype=np.float64)
    padded = np.empty(max_len + 2, dtype=np.uint64)
    positive = np.zeros(n_dims, dtype=np.int64)
    mask = np.uint64(N_BUCKETS - 1)
    one = np.uint64(1)
    for i in range(n_docs):
        start = offsets[i]
        length = offsets[i + 1] - start + 2
        padded[0] = 32
        for j in range(length - 2):
            padded[j + 1] = data[start + j]
        padded[length - 1] = 32
        positive[:] = 0
        count = 0
        for p in range(length - 2):
            h = _FNV_OFFSET
            for t in range(3):
                h = (h ^ padded[p + t]) * _FNV_PRIME
            signs = _splitmix64((h & mask) ^ seed)
            for k in range(n_dims):
                positive[k] += (signs >> np.uint64(k)) & one
            count += 1
            if p + 3 < length:
                h = (h ^ padded[p + 3]) * _FNV_PRIME
                signs = _splitmix64((h & mask) ^ seed)
                for k in range(n_dims):
                    positive[k] += (signs >> np.uint64(k)) & one
                count += 1
        if count > 0:
            scale = np.sqrt(np.float64(count))
            for k in range(n_dims):
                out[i, k] = (2.0 * positive[k] - count) / scale
    return out


def hash_projection(normalized: TextBytes, *, n_dims: int) -> np.ndarray:
    """Dense (n_rows, n_dims) projection of hashed character n-grams of normalised text."""
    if not 1 <= n_dims <= MAX_DIMS:
        raise ValueError(f"n_dims must be between 1 and {MAX_DIMS}, got {n_dims}")
    data, offsets = normalized
    max_len = int(np.max(np.diff(offsets))) if len(offsets) > 1 else 0
    return _project(data, offsets, n_dims, np.uint64(PROJECTION_SEED), max_len)  # type: ignore[no-any-return]


def text_signals(text: TextBytes, *, prefix: str, n_dims: int) -> dict[str, np.ndarray]:
    """Lexicon counts, normalised length and hash projection of one text column (float64).

    Columns: `{prefix}_counterfeit_term_count`, `{prefix}_claim_term_count`,
    `{prefix}_prohibited_term_count`, `{prefix}_text_length`, `{prefix}_text_hash_0..n_dims-1`.
    """
    normalized = normalize(text)
    out = {f"{prefix}_{group}_term_count": c for group, c in term_counts(*normalized).items()}
    out[f"{prefix}_text_length"] = char_stats(normalized)["chars"]
    projection = hash_projection(normalized, n_dims=n_dims)
    for k in range(n_dims):
        out[f"{prefix}_text_hash_{k}"] = np.ascontiguousarray(projection[:, k])
    return out
