"""Numba kernels of the exact path-dependent TreeSHAP in `models.treeshap`.

Every kernel is compiled with `cache=True, nogil=True` and strict IEEE semantics (no fastmath),
so the numbers are reproducible run to run and the GIL is free while they run. Array layout and
the maths are described in `models.treeshap`; these functions trust their inputs.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# LightGBM's `kZeroThreshold` is the float literal 1e-35f widened to double.
ZERO_THRESHOLD = float(np.float32(1e-35))
_INT_LIMIT = 2147483648.0

_JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


@nb.njit(inline="always", **_JIT)
def _goes_left(
    value: float,
    flags: int,
    threshold: float,
    cat_start: int,
    cat_len: int,
    cat_words: np.ndarray,
) -> bool:
    """LightGBM's `Tree::Decision` for one node (value already through `_filter_value`)."""
    if flags & 1:
        # CategoricalDecision: static_cast<int> (INT_MIN on x86 when NaN or out of range), then
        # negative goes right, else the bit of the bitset decides.
        if value != value or not (value > -_INT_LIMIT - 1.0 and value < _INT_LIMIT):
            return False
        category = int(value)
        if category < 0:
            return False
        word = category >> 5
        if word >= cat_len:
            return False
        return ((cat_words[cat_start + word] >> np.uint32(category & 31)) & np.uint32(1)) != 0
    missing_type = (flags >> 2) & 3
    if value != value:
        if missing_type == 2:
            return (flags & 2) != 0
        value = 0.0
    if missing_type == 1 and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
        return (flags & 2) != 0
    return value <= threshold


@nb.njit(inline="always", **_JIT)
def _filter_value(value: float) -> float:
    """LightGBM's row conversion: values with |v| <= kZeroThreshold reach the trees as 0.0."""
    if -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
        return 0.0
    return value


@nb.njit(**_JIT)
def _row_shap(
    x: np.ndarray,
    phi: np.ndarray,
    tree_node_start: np.ndarray,
    tree_quad: np.ndarray,
    tree_table_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_flags: np.ndarray,
    node_cat_start: np.ndarray,
    node_cat_len: np.ndarray,
    node_left_pos: np.ndarray,
    node_right_pos: np.ndarray,
    node_slot: np.ndarray,
    node_off_ratio: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
    node_mask: np.ndarray,
    edge_off: np.ndarray,
    buf: np.ndarray,
) -> None:
    """Add the SHAP values of one row x (n_features,) to phi (n_features,), all trees."""
    n_trees = tree_node_start.shape[0] - 1
    for tree in range(n_trees):
        first = tree_node_start[tree]
        n_int = tree_node_start[tree + 1] - first
        if n_int == 0:
            continue
        nq = tree_quad[tree]
        table = tree_table_start[tree]
        for q in range(nq):
            buf[q] = 1.0
        node_mask[0] = -1
        # Down: buf[child] = buf[node] * ratio(edge case), the path product at the quadrature nodes.
        for k in range(n_int):
            n = first + k
            left = _goes_left(
                _filter_value(x[node_feature[n]]),
                node_flags[n],
                node_threshold[n],
                node_cat_start[n],
                node_cat_len[n],
                cat_words,
            )
            mask = node_mask[k]
            slot = node_slot[n]
            pos_l = node_left_pos[n]
            pos_r = node_right_pos[n]
            cleared = mask & ~(np.int64(1) << slot)
            if pos_l < n_int:
                node_mask[pos_l] = mask if left else cleared
            if pos_r < n_int:
                node_mask[pos_r] = cleared if left else mask
            src = k * nq
            dst_l = pos_l * nq
            dst_r = pos_r * nq
            if (mask >> slot) & 1:
                go = np.int64(left)
                base = table + k * 8 * nq
                off_l = base + (1 - go) * 2 * nq
                off_r = base + (2 + go) * 2 * nq
                edge_off[2 * k] = off_l + nq
                edge_off[2 * k + 1] = off_r + nq
                for qb in range(0, nq, 4):
                    v0 = buf[src + qb]
                    v1 = buf[src + qb + 1]
                    v2 = buf[src + qb + 2]
                    v3 = buf[src + qb + 3]
                    a = off_l + qb
                    b = off_r + qb
                    buf[dst_l + qb] = v0 * edge_table[a]
                    buf[dst_l + qb + 1] = v1 * edge_table[a + 1]
                    buf[dst_l + qb + 2] = v2 * edge_table[a + 2]
                    buf[dst_l + qb + 3] = v3 * edge_table[a + 3]
                    buf[dst_r + qb] = v0 * edge_table[b]
                    buf[dst_r + qb + 1] = v1 * edge_table[b + 1]
                    buf[dst_r + qb + 2] = v2 * edge_table[b + 2]
                    buf[dst_r + qb + 3] = v3 * edge_table[b + 3]
            else:
                # The row already failed this feature higher up: both edges only rescale the
                # product by their cover ratio and contribute nothing.
                edge_off[2 * k] = -1
                ratio_l = node_off_ratio[2 * n]
                ratio_r = node_off_ratio[2 * n + 1]
                for q in range(nq):
                    v = buf[src + q]
                    buf[dst_l + q] = v * ratio_l
                    buf[dst_r + q] = v * ratio_r
        # Up: buf[node] = sum of the leaf polynomials below it; each edge adds its coefficient.
        for k in range(n_int - 1, -1, -1):
            n = first + k
            src_l = node_left_pos[n] * nq
            src_r = node_right_pos[n] * nq
            dst = k * nq
            coef_l = edge_off[2 * k]
            if coef_l < 0:
                for q in range(nq):
                    buf[dst + q] = buf[src_l + q] + buf[src_r + q]
                continue
            coef_r = edge_off[2 * k + 1]
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            acc3 = 0.0
            for qb in range(0, nq, 4):
                l0 = buf[src_l + qb]
                l1 = buf[src_l + qb + 1]
                l2 = buf[src_l + qb + 2]
                l3 = buf[src_l + qb + 3]
                r0 = buf[src_r + qb]
                r1 = buf[src_r + qb + 1]
                r2 = buf[src_r + qb + 2]
                r3 = buf[src_r + qb + 3]
                a = coef_l + qb
                b = coef_r + qb
                acc0 += l0 * edge_table[a] + r0 * edge_table[b]
                acc1 += l1 * edge_table[a + 1] + r1 * edge_table[b + 1]
                acc2 += l2 * edge_table[a + 2] + r2 * edge_table[b + 2]
                acc3 += l3 * edge_table[a + 3] + r3 * edge_table[b + 3]
                buf[dst + qb] = l0 + r0
                buf[dst + qb + 1] = l1 + r1
                buf[dst + qb + 2] = l2 + r2
                buf[dst + qb + 3] = l3 + r3
            phi[node_feature[n]] += (acc0 + acc1) + (acc2 + acc3)


