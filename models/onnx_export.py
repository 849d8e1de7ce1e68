"""LightGBM booster -> ONNX graph with double-precision splits and leaves.

onnxmltools converts the booster to an `ai.onnx.ml` TreeEnsembleClassifier, but stores split
thresholds and leaf values as float32 attributes and takes float32 input. LightGBM compares
float64 features against float64 thresholds, so a value between float32(t) and t is routed
differently and parity breaks near a split. We therefore walk the onnxmltools graph and the
booster's own dump side by side, check that they describe the same trees (features, split
kinds, category sets, missing-value directions), and emit the same trees as one `ai.onnx.ml`
opset-5 `TreeEnsemble` node with float64 input, splits, leaf weights and output. Categorical
splits become `BRANCH_MEMBER` nodes (onnxmltools unrolls them into chains of `BRANCH_EQ`).

The graph maps `features` (float64, rows x features) to `raw_score` (float64, rows x 1), the
booster's raw margin; calibration is applied outside the graph.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

logger = logging.getLogger(__name__)

INPUT_NAME = "features"
OUTPUT_NAME = "raw_score"
_ONNX_OPSET = 21
_ML_OPSET = 5
_IR_VERSION = 10

# ai.onnx.ml TreeEnsemble (opset 5) node modes.
_MODE_LEQ = 0
_MODE_LT = 1
_MODE_MEMBER = 6
#: LightGBM's kZeroThreshold (1e-35f): before predicting, LightGBM turns every input value with
#: |x| <= this into 0.0, which moves the boundary of splits whose threshold lies near zero.
K_ZERO_THRESHOLD = float(np.float32(1e-35))
#: LightGBM's JSON dump writes an infinite threshold as +-1e300 (Common::AvoidInf) while the
#: booster compares against inf: a split "every number left, NaN right" has threshold inf.
DUMP_INF_THRESHOLD = 1e300


class ExportError(ValueError):
    """The booster cannot be exported faithfully; the message says why and what to change."""


@dataclass
class _Ensemble:
    """Attribute arrays of a v5 TreeEnsemble under construction."""

    featureids: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    truenodeids: list[int] = field(default_factory=list)
    trueleafs: list[int] = field(default_factory=list)
    falsenodeids: list[int] = field(default_factory=list)
    falseleafs: list[int] = field(default_factory=list)
    missing_tracks_true: list[int] = field(default_factory=list)
    membership: list[float] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)
    tree_roots: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _OnnxNode:
    mode: str
    feature: int
    value: float
    true_id: int
    false_id: int
    missing_tracks_true: int


def booster_to_onnx(booster: Any, *, feature_names: Sequence[str]) -> onnx.ModelProto:
    """Convert a binary LightGBM booster to a float64 ONNX graph `features -> raw_score`."""
    dump = booster.dump_model()
    _check_booster(dump, feature_names)
    reference = _onnxmltools_trees(booster, n_features=len(feature_names))
    ensemble = _Ensemble()
    for tree_index, tree in enumerate(dump["tree_info"]):
        _add_tree(ensemble, tree["tree_structure"], reference.get(tree_index, {}), tree_index)
    return _compute_model(ensemble, feature_names=feature_names)


def _check_booster(dump: Mapping[str, Any], feature_names: Sequence[str]) -> None:
    objective = str(dump.get("objective", ""))
    if not objective.startswith(("binary", "cross_entropy")):
        raise ExportError(f"only binary boosters can be exported; objective is {objective!r}")
    if dump.get("num_tree_per_iteration", 1) != 1:
        raise ExportError("only one tree per iteration (binary objective) is supported")
    names = list(dump.get("feature_names", []))
    if names != list(feature_names):
        raise ExportError(
            f"booster features {names} do not match the declared model inputs "
            f"{list(feature_names)}; train on FeatureEncoder.transform output with "
            "feature_name=encoder.feature_names_"
        )
    if dump.get("average_output"):
        raise ExportError("random-forest boosters (average_output) are not supported")


def _onnxmltools_trees(booster: Any, *, n_features: int) -> dict[int, dict[int, _OnnxNode]]:
    """The onnxmltools conversion of `booster`, as tree index -> node id -> node."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    converted = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    nodes = [n for n in converted.graph.node if n.op_type == "TreeEnsembleClassifier"]
    if len(nodes) != 1:
        raise ExportError(f"onnxmltools produced {len(nodes)} tree ensemble nodes, expected 1")
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    trees: dict[int, dict[int, _OnnxNode]] = {}
    for i, tree_id in enumerate(attrs["nodes_treeids"]):
        mode = attrs["nodes_modes"][i]
        trees.setdefault(int(tree_id), {})[int(attrs["nodes_nodeids"][i])] = _OnnxNode(
            mode=mode.decode() if isinstance(mode, bytes) else str(mode),
            feature=int(attrs["nodes_featureids"][i]),
            value=float(attrs["nodes_values"][i]),
            true_id=int(attrs["nodes_truenodeids"][i]),
            false_id=int(attrs["nodes_falsenodeids"][i]),
            missing_tracks_true=int(attrs["nodes_missing_value_tracks_true"][i]),
        )
    return trees


