"""Registry client: one registered model per entity and policy, `challenger` and `champion` aliases.

Every trained version is registered and takes the `challenger` alias. `promote(name)` moves
`champion` to the challenger only if it passes the gate:

- it ranks better than chance on its holdout (the lower bound of its ROC-AUC's 95% interval
  is above 0.5), which a first version needs too, having no champion to beat;
- its holdout PR-AUC beats the champion's by more than `min_gain`, and
- no slice's PR-AUC is worse than the champion's by more than `slice_margin`.

When the challenger's training run scored the then-champion on the same holdout (metrics
`champion__*`, tag `govrisk.champion_evaluated_version`), the gate compares those like for like;
otherwise it falls back to each model's own holdout metrics and says so. Every decision is
recorded as tags on the challenger version and as a run in the `govrisk-promotions` experiment
holding the comparison table.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.calibration import Calibration
from models.encoding import FeatureEncoder

if TYPE_CHECKING:
    import lightgbm as lgb
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
#: MLflow's default local store, used when neither --tracking-uri nor MLFLOW_TRACKING_URI is set.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Experiment that records promotion decisions.
PROMOTIONS_EXPERIMENT = "govrisk-promotions"
#: Gate defaults when neither the caller nor the version's tags give one.
DEFAULT_SLICE_MARGIN = 0.02
DEFAULT_MIN_GAIN = 0.0
#: Run artifact folder holding the plain model files (LightGBM text, encoder, calibration).
RUN_MODEL_DIR = "govrisk"
MODEL_TEXT_FILE = "model.txt"
ENCODER_FILE = "encoder.json"
CALIBRATION_FILE = "calibration.json"
#: Tags on runs and model versions.
TAG_ENTITY = "govrisk.entity"
TAG_POLICY = "govrisk.policy"
TAG_GATE_SLICE_MARGIN = "govrisk.gate.slice_margin"
TAG_GATE_MIN_GAIN = "govrisk.gate.min_pr_auc_gain"
TAG_CHAMPION_EVALUATED = "govrisk.champion_evaluated_version"
#: Metric-name prefix of the champion scored on the challenger's holdout.
CHAMPION_PREFIX = "champion__"
GATE_METRIC = "pr_auc"
#: The chance check: holdout ROC-AUC, its label counts and the interval's confidence.
CHANCE_METRIC = "roc_auc"
CHANCE_CONFIDENCE = 0.95
SLICE_SEP = "__slice__"


class RegistryError(RuntimeError):
    """A registry operation that cannot proceed; the message says what is missing."""


class NoChallengerError(RegistryError):
    """The registered model has no challenger to promote (training skipped or never ran)."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: `uri`, else MLFLOW_TRACKING_URI, else the local `sqlite:///mlflow.db`.

    `postgresql://` URIs use the installed psycopg 3 driver when psycopg2 is absent.
    """
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if chosen.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        chosen = "postgresql+psycopg://" + chosen[len("postgresql://") :]
    return chosen


def use_tracking_uri(uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at the resolved URI; returns it."""
    import mlflow

    resolved = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    return resolved


def use_existing_tracking_store(uri: str | None = None) -> str:
    """`use_tracking_uri` for commands that only read: a SQLite store must already exist.

    MLflow would otherwise create an empty `mlflow.db` wherever the command runs and then
    report the model as missing.
    """
    resolved = resolve_tracking_uri(uri)
    path = sqlite_store_path(resolved) or _local_store_path(resolved)
    if path is not None and not path.exists():
        raise RegistryError(
            f"no MLflow tracking store at {path}: pass --tracking-uri (or set "
            "MLFLOW_TRACKING_URI) to the store `govrisk train` wrote, e.g. "
            "sqlite:///demo-output/mlflow.db"
        )
    return use_tracking_uri(resolved)


def _local_store_path(uri: str) -> Path | None:
    """The folder of a file-store URI (`./mlruns`, `file:///x/mlruns`); None for servers."""
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:").removeprefix("//"))
    if ":" in uri or "/" not in uri:  # a scheme (sqlite:, http:) or a name (databricks)
        return None
    return Path(uri)


