"""Model cards: one Markdown page per trained target saying what it is, how good and where not."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.evaluate import METRICS
from training.fit import FittedTarget
from training.spec import ANY, ExperimentSpec


@dataclass(frozen=True)
class CardContext:
    """What the card reports besides the fitted model itself."""

    spec: ExperimentSpec
    model_name: str
    run_id: str
    holdout: pd.DataFrame
    out_of_fold: pd.DataFrame
    dataset_digest: str
    feature_set_versions: Mapping[str, str] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)
    champion: pd.DataFrame | None = None
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        if float(value).is_integer() and abs(float(value)) >= 1:
            return f"{int(value)}"
        return f"{value:.3f}"
    return str(value)


def _table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _target_text(policy: str, any_target: str) -> str:
    if policy == ANY and any_target == "judged":
        return (
            "any-violation: 1 when a moderator found the item violating on at least one policy "
            "it was judged on, 0 when every judged policy was found not violating"
        )
    if policy == ANY:
        return (
            "any-violation: 1 when a moderator found the item violating on at least one policy, "
            "0 when it was found clean on every policy; an item found clean on only some "
            "policies gets its expected label, the probability that it violates one of the "
            "others according to the per-policy models"
        )
    return f"moderator verdict on policy `{policy}` (1 = violating)"


def render_skipped(
    spec: ExperimentSpec,
    *,
    model_name: str,
    run_id: str,
    entity: str,
    policy: str,
    reason: str,
    n_labels: int,
    n_positive: int,
) -> str:
    """The Markdown card of a target that was not trained: why, and what would change that."""
    lines = [
        f"# Model card: {model_name} (not trained)",
        "",
        f"Target **{policy}** for **{entity}** items, spec `{spec.name}`, MLflow run `{run_id}`.",
        "",
        "## Why no model",
        "",
        f"Skipped: {reason}.",
        "",
        f"- Labels: {n_labels:,}, of which {n_positive:,} violating (all weeks).",
        f"- The bar: `labels.min_positives` = {spec.labels.min_positives} violating labels "
        "before the holdout, so that early stopping, out-of-fold calibration and the holdout "
        "metrics rest on enough positives. It is not lowered silently: change it in the spec.",
        "- No version was registered; the current champion of this name, if any, is unchanged.",
    ]
    if policy != ANY and spec.labels.any_target == "imputed" and n_labels:
        lines.append(
            f"- An {entity} any-violation model trained by this spec still counts this "
            "policy's violating labels; for items not judged on it, it uses the policy's "
            "label rate before the holdout instead of a per-policy model."
        )
    lines += [
        "",
        "## To train it",
        "",
        "Route more audit labels to this policy (the review queue or a targeted audit), or "
        "widen the labeled period; rerun the spec when the bar is met.",
    ]
    return "\n".join(lines) + "\n"


def render(fit: FittedTarget, ctx: CardContext) -> str:
    """The Markdown model card."""
    ts = fit.training_set
    lines = [
        f"# Model card: {ctx.model_name}",
        "",
        f"Risk model for **{ts.entity.value}** items, target **{ts.policy}**. Trained by spec "
        f"`{ctx.spec.name}`, MLflow run `{ctx.run_id}`.",
        "",
        "## Intended use",
        "",
        "Ranks and scores items by the calibrated probability that a moderator would find them "
        "violating, for audits, review queues and model-score gates in strategies. It is not a "
        "decision by itself: route high scores to review or to a strategy with an owner.",
        "",
        *_data_section(fit, ctx),
        *_model_section(fit, ctx),
        *_metrics_section(ctx),
        *_champion_section(ctx),
        *_caveats_section(fit, ctx.spec),
    ]
    return "\n".join(lines) + "\n"


def _split_table(fit: FittedTarget) -> pd.DataFrame:
    """Labels, violating labels and review dates of the train, validation and holdout weeks."""
    ts = fit.training_set
    meta = ts.meta
    parts = fit.split.part()
    split_rows = []
    for part in ("train", "validation", "test"):
        m = parts == part
        times = meta.loc[m, "reviewed_at"]
        split_rows.append(
            {
                "split": "holdout" if part == "test" else part,
                "labels": int(m.sum()),
                "violating": round(float(ts.y[m].sum()), 1),
                "from": str(times.min())[:10] if m.any() else "–",
                "to": str(times.max())[:10] if m.any() else "–",
            }
        )
    return pd.DataFrame(split_rows)


def _sampling_table(fit: FittedTarget) -> pd.DataFrame:
    """Label count and mean weight per sampling route."""
    ts = fit.training_set
    return (
        ts.meta.assign(w=ts.weight)
        .groupby("sampling")
        .agg(labels=("w", "size"), mean_weight=("w", "mean"))
        .reset_index()
    )


def _data_section(fit: FittedTarget, ctx: CardContext) -> list[str]:
    """## Data: target, labels, features, weights, splits, sampling routes, dropped labels."""
    ts = fit.training_set
    spec = ctx.spec
    lines = [
        "## Data",
        "",
        f"- Target: {_target_text(ts.policy, spec.labels.any_target)}.",
        "- Labels: moderator audit labels (`audit_labels`), never strategy decisions; reviews of "
        f"the same item and policy collapsed by `{spec.labels.dedupe}`.",
        "- Features: as of the start of the UTC "
        f"{spec.labels.feature_cutoff} of each review, built from data strictly before it.",
        f"- Weights: `{spec.labels.weighting}` (1 / inclusion probability, mean 1)"
        + (f", capped at {spec.labels.max_weight}" if spec.labels.max_weight else "")
        + ".",
        f"- Dataset digest: `{ctx.dataset_digest}`.",
        *(f"- {note}" for note in ctx.notes),
        "",
        _table(_split_table(fit)),
        "",
        "Labels by sampling route:",
        "",
        _table(_sampling_table(fit)),
        "",
    ]
    if ctx.dropped:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(ctx.dropped.items()))
        lines += [
            f"Labels dropped before training ({ts.entity.value}, all targets): {dropped}.",
            "",
        ]
    return lines


