"""Numba kernels of the exact path-dependent TreeSHAP in `models.treeshap`.

Every kernel is compiled with `cache=True, nogil=True` and strict IEEE semantics (no fastmath),
so results are reproducible and the GIL is free while they run. The array layout and the maths
are described in `models.treeshap`; these functions trust their inputs (no bounds checks).

numba leaves LLVM's SLP vectorizer off and the loops here are too short for the loop vectorizer,
so the hot loops call two small intrinsics that emit 4-lane vector instructions directly (AVX2
on x86-64; LLVM splits them on narrower targets). Each lane is an ordinary IEEE multiply or add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# LightGBM's `kZeroThreshold` is the float literal 1e-35f widened to double.
ZERO_THRESHOLD = float(np.float32(1e-35))
# static_cast<int> of a double at or above 2^31 gives INT_MIN on x86-64, a negative category.
_INT_LIMIT = 2147483648.0
LANES = 4

# Bits of `node_code`.
CODE_CATEGORICAL = 1
CODE_NAN_LEFT = 2
CODE_ZERO_LEFT = 4

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(*, inline: Literal["never", "always"] = "never") -> Callable[[_F], _F]:
    """numba.njit with this module's options, typed for mypy."""
    decorator = nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy", inline=inline)
    return cast(Callable[[_F], _F], decorator)


_VECTOR = ir.VectorType(ir.DoubleType(), LANES)


def _lanes(context: Any, builder: Any, array_type: Any, array: Any, index: Any) -> Any:
    """Pointer to the 4 doubles array[index:index + 4]."""
    data = context.make_array(array_type)(context, builder, value=array).data
    return builder.bitcast(builder.gep(data, [index]), _VECTOR.as_pointer())


@intrinsic
def _mul4_intrinsic(
    typingctx: Any, dst: Any, dst_at: Any, src: Any, src_at: Any, table: Any, table_at: Any
) -> Any:
    """dst[dst_at:+4] = src[src_at:+4] * table[table_at:+4]."""
    del typingctx
    signature = types.void(dst, dst_at, src, src_at, table, table_at)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        d, d_at, s, s_at, t, t_at = args
        a = builder.load(_lanes(context, builder, sig.args[2], s, s_at), align=8)
        b = builder.load(_lanes(context, builder, sig.args[4], t, t_at), align=8)
        builder.store(builder.fmul(a, b), _lanes(context, builder, sig.args[0], d, d_at), align=8)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _up4_intrinsic(
    typingctx: Any,
    buf: Any,
    left_at: Any,
    right_at: Any,
    dst_at: Any,
    table: Any,
    coef_left_at: Any,
    coef_right_at: Any,
    acc: Any,
    acc_at: Any,
) -> Any:
    """acc[+4] += l * coef_l + r * coef_r, then buf[dst_at:+4] = l + r (l, r: children)."""
    del typingctx
    signature = types.void(
        buf, left_at, right_at, dst_at, table, coef_left_at, coef_right_at, acc, acc_at
    )

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        b, l_at, r_at, d_at, t, cl_at, cr_at, a, a_at = args
        buf_type, table_type, acc_type = sig.args[0], sig.args[4], sig.args[7]
        left = builder.load(_lanes(context, builder, buf_type, b, l_at), align=8)
        right = builder.load(_lanes(context, builder, buf_type, b, r_at), align=8)
        coef_left = builder.load(_lanes(context, builder, table_type, t, cl_at), align=8)
        coef_right = builder.load(_lanes(context, builder, table_type, t, cr_at), align=8)
        acc_ptr = _lanes(context, builder, acc_type, a, a_at)
        term = builder.fadd(builder.fmul(left, coef_left), builder.fmul(right, coef_right))
        builder.store(builder.fadd(builder.load(acc_ptr, align=8), term), acc_ptr, align=8)
        builder.store(
            builder.fadd(left, right), _lanes(context, builder, buf_type, b, d_at), align=8
        )
        return context.get_dummy_value()

    return signature, codegen


# Called from jitted code only; typed as plain functions for mypy.
_mul4 = cast(Callable[..., None], _mul4_intrinsic)
_up4 = cast(Callable[..., None], _up4_intrinsic)


@_jit(inline="always")
def _goes_left(
    value: float,
    code: int,
    threshold: float,
    cat_start: int,
    cat_len: int,
    cat_words: np.ndarray,
) -> np.int64:
    """1 if LightGBM's `Tree::Decision` sends `value` to the left child, else 0.

    Numerical: NaN and zero (|v| <= kZeroThreshold, which LightGBM's row conversion turns into
    0.0) go where the precomputed bits say (default side or the comparison of 0.0), anything
    else by `value <= threshold`. Categorical: NaN, negative and out-of-int-range values go
    right, otherwise the category's bit in the split's bitset decides.
    """
    if code & CODE_CATEGORICAL:
        if not (value > -1.0 and value < _INT_LIMIT):
            return np.int64(0)
        category = np.int64(value)
        word = category >> 5
        if word >= cat_len:
            return np.int64(0)
        return np.int64((cat_words[cat_start + word] >> np.uint32(category & 31)) & np.uint32(1))
    is_nan = np.int64(value != value)
    is_zero = np.int64(abs(value) <= ZERO_THRESHOLD)
    below = np.int64(value <= threshold)
    return ((is_nan & (code >> 1)) | (is_zero & (code >> 2)) | ((1 - is_nan - is_zero) & below)) & 1