def sqlite_store_path(uri: str) -> Path | None:
    """The file of a `sqlite:///` tracking URI (None for other stores and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix + ":memory:":
        return None
    return Path(uri[len(prefix) :])


def model_name(entity: str, policy: str, *, prefix: str = "govrisk") -> str:
    """Registered model name of a target, e.g. `govrisk-listing-counterfeit`."""
    return f"{prefix}-{entity}-{policy}".replace("_", "-")


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def register_version(
    model_uri: str,
    *,
    name: str,
    run_id: str,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    client: MlflowClient | None = None,
) -> ModelVersion:
    """Register `model_uri` as a new version of `name` and point `challenger` at it."""
    from mlflow.exceptions import MlflowException

    c = client or _client()
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(
            name, description=f"govrisk risk model {name}; aliases champion and challenger."
        )
    version = c.create_model_version(
        name,
        source=model_uri,
        run_id=run_id,
        tags={k: str(v) for k, v in (tags or {}).items()},
        description=description,
    )
    c.set_registered_model_alias(name, CHALLENGER, version.version)
    return c.get_model_version(name, version.version)


def version_for_alias(
    name: str, alias: str, *, client: MlflowClient | None = None
) -> ModelVersion | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    c = client or _client()
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@dataclass(frozen=True)
class ComparisonRow:
    """One check of the promotion gate."""

    check: str
    champion: float
    challenger: float
    delta: float
    rule: str
    passed: bool | None


@dataclass(frozen=True)
class PromotionDecision:
    """What `promote` decided and why, with the comparison table."""

    name: str
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    basis: str
    min_gain: float
    slice_margin: float
    rows: list[ComparisonRow] = field(default_factory=list)
    decided_at: str = ""
    log_run_id: str | None = None

    def table(self) -> pd.DataFrame:
        """The comparison as a frame: check, champion, challenger, delta, rule, passed."""
        columns = ["check", "champion", "challenger", "delta", "rule", "passed"]
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["rows"] = [asdict(r) for r in self.rows]
        return out


def compare(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    min_gain: float = DEFAULT_MIN_GAIN,
    slice_margin: float = DEFAULT_SLICE_MARGIN,
    metric: str = GATE_METRIC,
) -> tuple[bool, list[ComparisonRow], str]:
    """Apply the gate to two metric dicts (MLflow names); returns (passed, rows, reason)."""
    rows: list[ComparisonRow] = []
    nan = math.nan
    ch = challenger.get(metric, nan)
    cp = champion.get(metric, nan)
    overall_ok = not (math.isnan(ch) or math.isnan(cp)) and ch > cp + min_gain
    rows.append(
        ComparisonRow(metric, cp, ch, ch - cp, f"challenger > champion + {min_gain:g}", overall_ok)
    )
    prefix = f"{metric}{SLICE_SEP}"
    worse: list[str] = []
    for key in sorted(set(challenger) | set(champion)):
        if not key.startswith(prefix):
            continue
        ch_s = challenger.get(key, nan)
        cp_s = champion.get(key, nan)
        if math.isnan(ch_s) or math.isnan(cp_s):
            rows.append(
                ComparisonRow(key, cp_s, ch_s, nan, "not compared (missing on one side)", None)
            )
            continue
        ok = ch_s >= cp_s - slice_margin
        if not ok:
            worse.append(key[len(prefix) :])
        rows.append(
            ComparisonRow(
                key, cp_s, ch_s, ch_s - cp_s, f"challenger >= champion - {slice_margin:g}", ok
            )
        )
    if not overall_ok:
        if math.isnan(ch) or math.isnan(cp):
            reason = f"{metric} missing for the challenger or the champion"
        else:
            reason = f"{metric} {ch:.4f} does not beat the champion's {cp:.4f} by > {min_gain:g}"
    elif worse:
        reason = f"slice(s) worse by more than {slice_margin:g}: {', '.join(worse)}"
    else:
        reason = f"{metric} {ch:.4f} beats {cp:.4f} and no slice is worse by > {slice_margin:g}"
    return overall_ok and not worse, rows, reason


def auc_lower_bound(auc: float, n_positive: float, n_negative: float, confidence: float) -> float:
    """Lower bound of a ROC-AUC's two-sided interval from its standard error under Hanley and
    McNeil (1982), which needs only the AUC and the two classes' counts."""
    from scipy.stats import norm

    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (
        auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)
    ) / (n_positive * n_negative)
    return float(auc - norm.ppf(0.5 + confidence / 2) * math.sqrt(max(var, 0.0)))


def chance_check(
    metrics: Mapping[str, float], *, confidence: float = CHANCE_CONFIDENCE
) -> ComparisonRow:
    """Whether a model's holdout ROC-AUC is above chance (0.5) with `confidence`; `passed` is
    None when the run did not log the AUC or its label counts (not checked)."""
    auc = metrics.get(CHANCE_METRIC, math.nan)
    n, n_pos = metrics.get("n", math.nan), metrics.get("n_positive", math.nan)
    check = f"{CHANCE_METRIC} above chance"
    if any(math.isnan(v) for v in (auc, n, n_pos)) or n_pos < 1 or n - n_pos < 1:
        return ComparisonRow(check, 0.5, auc, math.nan, "not checked (AUC or counts missing)", None)
    low = auc_lower_bound(auc, n_pos, n - n_pos, confidence)
    rule = f"{confidence:.0%} lower bound {low:.3f} > 0.5"
    return ComparisonRow(check, 0.5, auc, low - 0.5, rule, low > 0.5)