def _model_section(fit: FittedTarget, ctx: CardContext) -> list[str]:
    """## Model: trees, features, calibration, key parameters and feature set versions."""
    categorical = fit.encoder.categorical
    lines = [
        "## Model",
        "",
        f"- LightGBM, {fit.best_iteration} trees (early stopping on the validation weeks), "
        f"{len(fit.feature_names)} features ({len(categorical)} categorical passed as LightGBM "
        "categoricals).",
        f"- Calibration: {fit.calibration_method}, fitted on the training period's out-of-fold "
        "margins.",
        "- Key parameters: "
        + ", ".join(
            f"{k}={fit.params[k]}"
            for k in (
                "learning_rate",
                "num_leaves",
                "min_data_in_leaf",
                "feature_fraction",
                "lambda_l2",
                "seed",
            )
            if k in fit.params
        )
        + ".",
    ]
    if ctx.feature_set_versions:
        versions = ", ".join(f"{k} v{v}" for k, v in sorted(ctx.feature_set_versions.items()))
        lines.append(f"- Feature sets: {versions}.")
    return lines


def _metrics_section(ctx: CardContext) -> list[str]:
    """## Metrics (overall, holdout and out of fold) and ## Slices (holdout)."""
    spec = ctx.spec
    metric_cols = [*METRICS, "n", "n_positive"]
    overall = pd.concat(
        [
            ctx.holdout.loc[ctx.holdout["slice"] == "overall", metric_cols].assign(
                evaluation="holdout (registered model)"
            ),
            ctx.out_of_fold.loc[ctx.out_of_fold["slice"] == "overall", metric_cols].assign(
                evaluation="out-of-fold, training period"
            ),
        ]
    )[["evaluation", *metric_cols]]
    slices = ctx.holdout.loc[ctx.holdout["slice"] != "overall", ["slice", *metric_cols]]
    return [
        "",
        "## Metrics",
        "",
        "Weighted by inverse inclusion probability, so they estimate performance on the "
        "population the audits sample from. Holdout = the last "
        f"{spec.split.test_weeks} week(s) of reviews.",
        "",
        _table(overall),
        "",
        "## Slices (holdout)",
        "",
        f"Slices with fewer than {spec.slices.min_labels} labels show counts only.",
        "",
        _table(slices) if not slices.empty else "_No slices._",
        "",
    ]


def _champion_section(ctx: CardContext) -> list[str]:
    """The champion comparison on this holdout, when there is a champion."""
    if ctx.champion is None or ctx.champion.empty:
        return []
    return [
        f"## Against the current champion (version {ctx.champion_version})",
        "",
        "Both models scored on this run's holdout.",
        "",
        _table(ctx.champion),
        "",
    ]


def _caveats_section(fit: FittedTarget, spec: ExperimentSpec) -> list[str]:
    """## Caveats: label noise, small slices, feature cutoff, CV leakage, target specifics."""
    policy = fit.training_set.policy
    lines = [
        "## Caveats",
        "",
        "- Labels carry reviewer noise; metrics measure agreement with moderators, not truth.",
        "- Holdout metrics on small slices are noisy; read them with their label counts.",
        "- Items created after their review's feature cutoff have no features yet and are not in "
        "training or evaluation.",
        "- Out-of-fold predictions of the training period come from models that saw later weeks "
        "(blocked cross-validation); only the holdout is strictly forward in time.",
    ]
    if policy == ANY and spec.labels.any_target == "judged":
        lines.append(
            "- An item judged on only some policies counts as not violating when those were "
            "clean; violations of unjudged policies are invisible to this target."
        )
    elif policy == ANY:
        lines.append(
            "- Expected labels of partially judged items come from the per-policy models and "
            "inherit their errors; holdout metrics count those items fractionally."
        )
    if spec.slices.new_categories is None:
        lines.append(
            "- Newly launched categories are detected as those whose first listing appears "
            f"more than {spec.slices.new_category_after_days:g} days after the data starts."
        )
    return lines
