"""Planted defects: found among the top slices of their strategy?"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.population import Population


def defects_found(
    defects: Mapping[str, Any],
    slices: pd.DataFrame,
    frames: Mapping[Entity, pd.DataFrame],
    items: pd.DataFrame,
    *,
    populations: Mapping[tuple[Entity, Policy], Population] | None = None,
    top: int = 3,
    min_overlap: float = 0.5,
) -> pd.DataFrame:
    """For each planted defect: is one of its strategy's top slices (of the defect's error
    kind) mostly inside the defect's slice?

    The overlap is the share of the found slice's error rows inside the defect slice: with
    `populations`, among the items the strategy actioned (FP defects) or did not action (FN
    defects), as the slice search saw them; otherwise among all items of the frame. A slice
    finds the defect when its overlap is at least `min_overlap` and it removes at least half
    of the rows outside the defect (overlap >= base + (1 - base) / 2, base = the defect's
    share of all those rows), so a defect covering most of a strategy's rows is not found by
    any slice at all.
    """
    from governance.evaluator import evaluate_condition
    from governance.strategy import AllOf, Predicate

    rows = []
    for d in defects.get("planted", []):
        entity = Entity(d["entity"])
        frame = frames.get(entity)
        ref = d["strategy"] or "*"
        kind = d["effect"]
        cand = (
            slices[
                (slices["strategy"] == ref)
                & (slices["error_kind"] == kind)
                & (slices["policy"] == d["policy"])
                & (slices["entity"] == d["entity"])
            ]
            .sort_values("rank")
            .head(top)
        )
        best, best_desc, base = 0.0, "", 0.0
        if frame is not None and len(cand):
            in_defect = evaluate_condition(
                AllOf(all=tuple(Predicate.model_validate(p) for p in d["slice"])), frame
            )
            period = d.get("period") or {}
            if period.get("from"):
                created = (
                    items[items["entity"] == entity.value]
                    .set_index("item_id")["created_at"]
                    .reindex(frame["item_id"].astype(str))
                    .to_numpy()
                )
                in_defect &= created >= np.datetime64(pd.Timestamp(period["from"]))
            rows_of_kind = _error_rows(populations, d, ref, kind, frame)
            base = float((in_defect & rows_of_kind).sum() / max(rows_of_kind.sum(), 1))
            for _, s in cand.iterrows():
                preds = [p for p in json.loads(s["predicates"]) if "feature" in p]
                chans = [p["channel"] for p in json.loads(s["predicates"]) if "channel" in p]
                if chans and not set(chans) & set(d.get("channels", [])):
                    continue
                if preds:
                    mask = evaluate_condition(
                        AllOf(all=tuple(Predicate.model_validate(p) for p in preds)), frame
                    )
                else:
                    mask = np.ones(len(frame), dtype=bool)
                mask &= rows_of_kind
                share = float((mask & in_defect).sum() / max(mask.sum(), 1))
                if share > best:
                    best, best_desc = share, str(s["description"])
        rows.append(
            {
                "defect": d["id"],
                "strategy": ref,
                "effect": kind,
                "best_overlap": best,
                "base_share": base,
                "found": best >= max(min_overlap, base + (1.0 - base) / 2),
                "slice": best_desc,
            }
        )
    return pd.DataFrame(rows)


def _error_rows(
    populations: Mapping[tuple[Entity, Policy], Population] | None,
    defect: Mapping[str, Any],
    ref: str,
    kind: str,
    frame: pd.DataFrame,
) -> np.ndarray:
    if populations is None:
        return np.ones(len(frame), dtype=bool)
    pop = populations.get((Entity(defect["entity"]), Policy(defect["policy"])))
    if pop is None:
        return np.ones(len(frame), dtype=bool)
    act = pop.any_actioned if ref == "*" else pop.actioned.get(ref)
    if act is None:
        return np.ones(len(frame), dtype=bool)
    hit = np.asarray(act.any(axis=1), dtype=bool)
    rows = hit if kind == "fp" else ~hit
    pos = pd.Index(pop.item_ids.astype(str)).get_indexer(pd.Index(frame["item_id"].astype(str)))
    out = np.zeros(len(frame), dtype=bool)
    ok = pos >= 0
    out[ok] = rows[pos[ok]]
    return out
