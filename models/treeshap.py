r"""Exact path-dependent TreeSHAP for LightGBM models, compiled with numba.

The values are the ones `shap.TreeExplainer(booster)` and LightGBM's `pred_contrib=True` return
(raw margin space, cover = training row counts of the nodes), computed by a faster route.

**Paths and merged features.** As in the recursive TreeSHAP of Lundberg et al., the conditions a
root-to-leaf path puts on one feature are merged: feature j on the path of leaf l has a zero
fraction z_j (the product of the cover ratios of its edges) and, for a row x, a one fraction
o_j in {0, 1} (x meets all of its conditions). Leaf l (value v, d merged features) adds to i

    phi_i += v (o_i - z_i) sum_{S ⊆ P \ {i}} |S|! (d-|S|-1)! / d!  prod_{j in S} o_j
                                                                 prod_{j not in S, j != i} z_j.

**Quadrature.** |S|! (d-|S|-1)! / d! = ∫_0^1 t^|S| (1-t)^(d-1-|S|) dt (a Beta integral), so the
sum is ∫_0^1 prod_{j != i} g_j(t) dt with g_j(t) = z_j (1-t) + o_j t: a polynomial of degree
d - 1, integrated exactly by Gauss-Legendre quadrature with ceil(d/2) nodes t_q, weights w_q.
This is the observation behind Linear TreeSHAP (Yu et al. 2022), used here in sampled form.

**Edges.** Let U_c(t) = sum over leaves l below node c of v_l prod_j g_j(t). An edge e from node n
to child c splitting on f, with merged fractions (o_e, z_e) and, when f was already split on
higher up the path, previous ones (o_p, z_p), adds

    phi_f += sum_q w_q U_c(t_q) [(o_e - z_e) / g_e(t_q) - (o_p - z_p) / g_p(t_q)],

which telescopes so that every leaf ends up weighted by its final merged factor (same evaluation
points everywhere, so the intermediate rational terms cancel exactly). Per tree and row this is
one pass down (the path product: multiply by g_e / g_p) and one pass up (sum the children, add
the edge terms): O(nodes x ceil(D/2)) multiply-adds, D the largest number of merged features on
a path of the tree. The row decides, node by node in LightGBM's order (a parent precedes its
children), which case each edge is in, carrying down a bitmask of the merged features it still
satisfies: hot (o_p = o_e = 1) or cold (o_p = 1, o_e = 0) or, for a feature already failed
higher up, neither (ratio z_e / z_p, no contribution). On an edge that splits on its feature for
the first time on the path (most edges) the ratio is z (1 - t) + o t (times the leaf value when
the edge ends in a leaf), the cold coefficient is the tree-wide -w / (1 - t) and the hot one
w (1 - z) / (z (1 - t) + t) is computed on the fly; edges of repeated features use ratios and
coefficients tabulated when the model is parsed. Computing rather than tabulating costs one
vector division per node and keeps the working set of a 250-tree, 31-leaf model under 1 MB, so a
single-row call stays fast when other work has pushed the model out of the CPU caches. Batches
run tree by tree over blocks of rows. Quadrature node counts are padded to a multiple of 4 (more
nodes stay exact) so the inner loops run on 4-lane vectors.

**Top k.** Every feature's value sums terms from all of the trees, and all passes are shared by
all features, so no exact shortcut computes fewer than all of them; `top_k` selects from the
full vector (O(features x k) per row), exact by construction.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from models import _treeshap_kernels as _kernels

_MAX_PATH_FEATURES = 62
_CATEGORICAL = 1
_MISSING_NONE = 0
_MISSING_ZERO = 1
_MISSING_NAN = 2


class ModelFormatError(ValueError):
    """The LightGBM model text cannot be explained by this module; the message says why."""


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """A LightGBM model flattened into the arrays the kernels read.

    `tree_info[t]` = (first node, internal nodes, quadrature nodes nq, table offset). Internal
    node n (global, `first + k` for LightGBM's node index k) has `node_int[n]` = (feature,
    flags, left position, right position, table offset, bitset start, bitset words) and
    `node_real[n]`
    = (threshold, left cover, right cover, left scale, right scale); see `INT_COLUMNS` and
    `REAL_COLUMNS`. Children are numbered per tree: k for internal nodes, n_internal + leaf for
    leaves. Flags pack the decision code (`_treeshap_kernels.CODE_*`), the feature's slot on the
    path (bits 8-15) and whether the feature is repeated on the path (bit 16). Covers are the
    cover ratios count(child) / count(node); the scale is the leaf value for an edge that ends
    in a leaf and 1 otherwise. `edge_table` holds each tree's quadrature header and the blocks
    of nodes that split on a feature already split on higher up their path (see `_tree_table`).
    """

    n_features: int
    feature_names: tuple[str, ...]
    objective: str
    expected_value: float
    tree_info: NDArray[np.int64]
    tree_leaf_start: NDArray[np.int64]
    node_int: NDArray[np.int32]
    node_real: NDArray[np.float64]
    cat_words: NDArray[np.uint32]
    leaf_value: NDArray[np.float64]
    edge_table: NDArray[np.float64]
    max_nodes: int
    max_quad: int
    max_path_features: int

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return int(self.tree_info.shape[0])


INT_COLUMNS = ("feature", "flags", "left_pos", "right_pos", "table_at", "cat_start", "cat_len")
REAL_COLUMNS = ("threshold", "cover_left", "cover_right", "scale_left", "scale_right")


@dataclass
class _Tree:
    num_leaves: int
    split_feature: list[int]
    threshold: list[float]
    decision_type: list[int]
    left_child: list[int]
    right_child: list[int]
    leaf_value: list[float]
    leaf_count: list[int]
    internal_count: list[int]
    cat_boundaries: list[int]
    cat_threshold: list[int]


def parse_model(model_text: str) -> TreeEnsemble:
    """Parse a LightGBM text model (`Booster.model_to_string()`) into a `TreeEnsemble`."""
    if not isinstance(model_text, str) or not model_text.startswith("tree"):
        raise ModelFormatError(
            "model text must be a LightGBM text model starting with 'tree' "
            "(Booster.model_to_string() or the contents of a saved model file)"
        )
    header, trees = _split_model_text(model_text)
    return _compute_ensemble(header, trees)


def _split_model_text(model_text: str) -> tuple[dict[str, str], list[_Tree]]:
    end = model_text.find("end of trees")
    body = model_text if end < 0 else model_text[:end]
    blocks = re.split(r"^Tree=\d+\s*$", body, flags=re.MULTILINE)
    header = _key_values(blocks[0])
    if "version" not in header or "max_feature_idx" not in header:
        raise ModelFormatError("model text has no LightGBM header (version=, max_feature_idx=)")
    if int(header.get("num_tree_per_iteration", "1")) != 1:
        raise ModelFormatError(
            "only single-output models (binary, regression) are supported; this model has "
            f"num_tree_per_iteration={header['num_tree_per_iteration']}"
        )
    if "average_output" in header:
        raise ModelFormatError("random-forest models (average_output) are not supported")
    trees = [_parse_tree(_key_values(block), index) for index, block in enumerate(blocks[1:])]
    if not trees:
        raise ModelFormatError("model text contains no trees")
    return header, trees


def _key_values(block: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
        elif line.strip():
            values[line.strip()] = ""
    return values


def _ints(fields: dict[str, str], key: str) -> list[int]:
    return [int(v) for v in fields.get(key, "").split()]


def _floats(fields: dict[str, str], key: str) -> list[float]:
    return [float(v) for v in fields.get(key, "").split()]


def _parse_tree(fields: dict[str, str], index: int) -> _Tree:
    if fields.get("is_linear", "0") != "0":
        raise ModelFormatError(f"tree {index} is a linear tree (linear_tree=True): not supported")
    num_leaves = int(fields["num_leaves"])
    tree = _Tree(
        num_leaves=num_leaves,
        split_feature=_ints(fields, "split_feature"),
        threshold=_floats(fields, "threshold"),
        decision_type=_ints(fields, "decision_type"),
        left_child=_ints(fields, "left_child"),
        right_child=_ints(fields, "right_child"),
        leaf_value=_floats(fields, "leaf_value"),
        leaf_count=_ints(fields, "leaf_count"),
        internal_count=_ints(fields, "internal_count"),
        cat_boundaries=_ints(fields, "cat_boundaries"),
        cat_threshold=_ints(fields, "cat_threshold"),
    )
    n_internal = num_leaves - 1
    lengths = {
        "split_feature": len(tree.split_feature),
        "threshold": len(tree.threshold),
        "decision_type": len(tree.decision_type),
        "left_child": len(tree.left_child),
        "right_child": len(tree.right_child),
        "internal_count": len(tree.internal_count),
    }
    bad = {k: n for k, n in lengths.items() if n != n_internal}
    if len(tree.leaf_value) != num_leaves or bad:
        raise ModelFormatError(f"tree {index}: arrays do not match num_leaves={num_leaves}: {bad}")
    if n_internal > 0 and len(tree.leaf_count) != num_leaves:
        raise ModelFormatError(f"tree {index}: leaf_count is missing; re-save the model")
    return tree


@cache
def _quadrature(n_points: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 1] (read-only, cached)."""
    x, w = np.polynomial.legendre.leggauss(n_points)
    t, weights = (x + 1.0) / 2.0, w / 2.0
    t.flags.writeable = weights.flags.writeable = False
    return t, weights