@nb.njit(**_JIT)
def shap_rows(
    X: np.ndarray,
    out: np.ndarray,
    tree_node_start: np.ndarray,
    tree_quad: np.ndarray,
    tree_table_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_flags: np.ndarray,
    node_cat_start: np.ndarray,
    node_cat_len: np.ndarray,
    node_left_pos: np.ndarray,
    node_right_pos: np.ndarray,
    node_slot: np.ndarray,
    node_off_ratio: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
    max_nodes: int,
    max_quad: int,
) -> None:
    """Add the SHAP values of every row of X (n_rows, n_features) to out (same shape)."""
    size = max(max_nodes, 1)
    node_mask = np.empty(size, dtype=np.int64)
    edge_off = np.empty(2 * size, dtype=np.int64)
    buf = np.empty((2 * size + 1) * max(max_quad, 4), dtype=np.float64)
    for row in range(X.shape[0]):
        _row_shap(
            X[row],
            out[row],
            tree_node_start,
            tree_quad,
            tree_table_start,
            node_feature,
            node_threshold,
            node_flags,
            node_cat_start,
            node_cat_len,
            node_left_pos,
            node_right_pos,
            node_slot,
            node_off_ratio,
            cat_words,
            edge_table,
            node_mask,
            edge_off,
            buf,
        )


@nb.njit(**_JIT)
def predict_rows(
    X: np.ndarray,
    out: np.ndarray,
    tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_flags: np.ndarray,
    node_cat_start: np.ndarray,
    node_cat_len: np.ndarray,
    node_left: np.ndarray,
    node_right: np.ndarray,
    cat_words: np.ndarray,
    leaf_value: np.ndarray,
) -> None:
    """Write the raw margin of every row of X into out (n_rows,), summing trees in order."""
    n_trees = tree_node_start.shape[0] - 1
    for row in range(X.shape[0]):
        x = X[row]
        total = 0.0
        for tree in range(n_trees):
            node_begin = tree_node_start[tree]
            if tree_node_start[tree + 1] == node_begin:
                total += leaf_value[tree_leaf_start[tree]]
                continue
            node = 0
            while node >= 0:
                n = node_begin + node
                left = _goes_left(
                    _filter_value(x[node_feature[n]]),
                    node_flags[n],
                    node_threshold[n],
                    node_cat_start[n],
                    node_cat_len[n],
                    cat_words,
                )
                node = node_left[n] if left else node_right[n]
            total += leaf_value[tree_leaf_start[tree] + ~node]
        out[row] = total