@_jit()
def _row_shap(
    x: np.ndarray,
    acc: np.ndarray,
    max_quad: int,
    tree_node_start: np.ndarray,
    tree_quad: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_code: np.ndarray,
    node_cat_start: np.ndarray,
    node_cat_len: np.ndarray,
    node_left_pos: np.ndarray,
    node_right_pos: np.ndarray,
    node_slot: np.ndarray,
    node_table_at: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
    node_mask: np.ndarray,
    coef_at: np.ndarray,
    buf: np.ndarray,
) -> None:
    """Add one row's SHAP terms to acc: lane q of feature f at f * max_quad + q."""
    n_trees = tree_node_start.shape[0] - 1
    for tree in range(n_trees):
        first = tree_node_start[tree]
        n_internal = tree_node_start[tree + 1] - first
        if n_internal == 0:
            continue
        nq = tree_quad[tree]
        for q in range(nq):
            buf[q] = 1.0
        node_mask[0] = -1
        # Down: the path product at the quadrature nodes, times each edge's ratio for its case
        # (0 failed higher up, 1 cold, 2 hot); positions >= n_internal are leaves.
        for k in range(n_internal):
            n = first + k
            left = _goes_left(
                x[node_feature[n]],
                node_code[n],
                node_threshold[n],
                node_cat_start[n],
                node_cat_len[n],
                cat_words,
            )
            mask = node_mask[k]
            slot = node_slot[n]
            o_prev = (mask >> slot) & 1
            pos_l = node_left_pos[n]
            pos_r = node_right_pos[n]
            node_mask[pos_l] = mask & ~((1 - left) << slot)
            node_mask[pos_r] = mask & ~(left << slot)
            base = node_table_at[n]
            at_l = base + o_prev * (1 + left) * 2 * nq
            at_r = base + (3 + o_prev * (2 - left)) * 2 * nq
            coef_at[2 * k] = at_l + nq
            coef_at[2 * k + 1] = at_r + nq
            src = k * nq
            dst_l = pos_l * nq
            dst_r = pos_r * nq
            for qb in range(0, nq, LANES):
                _mul4(buf, dst_l + qb, buf, src + qb, edge_table, at_l + qb)
                _mul4(buf, dst_r + qb, buf, src + qb, edge_table, at_r + qb)
        # Up: sum the children's leaf polynomials; each edge adds coefficient * sum to its feature.
        for k in range(n_internal - 1, -1, -1):
            n = first + k
            src_l = node_left_pos[n] * nq
            src_r = node_right_pos[n] * nq
            coef_l = coef_at[2 * k]
            coef_r = coef_at[2 * k + 1]
            dst = k * nq
            lane = node_feature[n] * max_quad
            for qb in range(0, nq, LANES):
                _up4(
                    buf,
                    src_l + qb,
                    src_r + qb,
                    dst + qb,
                    edge_table,
                    coef_l + qb,
                    coef_r + qb,
                    acc,
                    lane + qb,
                )


@_jit()
def shap_rows(
    X: np.ndarray,
    out: np.ndarray,
    max_nodes: int,
    max_quad: int,
    tree_node_start: np.ndarray,
    tree_quad: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_code: np.ndarray,
    node_cat_start: np.ndarray,
    node_cat_len: np.ndarray,
    node_left_pos: np.ndarray,
    node_right_pos: np.ndarray,
    node_slot: np.ndarray,
    node_table_at: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
) -> None:
    """Write the SHAP values of every row of X (n_rows, n_features) into out (same shape)."""
    n_features = X.shape[1]
    size = 2 * max(max_nodes, 1) + 1
    node_mask = np.empty(size, dtype=np.int64)
    coef_at = np.empty(2 * size, dtype=np.int64)
    buf = np.empty(size * max_quad, dtype=np.float64)
    acc = np.empty(n_features * max_quad, dtype=np.float64)
    for row in range(X.shape[0]):
        acc[:] = 0.0
        _row_shap(
            X[row],
            acc,
            max_quad,
            tree_node_start,
            tree_quad,
            node_feature,
            node_threshold,
            node_code,
            node_cat_start,
            node_cat_len,
            node_left_pos,
            node_right_pos,
            node_slot,
            node_table_at,
            cat_words,
            edge_table,
            node_mask,
            coef_at,
            buf,
        )
        for f in range(n_features):
            total = 0.0
            for q in range(max_quad):
                total += acc[f * max_quad + q]
            out[row, f] = total


@_jit()
def predict_rows(
    X: np.ndarray,
    out: np.ndarray,
    tree_node_start: np.ndarray,
    tree_leaf_start: np.ndarray,
    node_feature: np.ndarray,
    node_threshold: np.ndarray,
    node_code: np.ndarray,
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
            first = tree_node_start[tree]
            if tree_node_start[tree + 1] == first:
                total += leaf_value[tree_leaf_start[tree]]
                continue
            node = 0
            while node >= 0:
                n = first + node
                left = _goes_left(
                    x[node_feature[n]],
                    node_code[n],
                    node_threshold[n],
                    node_cat_start[n],
                    node_cat_len[n],
                    cat_words,
                )
                node = node_left[n] if left else node_right[n]
            total += leaf_value[tree_leaf_start[tree] + ~node]
        out[row] = total