@dataclass
class _TreeLayout:
    """Row-independent quantities of one tree's internal nodes (n_internal rows)."""

    slot: NDArray[np.int64]
    z_prev: NDArray[np.float64]  # merged zero fraction of the feature above the node, NaN if new
    cover_ratio: NDArray[np.float64]  # (n_internal, 2): count(child) / count(node)
    scale: NDArray[np.float64]  # (n_internal, 2): leaf value when the child is a leaf, else 1
    max_path_features: int


def _tree_layout(tree: _Tree, index: int) -> _TreeLayout:
    n_internal = tree.num_leaves - 1
    slot = np.zeros(n_internal, dtype=np.int64)
    z_prev = np.full(n_internal, np.nan)
    cover_ratio = np.ones((n_internal, 2))
    scale = np.ones((n_internal, 2))
    max_path_features = 0
    reached = 0
    stack: list[tuple[int, tuple[int, ...], dict[int, float]]] = [(0, (), {})]
    while n_internal and stack:
        node, features, zeros = stack.pop()
        feature = tree.split_feature[node]
        if feature in zeros:
            slot[node] = features.index(feature)
            z_prev[node] = zeros[feature]
        else:
            slot[node] = len(features)
            features = (*features, feature)
        max_path_features = max(max_path_features, len(features))
        parent_count = tree.internal_count[node]
        if parent_count <= 0:
            raise ModelFormatError(f"tree {index} node {node}: internal_count must be positive")
        for side, child in enumerate((tree.left_child[node], tree.right_child[node])):
            count = tree.internal_count[child] if child >= 0 else tree.leaf_count[~child]
            ratio = count / parent_count
            cover_ratio[node, side] = ratio
            if child < 0:
                scale[node, side] = tree.leaf_value[~child]
                reached += 1
                continue
            if child <= node:
                raise ModelFormatError(f"tree {index}: node {child} does not follow its parent")
            child_zeros = dict(zeros)
            # LightGBM: hot_zero_fraction * incoming_zero_fraction.
            child_zeros[feature] = ratio * zeros[feature] if feature in zeros else ratio
            stack.append((child, features, child_zeros))
    if n_internal and reached != tree.num_leaves:
        raise ModelFormatError(f"tree {index}: {tree.num_leaves - reached} leaves are unreachable")
    return _TreeLayout(slot, z_prev, cover_ratio, scale, max_path_features)


