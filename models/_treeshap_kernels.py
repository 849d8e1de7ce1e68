"""Numba kernels of the exact path-dependent TreeSHAP in `models.treeshap`.

Every kernel is compiled with `cache=True, nogil=True` and strict IEEE semantics (no fastmath),
so results are reproducible and the GIL is free while they run. The array layout and the maths
are described in `models.treeshap`; these functions trust their inputs (no bounds checks).

numba leaves LLVM's SLP vectorizer off and the loops here are too short for the loop vectorizer,
so the hot loops call small intrinsics that emit 4-lane vector instructions directly (AVX2
on x86-64; LLVM splits them on narrower targets). Each lane is an ordinary IEEE operation.
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
# static_cast<int> of NaN or of a double at or above 2^31 gives INT_MIN on x86-64: negative,
# so the row goes right.
_INT_LIMIT = 2147483648.0
LANES = 4

# Decision bits in the low byte of a node's flags.
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


def _broadcast(builder: Any, value: Any) -> Any:
    vector = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value, ir.IntType(32)(0))
    return builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(ir.IntType(32), 4), 0))


@intrinsic
def _down4_intrinsic(
    typingctx: Any,
    dst: Any,
    dst_at: Any,
    src: Any,
    src_at: Any,
    table: Any,
    a_at: Any,
    b_at: Any,
    a: Any,
    b: Any,
) -> Any:
    """dst[dst_at:+4] = src[src_at:+4] * (a * table[a_at:+4] + b * table[b_at:+4])."""
    del typingctx
    signature = types.void(dst, dst_at, src, src_at, table, a_at, b_at, a, b)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        d, d_at, s, s_at, t, ta_at, tb_at, sa, sb = args
        table_type = sig.args[4]
        va = builder.load(_lanes(context, builder, table_type, t, ta_at), align=8)
        vb = builder.load(_lanes(context, builder, table_type, t, tb_at), align=8)
        ratio = builder.fadd(
            builder.fmul(_broadcast(builder, sa), va), builder.fmul(_broadcast(builder, sb), vb)
        )
        vs = builder.load(_lanes(context, builder, sig.args[2], s, s_at), align=8)
        builder.store(
            builder.fmul(vs, ratio), _lanes(context, builder, sig.args[0], d, d_at), align=8
        )
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


@intrinsic
def _up_first4_intrinsic(
    typingctx: Any,
    buf: Any,
    hot_at: Any,
    cold_at: Any,
    dst_at: Any,
    table: Any,
    header_at: Any,
    nq: Any,
    z: Any,
    acc: Any,
    acc_at: Any,
) -> Any:
    """Up step of a node splitting on its feature for the first time on the path.

    With the tree header t, 1 - t, w, -w / (1 - t) at header_at + (0, 1, 2, 3) * nq (plus the
    lane offset already in header_at): acc += hot * w (1 - z) / (z (1 - t) + t) + cold *
    (-w / (1 - t)), then buf[dst_at] = hot + cold.
    """
    del typingctx
    signature = types.void(buf, hot_at, cold_at, dst_at, table, header_at, nq, z, acc, acc_at)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        b, h_at, c_at, d_at, t, head, n, zz, a, a_at = args
        buf_type, table_type, acc_type = sig.args[0], sig.args[4], sig.args[8]
        hot = builder.load(_lanes(context, builder, buf_type, b, h_at), align=8)
        cold = builder.load(_lanes(context, builder, buf_type, b, c_at), align=8)
        t_at = head
        omt_at = builder.add(head, n)
        w_at = builder.add(omt_at, n)
        cold_coef_at = builder.add(w_at, n)
        vt = builder.load(_lanes(context, builder, table_type, t, t_at), align=8)
        vomt = builder.load(_lanes(context, builder, table_type, t, omt_at), align=8)
        vw = builder.load(_lanes(context, builder, table_type, t, w_at), align=8)
        vcold = builder.load(_lanes(context, builder, table_type, t, cold_coef_at), align=8)
        one_minus_z = builder.fsub(ir.Constant(ir.DoubleType(), 1.0), zz)
        g_hot = builder.fadd(builder.fmul(_broadcast(builder, zz), vomt), vt)
        coef_hot = builder.fdiv(builder.fmul(vw, _broadcast(builder, one_minus_z)), g_hot)
        acc_ptr = _lanes(context, builder, acc_type, a, a_at)
        term = builder.fadd(builder.fmul(hot, coef_hot), builder.fmul(cold, vcold))
        builder.store(builder.fadd(builder.load(acc_ptr, align=8), term), acc_ptr, align=8)
        builder.store(builder.fadd(hot, cold), _lanes(context, builder, buf_type, b, d_at), align=8)
        return context.get_dummy_value()

    return signature, codegen


# Called from jitted code only; typed as plain functions for mypy.
_down4 = cast(Callable[..., None], _down4_intrinsic)
_up4 = cast(Callable[..., None], _up4_intrinsic)
_up_first4 = cast(Callable[..., None], _up_first4_intrinsic)


@_jit(inline="always")
def _goes_left(
    value: float,
    flags: int,
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
    if flags & CODE_CATEGORICAL:
        if not (value > -1.0 and value < _INT_LIMIT):
            return np.int64(0)
        category = np.int64(value)
        word = category >> 5
        if word >= cat_len:
            return np.int64(0)
        bits = cat_words[np.uint64(cat_start + word)]
        return np.int64((bits >> np.uint32(category & 31)) & np.uint32(1))
    is_nan = np.int64(value != value)
    is_zero = np.int64(abs(value) <= ZERO_THRESHOLD)
    below = np.int64(value <= threshold)
    return (
        (is_nan & (flags >> 1)) | (is_zero & (flags >> 2)) | ((1 - is_nan - is_zero) & below)
    ) & 1


@_jit()
def _tree_shap(
    X: np.ndarray,
    row: int,
    acc: np.ndarray,
    acc_at: int,
    max_quad: int,
    first: int,
    n_internal: int,
    nq: int,
    at_t: int,
    node_int: np.ndarray,
    node_real: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
    node_mask: np.ndarray,
    coef_at: np.ndarray,
    buf: np.ndarray,
) -> None:
    """Add one tree's SHAP terms for X[row] to acc[acc_at + f * max_quad + q] (feature f, lane q).

    Indices are cast to unsigned so numba skips its negative-index wraparound code.
    """
    for q in range(nq):
        buf[np.uint64(q)] = 1.0
    node_mask[np.uint64(0)] = -1
    _down_pass(
        X,
        row,
        first,
        n_internal,
        nq,
        at_t,
        node_int,
        node_real,
        cat_words,
        edge_table,
        node_mask,
        coef_at,
        buf,
    )
    _up_pass(
        acc,
        acc_at,
        max_quad,
        first,
        n_internal,
        nq,
        at_t,
        node_int,
        node_real,
        edge_table,
        coef_at,
        buf,
    )


@_jit()
def _down_pass(
    X: np.ndarray,
    row: int,
    first: int,
    n_internal: int,
    nq: int,
    at_t: int,
    node_int: np.ndarray,
    node_real: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
    node_mask: np.ndarray,
    coef_at: np.ndarray,
    buf: np.ndarray,
) -> None:
    """Down: the path product at the quadrature nodes times each edge's ratio; positions
    >= n_internal are leaves. coef_at[2k] < 0 marks a first split on the feature (its
    coefficients are computed in the up pass, -1 - coef_at[2k] = went left), otherwise
    coef_at[2k], coef_at[2k + 1] locate the tabulated coefficients."""
    r = np.uint64(row)
    at_omt = at_t + nq
    at_zero = at_t + 4 * nq
    at_one = at_t + 5 * nq
    for k in range(n_internal):
        n = np.uint64(first + k)
        flags = node_int[n, 1]
        left = _goes_left(
            X[r, np.uint64(node_int[n, 0])],
            flags,
            node_real[n, 0],
            node_int[n, 5],
            node_int[n, 6],
            cat_words,
        )
        mask = node_mask[np.uint64(k)]
        slot = (flags >> 8) & 0xFF
        pos_l = node_int[n, 2]
        pos_r = node_int[n, 3]
        node_mask[np.uint64(pos_l)] = mask & ~((1 - left) << slot)
        node_mask[np.uint64(pos_r)] = mask & ~(left << slot)
        scale_l = node_real[n, 3]
        scale_r = node_real[n, 4]
        cover_l = node_real[n, 1] * scale_l
        cover_r = node_real[n, 2] * scale_r
        if flags >> 16 == 0:
            # First split on the feature along the path: ratio z (1 - t) + o t, times the leaf
            # value when the child is a leaf.
            a_l, vec_a_l, b_l = cover_l, at_omt, scale_l * left
            a_r, vec_a_r, b_r = cover_r, at_omt, scale_r * (1 - left)
            vec_b = at_t
            coef_l = -1 - int(left)
            coef_r = 0
        elif (mask >> slot) & 1:
            # Repeated feature, still satisfied: tabulated hot/cold ratio and coefficient.
            base = node_int[n, 4]
            a_l, vec_a_l, b_l = 1.0, base + (1 - left) * 2 * nq, 0.0
            a_r, vec_a_r, b_r = 1.0, base + (2 + left) * 2 * nq, 0.0
            vec_b = at_zero
            coef_l = vec_a_l + nq
            coef_r = vec_a_r + nq
        else:
            # Already failed higher up: rescale by z_e / z_p, contribute nothing.
            a_l, vec_a_l, b_l = cover_l, at_one, 0.0
            a_r, vec_a_r, b_r = cover_r, at_one, 0.0
            vec_b = at_zero
            coef_l = at_zero
            coef_r = at_zero
        coef_at[np.uint64(2 * k)] = coef_l
        coef_at[np.uint64(2 * k + 1)] = coef_r
        src = k * nq
        dst_l = pos_l * nq
        dst_r = pos_r * nq
        for qb in range(0, nq, LANES):
            _down4(buf, dst_l + qb, buf, src + qb, edge_table, vec_a_l + qb, vec_b + qb, a_l, b_l)
            _down4(buf, dst_r + qb, buf, src + qb, edge_table, vec_a_r + qb, vec_b + qb, a_r, b_r)


@_jit()
def _up_pass(
    acc: np.ndarray,
    acc_at: int,
    max_quad: int,
    first: int,
    n_internal: int,
    nq: int,
    at_t: int,
    node_int: np.ndarray,
    node_real: np.ndarray,
    edge_table: np.ndarray,
    coef_at: np.ndarray,
    buf: np.ndarray,
) -> None:
    """Up: sum the children's leaf polynomials; each edge adds coefficient * sum to its
    feature."""
    for k in range(n_internal - 1, -1, -1):
        n = np.uint64(first + k)
        src_l = node_int[n, 2] * nq
        src_r = node_int[n, 3] * nq
        coef_l = coef_at[np.uint64(2 * k)]
        dst = k * nq
        lane = acc_at + node_int[n, 0] * max_quad
        if coef_l < 0:
            left = -1 - coef_l
            hot = src_r + left * (src_l - src_r)
            cold = src_l + left * (src_r - src_l)
            z = node_real[n, 2 - left]
            for qb in range(0, nq, LANES):
                _up_first4(
                    buf, hot + qb, cold + qb, dst + qb, edge_table, at_t + qb, nq, z, acc, lane + qb
                )
        else:
            coef_r = coef_at[np.uint64(2 * k + 1)]
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


# Rows explained together tree by tree, so a tree's nodes and table stay in L1 across rows.
BLOCK_ROWS = 16


@_jit()
def shap_rows(
    X: np.ndarray,
    out: np.ndarray,
    max_nodes: int,
    max_quad: int,
    tree_info: np.ndarray,
    node_int: np.ndarray,
    node_real: np.ndarray,
    cat_words: np.ndarray,
    edge_table: np.ndarray,
) -> None:
    """Write the SHAP values of every row of X (n_rows, n_features) into out (same shape)."""
    n_rows, n_features = X.shape
    size = 2 * max(max_nodes, 1) + 1
    node_mask = np.empty(size, dtype=np.int64)
    coef_at = np.empty(2 * size, dtype=np.int64)
    buf = np.empty(size * max_quad, dtype=np.float64)
    stride = n_features * max_quad
    acc = np.empty(min(n_rows, BLOCK_ROWS) * stride, dtype=np.float64)
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n_rows)
        acc[:] = 0.0
        for tree in range(tree_info.shape[0]):
            n_internal = tree_info[tree, 1]
            if n_internal == 0:
                continue
            for row in range(start, stop):
                _tree_shap(
                    X,
                    row,
                    acc,
                    (row - start) * stride,
                    max_quad,
                    tree_info[tree, 0],
                    n_internal,
                    tree_info[tree, 2],
                    tree_info[tree, 3],
                    node_int,
                    node_real,
                    cat_words,
                    edge_table,
                    node_mask,
                    coef_at,
                    buf,
                )
        for row in range(start, stop):
            at = (row - start) * stride
            for f in range(n_features):
                total = 0.0
                for q in range(max_quad):
                    total += acc[at + f * max_quad + q]
                out[row, f] = total


@_jit()
def predict_rows(
    X: np.ndarray,
    out: np.ndarray,
    tree_info: np.ndarray,
    tree_leaf_start: np.ndarray,
    node_int: np.ndarray,
    node_real: np.ndarray,
    cat_words: np.ndarray,
    leaf_value: np.ndarray,
) -> None:
    """Write the raw margin of every row of X into out (n_rows,), summing trees in order."""
    for row in range(X.shape[0]):
        x = X[row]
        total = 0.0
        for tree in range(tree_info.shape[0]):
            first = tree_info[tree, 0]
            n_internal = tree_info[tree, 1]
            pos = 0
            while pos < n_internal:
                n = first + pos
                left = _goes_left(
                    x[node_int[n, 0]],
                    node_int[n, 1],
                    node_real[n, 0],
                    node_int[n, 5],
                    node_int[n, 6],
                    cat_words,
                )
                pos = node_int[n, 2] if left else node_int[n, 3]
            total += leaf_value[tree_leaf_start[tree] + pos - n_internal]
        out[row] = total


@_jit()
def top_k_rows(
    values: np.ndarray, k: int, by_abs: bool, out_index: np.ndarray, out_value: np.ndarray
) -> None:
    """Each row's k largest values (by |value| when by_abs), strongest first, ties to lower index.

    Insertion into a sorted list of k per row: O(n_features * k), no full sort.
    """
    n_features = values.shape[1]
    for row in range(values.shape[0]):
        filled = 0
        for f in range(n_features):
            value = values[row, f]
            key = abs(value) if by_abs else value
            # Position after every kept entry with a key >= this one (earlier index wins ties).
            pos = filled
            while pos > 0:
                kept = out_value[row, pos - 1]
                if (abs(kept) if by_abs else kept) >= key:
                    break
                pos -= 1
            if pos >= k:
                continue
            end = min(filled, k - 1)
            for j in range(end, pos, -1):
                out_index[row, j] = out_index[row, j - 1]
                out_value[row, j] = out_value[row, j - 1]
            out_index[row, pos] = f
            out_value[row, pos] = value
            filled = min(filled + 1, k)