def _add_tree(
    ensemble: _Ensemble, root: Mapping[str, Any], reference: Mapping[int, _OnnxNode], index: int
) -> None:
    if "leaf_value" in root:
        # A constant tree: v5 needs an interior root, so route both branches to the leaf.
        leaf = _add_leaf(ensemble, float(root["leaf_value"]))
        ensemble.tree_roots.append(len(ensemble.modes))
        _append_node(ensemble, 0, _MODE_LEQ, 0.0, 1, (leaf, 1), (leaf, 1))
        return
    ensemble.tree_roots.append(len(ensemble.modes))
    _add_split(ensemble, root, reference, onnx_id=0, where=f"tree {index}")


def _add_split(
    ensemble: _Ensemble,
    node: Mapping[str, Any],
    reference: Mapping[int, _OnnxNode],
    *,
    onnx_id: int,
    where: str,
) -> int:
    """Append the subtree at `node`; returns the index of its root in the node arrays."""
    ref = reference.get(onnx_id)
    if ref is None:
        raise ExportError(f"{where}: onnxmltools graph has no node {onnx_id}")
    feature = int(node["split_feature"])
    missing_type = str(node.get("missing_type", "None"))
    if missing_type == "Zero":
        raise ExportError(
            f"{where}: split on feature {feature} treats zero as missing; train with "
            "zero_as_missing=false (the default) so missing values are NaN"
        )
    if ref.feature != feature:
        raise ExportError(f"{where}: onnxmltools split feature {ref.feature} != {feature}")
    decision = str(node["decision_type"])
    if decision == "<=":
        threshold = float(node["threshold"])
        if ref.mode != "BRANCH_LEQ" or not _same_float32(threshold, ref.value):
            raise ExportError(f"{where}: onnxmltools node {onnx_id} does not match split")
        tracks = _numeric_missing_left(node, threshold)
        if tracks != ref.missing_tracks_true:
            # onnxmltools sends NaN down the false branch when default_left is false even if
            # LightGBM (missing_type None) compares it as 0.0; follow LightGBM.
            logger.debug("%s: missing direction differs from onnxmltools; using LightGBM's", where)
        mode, split = _numeric_split(threshold)
        false_ref = ref.false_id
        members: list[float] = []
    elif decision == "==":
        members = [float(v) for v in str(node["threshold"]).split("||")]
        false_ref = onnx_id
        for k, value in enumerate(members):
            link = reference.get(false_ref)
            if (
                link is None
                or link.mode != "BRANCH_EQ"
                or link.feature != feature
                or not _same_float32(value, link.value)
                or link.true_id != ref.true_id
            ):
                raise ExportError(f"{where}: onnxmltools category chain differs at member {k}")
            false_ref = link.false_id
        # LightGBM sends NaN, negative and unseen categories to the right child.
        tracks, mode, split = 0, _MODE_MEMBER, math.nan
    else:
        raise ExportError(f"{where}: unsupported decision type {decision!r}")

    position = len(ensemble.modes)
    _append_node(ensemble, feature, mode, split, tracks, (0, 0), (0, 0))
    if members:
        if ensemble.membership:
            ensemble.membership.append(math.nan)
        ensemble.membership.extend(members)
    left = _add_child(
        ensemble, node["left_child"], reference, onnx_id=ref.true_id, where=where + "L"
    )
    right = _add_child(
        ensemble, node["right_child"], reference, onnx_id=false_ref, where=where + "R"
    )
    ensemble.truenodeids[position], ensemble.trueleafs[position] = left
    ensemble.falsenodeids[position], ensemble.falseleafs[position] = right
    return position


def _add_child(
    ensemble: _Ensemble,
    node: Mapping[str, Any],
    reference: Mapping[int, _OnnxNode],
    *,
    onnx_id: int,
    where: str,
) -> tuple[int, int]:
    if "leaf_value" in node:
        ref = reference.get(onnx_id)
        value = float(node["leaf_value"])
        if ref is None or ref.mode != "LEAF":
            raise ExportError(f"{where}: onnxmltools node {onnx_id} should be a leaf")
        return _add_leaf(ensemble, value), 1
    return _add_split(ensemble, node, reference, onnx_id=onnx_id, where=where), 0