def _tree_table(layout: _TreeLayout, n_quad: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The tree's slice of `edge_table` and each internal node's offset within it.

    Header: t, 1 - t, w, the cold coefficient -w / (1 - t), zeros, ones (n_quad values each).
    A node splitting on a feature for the first time on its path needs nothing more (the
    kernel computes its hot coefficient w (1 - z) / (z (1 - t) + t)); a repeated feature stores,
    per side, (ratio, coefficient) hot then cold, relative to the feature's previous merged
    factor. Nodes without a block get offset 0.
    """
    t, w = _quadrature(n_quad)
    omt = 1.0 - t
    header = np.concatenate([t, omt, w, -w / omt, np.zeros(n_quad), np.ones(n_quad)])
    repeat = ~np.isnan(layout.z_prev)
    offsets = np.zeros(repeat.shape[0], dtype=np.int64)
    offsets[repeat] = header.size + 8 * n_quad * np.arange(int(repeat.sum()))
    if not repeat.any():
        return header, offsets
    z_p = layout.z_prev[repeat][:, None, None]  # (node, 1, 1)
    z_e = layout.cover_ratio[repeat][:, :, None] * z_p  # LightGBM: hot_zero_fraction * incoming
    scale = layout.scale[repeat][:, :, None]
    g_hot = z_e * omt + t  # (node, side, q)
    g_prev = z_p * omt + t
    prev_term = (1.0 - z_p) / g_prev
    blocks = np.empty((int(repeat.sum()), 2, 4, n_quad))
    blocks[:, :, 0] = g_hot / g_prev * scale
    blocks[:, :, 1] = w * ((1.0 - z_e) / g_hot - prev_term)
    blocks[:, :, 2] = z_e * omt / g_prev * scale
    blocks[:, :, 3] = w * (-1.0 / omt - prev_term)
    return np.concatenate([header, blocks.ravel()]), offsets


def _node_codes(
    decision_type: NDArray[np.int64], threshold: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Re-encode LightGBM's decision_type for the branch-free decisions of the kernels.

    Where NaN goes: the default side for missing type NaN or Zero, else where 0.0 goes (NaN is
    read as 0.0). Where zero goes: the default side for missing type Zero, else `0 <= threshold`.
    """
    categorical = (decision_type & _CATEGORICAL) != 0
    default_left = (decision_type & 2) != 0
    missing_type = (decision_type >> 2) & 3
    zero_goes_left = threshold >= 0.0
    nan_left = np.where(missing_type == _MISSING_NONE, zero_goes_left, default_left)
    zero_left = np.where(missing_type == _MISSING_ZERO, default_left, zero_goes_left)
    codes = _kernels.CODE_NAN_LEFT * nan_left + _kernels.CODE_ZERO_LEFT * zero_left
    return np.where(categorical, _kernels.CODE_CATEGORICAL, codes).astype(np.int64)


def _compute_ensemble(header: dict[str, str], trees: list[_Tree]) -> TreeEnsemble:
    n_features = int(header["max_feature_idx"]) + 1
    names = tuple(header.get("feature_names", "").split()) or tuple(
        f"Column_{i}" for i in range(n_features)
    )
    node_int: list[NDArray[np.int64]] = [np.zeros((0, len(INT_COLUMNS)), dtype=np.int64)]
    node_real: list[NDArray[np.float64]] = [np.zeros((0, len(REAL_COLUMNS)))]
    tables: list[NDArray[np.float64]] = []
    cat_words: list[int] = []
    leaf_value: list[float] = []
    tree_info: list[tuple[int, int, int, int]] = []
    tree_leaf_start: list[int] = []
    n_nodes = table_size = max_path_features = 0
    expected_value = 0.0
    for index, tree in enumerate(trees):
        n_internal = tree.num_leaves - 1
        layout = _tree_layout(tree, index)
        if layout.max_path_features > _MAX_PATH_FEATURES:
            raise ModelFormatError(
                f"tree {index}: a path splits on {layout.max_path_features} distinct features; "
                f"at most {_MAX_PATH_FEATURES} are supported"
            )
        max_path_features = max(max_path_features, layout.max_path_features)
        # ceil(D / 2) nodes are exact for degree D - 1; pad to a multiple of 4 lanes.
        n_quad = 4 * max(1, ((layout.max_path_features + 1) // 2 + 3) // 4)
        table, offsets = _tree_table(layout, n_quad)
        ints, reals = _tree_nodes(tree, index, layout, n_features, len(cat_words))
        ints[:, 4] = table_size + offsets
        tree_info.append((n_nodes, n_internal, n_quad, table_size))
        tree_leaf_start.append(len(leaf_value))
        node_int.append(ints)
        node_real.append(reals)
        tables.append(table)
        cat_words.extend(tree.cat_threshold)
        leaf_value.extend(tree.leaf_value)
        expected_value += _tree_expected_value(tree)
        n_nodes += n_internal
        table_size += table.size
    return TreeEnsemble(
        n_features=n_features,
        feature_names=names,
        objective=header.get("objective", ""),
        expected_value=expected_value,
        tree_info=np.asarray(tree_info, dtype=np.int64).reshape(-1, 4),
        tree_leaf_start=np.asarray(tree_leaf_start, dtype=np.int64),
        node_int=_int32(np.concatenate(node_int)),
        node_real=np.ascontiguousarray(np.concatenate(node_real)),
        cat_words=np.asarray(cat_words, dtype=np.uint32),
        leaf_value=np.asarray(leaf_value, dtype=np.float64),
        edge_table=np.concatenate(tables),
        max_nodes=max(tree.num_leaves - 1 for tree in trees),
        max_quad=max(info[2] for info in tree_info),
        max_path_features=max_path_features,
    )


def _tree_nodes(
    tree: _Tree, index: int, layout: _TreeLayout, n_features: int, word_offset: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """`node_int` rows (table offsets left 0) and `node_real` rows of one tree."""
    n_internal = tree.num_leaves - 1
    feature = np.asarray(tree.split_feature, dtype=np.int64)
    if ((feature < 0) | (feature >= n_features)).any():
        raise ModelFormatError(f"tree {index}: split feature out of range 0..{n_features - 1}")
    decision_type = np.asarray(tree.decision_type, dtype=np.int64)
    threshold = np.asarray(tree.threshold, dtype=np.float64)
    repeat = ~np.isnan(layout.z_prev)
    flags = _node_codes(decision_type, threshold) | layout.slot << 8 | repeat.astype(np.int64) << 16
    children = np.asarray([tree.left_child, tree.right_child], dtype=np.int64).reshape(
        2, n_internal
    )
    positions = np.where(children >= 0, children, n_internal + ~children)
    cat = np.zeros((2, n_internal), dtype=np.int64)
    for node in np.flatnonzero(decision_type & _CATEGORICAL):
        cat_idx = int(threshold[node])
        if not 0 <= cat_idx < len(tree.cat_boundaries) - 1:
            raise ModelFormatError(f"tree {index} node {node}: bitset {cat_idx} is missing")
        lo, hi = tree.cat_boundaries[cat_idx], tree.cat_boundaries[cat_idx + 1]
        cat[:, node] = word_offset + lo, hi - lo
    zeros = np.zeros(n_internal, dtype=np.int64)
    ints = np.stack([feature, flags, positions[0], positions[1], zeros, cat[0], cat[1]], axis=1)
    reals = np.column_stack([threshold, layout.cover_ratio, layout.scale]).reshape(n_internal, 5)
    return ints.reshape(n_internal, len(INT_COLUMNS)), reals


def _int32(values: NDArray[np.int64]) -> NDArray[np.int32]:
    """Narrow node integers (half the memory traffic of int64), refusing anything that overflows."""
    if values.size and (values.min() < 0 or values.max() > np.iinfo(np.int32).max):
        raise ModelFormatError("the model is too large for 32-bit node offsets")
    return np.ascontiguousarray(values, dtype=np.int32)


def _tree_expected_value(tree: _Tree) -> float:
    """LightGBM's `Tree::ExpectedValue`, same order of operations."""
    if tree.num_leaves == 1:
        return tree.leaf_value[0]
    total = float(tree.internal_count[0])
    value = 0.0
    for count, leaf_value in zip(tree.leaf_count, tree.leaf_value, strict=True):
        value += (count / total) * leaf_value
    return value


def check_matrix(X: object, n_features: int) -> NDArray[np.float64]:
    """Return X as a C-contiguous float64 (n_rows, n_features) array, or raise a clear error."""
    if not isinstance(X, np.ndarray):
        raise TypeError(
            f"X must be a numpy.ndarray of float64, got {type(X).__name__}; "
            "convert with np.asarray(X, dtype=np.float64)"
        )
    if X.dtype != np.float64:
        raise TypeError(
            f"X must have dtype float64, got {X.dtype}; convert with X.astype(np.float64)"
        )
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_rows, n_features), got {X.ndim}-D shape {X.shape}; "
            "use X.reshape(1, -1) for a single row"
        )
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} columns but the model expects {n_features} features")
    return np.ascontiguousarray(X)


def _chunks(n_rows: int, n_threads: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, one per thread, at least 64 rows each."""
    n_chunks = max(1, min(n_threads, n_rows // 64))
    bounds = [n_rows * i // n_chunks for i in range(n_chunks + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _readonly(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """A read-only view of X."""
    # numba compiles one specialization per writeability; passing inputs read-only always
    # (pandas copy-on-write hands out read-only arrays) keeps it to the one warmed up.
    view = X.view()
    view.flags.writeable = False
    return view


def _shap_block(model: TreeEnsemble, X: NDArray[np.float64], out: NDArray[np.float64]) -> None:
    _kernels.shap_rows(
        _readonly(X),
        out,
        model.max_nodes,
        model.max_quad,
        model.tree_info,
        model.node_int,
        model.node_real,
        model.cat_words,
        model.edge_table,
    )


def shap_values(
    model: TreeEnsemble, X: NDArray[np.float64], *, n_threads: int = 1
) -> NDArray[np.float64]:
    """Exact path-dependent SHAP values (n_rows, n_features) in raw margin space."""
    X = check_matrix(X, model.n_features)
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    return _compute_shap(model, X, n_threads=n_threads)


def _compute_shap(
    model: TreeEnsemble, X: NDArray[np.float64], *, n_threads: int
) -> NDArray[np.float64]:
    out = np.empty((X.shape[0], model.n_features), dtype=np.float64)
    if n_threads == 1 or X.shape[0] < 128:
        _shap_block(model, X, out)
        return out
    chunks = _chunks(X.shape[0], n_threads)
    # The kernels release the GIL, so plain threads run them in parallel without numba's
    # threading layer (which is not safe to enter from several Python threads at once).
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        futures = [pool.submit(_shap_block, model, X[a:b], out[a:b]) for a, b in chunks]
        for future in futures:
            future.result()
    return out


def predict_raw(model: TreeEnsemble, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Raw margin (n_rows,) as LightGBM's `predict(raw_score=True)` computes it."""
    X = check_matrix(X, model.n_features)
    out = np.empty(X.shape[0], dtype=np.float64)
    _kernels.predict_rows(
        _readonly(X),
        out,
        model.tree_info,
        model.tree_leaf_start,
        model.node_int,
        model.node_real,
        model.cat_words,
        model.leaf_value,
    )
    return out


def top_k(
    values: NDArray[np.float64], k: int, *, by: str = "abs"
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Indices and values (n_rows, k) of each row's k largest contributions, strongest first.

    `by="abs"` ranks by |value|, `by="positive"` by signed value (largest push towards the
    positive class first); ties go to the lower feature index, so the order is deterministic.
    """
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (n_rows, n_features), got shape {values.shape}")
    if not 1 <= k <= values.shape[1]:
        raise ValueError(f"k must be between 1 and {values.shape[1]}, got {k}")
    if by not in ("abs", "positive"):
        raise ValueError(f"by must be 'abs' or 'positive', got {by!r}")
    index = np.empty((values.shape[0], k), dtype=np.int64)
    top = np.empty((values.shape[0], k), dtype=np.float64)
    contiguous = _readonly(np.ascontiguousarray(values, dtype=np.float64))
    _kernels.top_k_rows(contiguous, k, by == "abs", index, top)
    return index, top