def _run_metrics(run_id: str | None, client: MlflowClient) -> dict[str, float]:
    if not run_id:
        return {}
    return dict(client.get_run(run_id).data.metrics)


def _gate_value(given: float | None, version: ModelVersion, tag: str, default: float) -> float:
    if given is not None:
        return float(given)
    value = (version.tags or {}).get(tag)
    return float(value) if value is not None else default


def promote(
    name: str,
    *,
    slice_margin: float | None = None,
    min_gain: float | None = None,
    client: MlflowClient | None = None,
    log_decision: bool = True,
) -> PromotionDecision:
    """Move `champion` to the challenger if it passes the gate; record the decision either way.

    Margins default to the challenger's gate tags (from its training spec), then to the module
    defaults.
    """
    c = client or _client()
    challenger = version_for_alias(name, CHALLENGER, client=c)
    if challenger is None:
        raise NoChallengerError(
            f"registered model {name!r} has no {CHALLENGER!r} version; train one with "
            "`govrisk train --spec ...` (see `govrisk models list`)"
        )
    champion = version_for_alias(name, CHAMPION, client=c)
    ch_v = str(challenger.version)
    margin = _gate_value(slice_margin, challenger, TAG_GATE_SLICE_MARGIN, DEFAULT_SLICE_MARGIN)
    gain = _gate_value(min_gain, challenger, TAG_GATE_MIN_GAIN, DEFAULT_MIN_GAIN)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    common: dict[str, Any] = {
        "name": name,
        "challenger_version": ch_v,
        "min_gain": gain,
        "slice_margin": margin,
        "decided_at": now,
    }
    if champion is not None and str(champion.version) == ch_v:
        return PromotionDecision(
            **common,
            promoted=False,
            reason=f"version {ch_v} is already the champion",
            champion_version=ch_v,
            basis="same version",
        )
    ch_metrics = _run_metrics(challenger.run_id, c)
    chance = chance_check(ch_metrics)
    if chance.passed is False:
        decision = PromotionDecision(
            **common,
            promoted=False,
            reason=f"holdout ROC-AUC {chance.challenger:.3f} is no better than chance "
            f"({chance.rule.replace('>', 'is not >')})",
            champion_version=None if champion is None else str(champion.version),
            basis="chance check",
            rows=[chance],
        )
    elif champion is None:
        value = ch_metrics.get(GATE_METRIC, math.nan)
        decision = PromotionDecision(
            **common,
            promoted=True,
            reason="no champion yet: the first challenger becomes champion",
            champion_version=None,
            basis="no champion",
            rows=[
                chance,
                ComparisonRow(GATE_METRIC, math.nan, value, math.nan, "no champion yet", True),
            ],
        )
    else:
        cp_v = str(champion.version)
        evaluated = _tags_of_run(challenger.run_id, c).get(TAG_CHAMPION_EVALUATED)
        if evaluated == cp_v:
            basis = "same holdout (champion scored on the challenger's holdout)"
            cp_metrics = {
                k[len(CHAMPION_PREFIX) :]: v
                for k, v in ch_metrics.items()
                if k.startswith(CHAMPION_PREFIX)
            }
        else:
            basis = "each model's own holdout (champion was not scored on the same holdout)"
            cp_metrics = _run_metrics(champion.run_id, c)
        own = {k: v for k, v in ch_metrics.items() if not k.startswith(CHAMPION_PREFIX)}
        passed, rows, reason = compare(own, cp_metrics, min_gain=gain, slice_margin=margin)
        decision = PromotionDecision(
            **common,
            promoted=passed,
            reason=reason,
            champion_version=cp_v,
            basis=basis,
            rows=[chance, *rows],
        )
        if passed:
            c.set_model_version_tag(name, cp_v, "govrisk.promotion.replaced_by", ch_v)
    if decision.promoted:
        c.set_registered_model_alias(name, CHAMPION, ch_v)
    run_id = _log_decision(decision) if log_decision else None
    decision = replace(decision, log_run_id=run_id)
    tags = {
        "govrisk.promotion.decision": "promoted" if decision.promoted else "refused",
        "govrisk.promotion.decided_at": now,
        "govrisk.promotion.against": decision.champion_version or "none",
        "govrisk.promotion.reason": decision.reason[:4000],
        "govrisk.promotion.basis": decision.basis,
    }
    if run_id:
        tags["govrisk.promotion.run_id"] = run_id
    for key, tag_value in tags.items():
        c.set_model_version_tag(name, ch_v, key, tag_value)
    return decision