def _numeric_split(threshold: float) -> tuple[int, float]:
    """Mode and split value reproducing LightGBM's `x' <= threshold` on raw input x.

    LightGBM compares x' = 0 if |x| <= K else x (K = kZeroThreshold). For thresholds outside
    [-K, K) that equals x <= threshold. For -K <= t < 0 it is x < -K, for 0 <= t < K it is
    x <= K (values within K of zero count as zero). A dumped +-1e300 is the booster's +-inf.
    """
    if abs(threshold) >= DUMP_INF_THRESHOLD:
        # The dump's +-1e300 stands for +-inf: x = 1e301 or inf must still go left of +inf.
        return _MODE_LEQ, math.copysign(math.inf, threshold)
    if -K_ZERO_THRESHOLD <= threshold < 0.0:
        return _MODE_LT, -K_ZERO_THRESHOLD
    if 0.0 <= threshold < K_ZERO_THRESHOLD:
        return _MODE_LEQ, K_ZERO_THRESHOLD
    return _MODE_LEQ, threshold


def _same_float32(a: float, b: float) -> bool:
    """Whether two values round to the same float32 (onnxmltools stores float32)."""
    with np.errstate(over="ignore"):
        return bool(np.float32(a) == np.float32(b))


def _numeric_missing_left(node: Mapping[str, Any], threshold: float) -> int:
    """Whether LightGBM sends NaN left at a numeric split."""
    if str(node.get("missing_type", "None")) == "NaN":
        return int(bool(node["default_left"]))
    # missing_type None: LightGBM replaces NaN by 0.0 before comparing.
    return int(0.0 <= threshold)


def _add_leaf(ensemble: _Ensemble, value: float) -> int:
    ensemble.leaf_weights.append(value)
    return len(ensemble.leaf_weights) - 1


def _append_node(
    ensemble: _Ensemble,
    feature: int,
    mode: int,
    split: float,
    tracks: int,
    true: tuple[int, int],
    false: tuple[int, int],
) -> None:
    ensemble.featureids.append(feature)
    ensemble.modes.append(mode)
    ensemble.splits.append(split)
    ensemble.missing_tracks_true.append(tracks)
    ensemble.truenodeids.append(true[0])
    ensemble.trueleafs.append(true[1])
    ensemble.falsenodeids.append(false[0])
    ensemble.falseleafs.append(false[1])


def _compute_model(ensemble: _Ensemble, *, feature_names: Sequence[str]) -> onnx.ModelProto:
    import onnxmltools

    attributes: dict[str, Any] = {
        "n_targets": 1,
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE: the graph outputs the raw margin
        "tree_roots": ensemble.tree_roots,
        "nodes_featureids": ensemble.featureids,
        "nodes_modes": numpy_helper.from_array(np.asarray(ensemble.modes, np.uint8), "modes"),
        "nodes_splits": numpy_helper.from_array(np.asarray(ensemble.splits, np.float64), "s"),
        "nodes_truenodeids": ensemble.truenodeids,
        "nodes_trueleafs": ensemble.trueleafs,
        "nodes_falsenodeids": ensemble.falsenodeids,
        "nodes_falseleafs": ensemble.falseleafs,
        "nodes_missing_value_tracks_true": ensemble.missing_tracks_true,
        "leaf_targetids": [0] * len(ensemble.leaf_weights),
        "leaf_weights": numpy_helper.from_array(np.asarray(ensemble.leaf_weights, np.float64), "w"),
    }
    if ensemble.membership:
        attributes["membership_values"] = numpy_helper.from_array(
            np.asarray(ensemble.membership, np.float64), "members"
        )
    node = helper.make_node(
        "TreeEnsemble", [INPUT_NAME], [OUTPUT_NAME], domain="ai.onnx.ml", **attributes
    )
    graph = helper.make_graph(
        [node],
        "govrisk_lightgbm",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, len(feature_names)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", _ONNX_OPSET),
            helper.make_opsetid("ai.onnx.ml", _ML_OPSET),
        ],
        producer_name="govrisk",
        producer_version=f"onnxmltools {onnxmltools.__version__} + float64 TreeEnsemble",
    )
    model.ir_version = _IR_VERSION
    helper.set_model_props(model, {"feature_names": ",".join(feature_names)})
    onnx.checker.check_model(model, full_check=True)
    return model