def _tags_of_run(run_id: str | None, client: MlflowClient) -> dict[str, str]:
    if not run_id:
        return {}
    return dict(client.get_run(run_id).data.tags)


def _log_decision(decision: PromotionDecision) -> str:
    """Record a decision as a run of the promotions experiment; returns its run id."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow.create_experiment(PROMOTIONS_EXPERIMENT)
    )
    outcome = "promoted" if decision.promoted else "refused"
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{decision.name}-v{decision.challenger_version}-{outcome}",
        nested=mlflow.active_run() is not None,
    ) as run:
        mlflow.set_tags(
            {
                "govrisk.model": decision.name,
                "govrisk.promotion.decision": outcome,
                "govrisk.promotion.basis": decision.basis,
            }
        )
        mlflow.log_params(
            {
                "model": decision.name,
                "challenger_version": decision.challenger_version,
                "champion_version": decision.champion_version or "none",
                "min_pr_auc_gain": decision.min_gain,
                "slice_margin": decision.slice_margin,
                "promoted": decision.promoted,
            }
        )
        for row in decision.rows:
            if row.check == GATE_METRIC:
                for side in ("champion", "challenger"):
                    value = getattr(row, side)
                    if not math.isnan(value):
                        mlflow.log_metric(f"{side}__{row.check}", value)
        mlflow.log_dict(decision.to_dict(), "promotion/decision.json")
        mlflow.log_text(decision.table().to_csv(index=False), "promotion/comparison.csv")
        return str(run.info.run_id)


def list_models(*, prefix: str = "govrisk", client: MlflowClient | None = None) -> pd.DataFrame:
    """Registered govrisk models with their aliases, version counts and gate metrics."""
    c = client or _client()
    rows = []
    for rm in c.search_registered_models(filter_string=f"name LIKE '{prefix}-%'"):
        aliases = dict(rm.aliases or {})
        versions = c.search_model_versions(f"name = '{rm.name}'")
        champion = str(aliases[CHAMPION]) if CHAMPION in aliases else None
        challenger = str(aliases[CHALLENGER]) if CHALLENGER in aliases else None
        by_version = {str(v.version): v for v in versions}
        latest = max(versions, key=lambda v: int(v.version)) if versions else None

        last = (latest.tags or {}).get("govrisk.promotion.decision", "") if latest else ""
        rows.append(
            {
                "name": rm.name,
                "versions": len(versions),
                "champion": champion or "",
                "challenger": challenger or "",
                "champion_pr_auc": _version_gate(by_version, champion, c),
                "challenger_pr_auc": _version_gate(by_version, challenger, c),
                "latest_decision": last,
            }
        )
    columns = [
        "name",
        "versions",
        "champion",
        "challenger",
        "champion_pr_auc",
        "challenger_pr_auc",
        "latest_decision",
    ]
    return pd.DataFrame(rows, columns=columns).sort_values("name", ignore_index=True)


def _version_gate(
    by_version: Mapping[str, ModelVersion], version: str | None, client: MlflowClient
) -> float:
    mv = by_version.get(version) if version else None
    if mv is None:
        return math.nan
    return _run_metrics(mv.run_id, client).get(GATE_METRIC, math.nan)


@dataclass(frozen=True)
class ScoringModel:
    """A registered version's plain model files: encoder, LightGBM booster, calibration."""

    name: str
    version: str
    run_id: str
    encoder: FeatureEncoder
    booster: lgb.Booster
    calibration: Calibration

    def predict_proba(self, frame: pd.DataFrame, *, num_threads: int = 1) -> np.ndarray:
        """Calibrated probabilities for a raw feature frame."""
        X = self.encoder.transform(frame)
        margin = np.asarray(self.booster.predict(X, raw_score=True, num_threads=num_threads))
        return self.calibration.apply(margin)


def load_scoring_model(
    name: str, *, alias: str = CHAMPION, client: MlflowClient | None = None
) -> ScoringModel | None:
    """Load the model files of the version `alias` points at; None when there is none."""
    import lightgbm as lgb
    import mlflow

    c = client or _client()
    version = version_for_alias(name, alias, client=c)
    if version is None or not version.run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path=RUN_MODEL_DIR, dst_path=tmp
            )
        )
        text = (local / MODEL_TEXT_FILE).read_text(encoding="utf-8")
        encoder = FeatureEncoder.from_dict(json.loads((local / ENCODER_FILE).read_text()))
        calibration = Calibration.from_dict(json.loads((local / CALIBRATION_FILE).read_text()))
    return ScoringModel(
        name=name,
        version=str(version.version),
        run_id=str(version.run_id),
        encoder=encoder,
        booster=lgb.Booster(model_str=text),
        calibration=calibration,
    )
