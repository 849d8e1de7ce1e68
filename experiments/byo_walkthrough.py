"""The bring-your-own-data walkthrough as `govrisk` command lines, and its measurement.

`walkthrough_commands` is the one list of commands docs/byo-walkthrough.md shows and
`run_walkthrough` runs (in process, through the root Typer app): featurize the fraud data,
check the fraud rules against its features, draw and reveal a uniform sample of labels, train
on it, score every row, audit, reveal the audit slice the audit drew, audit again, queue the
flags and put the suggested rule changes up for approval. `compare_with_evaluation` sets the
audit's figures beside the fraud evaluation's for the same labels and beside the truth;
`measure_walkthrough` repeats that over label draws.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import SPECS_DIR

#: Expected labels per draw: half uniform (to train on), half the audit's slice.
DEFAULT_LABELS = 1_000


@dataclass(frozen=True)
class Walkthrough:
    """Where one walkthrough writes (everything under `work`)."""

    work: Path
    specs: Path = SPECS_DIR
    #: MLflow store of the model (default: WORK/mlflow.db); walkthroughs may share one.
    tracking: str | None = None

    @property
    def features(self) -> Path:
        """The BYO feature build."""
        return self.work / "features"

    @property
    def labels(self) -> Path:
        """The revealed audit labels (both draws)."""
        return self.work / "labels.parquet"

    @property
    def audit(self) -> Path:
        """The final audit."""
        return self.work / "audit"

    @property
    def tracking_uri(self) -> str:
        """The MLflow store the model is registered in."""
        return self.tracking or f"sqlite:///{self.work / 'mlflow.db'}"


def model_uri(specs: Path) -> str:
    """The challenger the training spec registers: its name prefix, then the dataset spec's
    governance entity and policy."""
    from features.byo import load_spec
    from models.registry import CHALLENGER, model_name
    from training.spec import load_spec as load_training_spec

    gov = load_spec(specs / "ecommerce_fraud.yaml").governance
    assert gov is not None, "the fraud spec declares its governance section"
    train = load_training_spec(specs / "ecommerce_fraud_train.yaml", check_paths=False)
    name = model_name(gov.entity.value, gov.policy.value, prefix=train.mlflow.model_name_prefix)
    return f"models:/{name}@{CHALLENGER}"


def walkthrough_commands(
    w: Walkthrough,
    *,
    tables: Mapping[str, Path] | None = None,
    base_dir: Path | None = None,
    labels: int = DEFAULT_LABELS,
    seed: int = 0,
) -> list[list[str]]:
    """Every step as `govrisk` arguments; `tables` / `base_dir` say where the data is."""
    rules = str(w.specs / "ecommerce_fraud_rules")
    feats, tracking = str(w.features), ["--tracking-uri", w.tracking_uri]
    source = [a for name, p in (tables or {}).items() for a in ("--table", f"{name}={p}")]
    source += ["--base-dir", str(base_dir)] if base_dir is not None else []
    half = str(labels // 2)

    def audit(out: str) -> list[str]:
        return [
            "audit", "--data", rules, "--dataset", feats, "--scores", str(w.work / "scores"),
            "--labels", str(w.labels), "--oof", str(w.work / "training/oof_predictions.parquet"),
            "--flip-rate", "0", "--sample-size", half, "--out", out,
        ]  # fmt: skip

    return [
        ["features", "byo", "--spec", str(w.specs / "ecommerce_fraud.yaml"), "--out", feats,
         *source],
        ["strategies", "validate", "--data", rules, "--dataset", feats],
        ["labels", "draw", "--dataset", feats, "--size", half, "--seed", str(seed), "--reveal",
         "--out", str(w.labels)],
        ["train", "--spec", str(w.specs / "ecommerce_fraud_train.yaml"), "--dataset", feats,
         "--labels", str(w.labels), "--out", str(w.work / "training"), *tracking],
        ["score", "--model", model_uri(w.specs), "--input", str(w.features / "purchase.parquet"),
         "--output", str(w.work / "scores"), "--explain", "3", "--unknown-categories", "missing",
         "--overwrite",
         *tracking],
        audit(str(w.work / "audit-1")),
        ["labels", "draw", "--dataset", feats, "--flags", str(w.work / "audit-1/flags.parquet"),
         "--reveal", "--append", "--out", str(w.labels)],
        audit(str(w.audit)),
        ["queue", "load", "--flags", str(w.audit / "flags.parquet"), "--data-dir",
         str(w.work / "review")],
        ["suggestions", "load", "--path", str(w.audit / "suggestions.parquet"), "--data-dir",
         str(w.work / "review")],
    ]  # fmt: skip


def shell_lines(commands: Sequence[Sequence[str]]) -> list[str]:
    """The commands as the shell lines docs/byo-walkthrough.md shows."""
    return ["govrisk " + shlex.join(args) for args in commands]


def run_walkthrough(w: Walkthrough, commands: Sequence[Sequence[str]]) -> None:
    """Run each command through the `govrisk` app; a failing step raises with its output."""
    from typer.testing import CliRunner

    from govrisk import build_app

    app, runner = build_app(), CliRunner()
    w.work.mkdir(parents=True, exist_ok=True)
    for args in commands:
        result = runner.invoke(app, list(args))
        if result.exit_code != 0:
            raise RuntimeError(
                f"`govrisk {' '.join(args)}` exited {result.exit_code}:\n{result.output}"
            ) from result.exception


def compare_with_evaluation(w: Walkthrough, *, seed: int = 0) -> pd.DataFrame:
    """Per fraud rule: the walkthrough audit's precision and recall (with intervals), the fraud
    evaluation's for the same labels, and the truth from the full label column."""
    from experiments.audit_eval.estimates import estimate_errors
    from experiments.audit_eval.fraud import fraud_estimates
    from features.store import read_dataset
    from governance.audit.metrics import strategy_metrics

    dataset = read_dataset(w.features)
    labels = pd.read_parquet(w.labels)
    pop, _ = fraud_estimates(dataset, labels, seed=seed)
    key = (pop.entity, pop.policy)
    truth = {key: dataset.frame["label"].to_numpy(dtype=float) > 0.5}
    true = strategy_metrics({key: pop}, truth=truth)
    mine = estimate_errors(pd.read_parquet(w.audit / "strategy_metrics.parquet"), true)
    theirs = estimate_errors(strategy_metrics({key: pop}), true)
    return mine.merge(
        theirs[["strategy", "precision", "recall", *_ERRORS]],
        on="strategy",
        suffixes=("", "_evaluation"),
    ).assign(labels=len(labels))


_ERRORS = ("precision_err", "recall_err", "precision_covered", "recall_covered")


def measure_walkthrough(
    work: Path,
    *,
    tables: Mapping[str, Path] | None = None,
    base_dir: Path | None = None,
    draws: int = 10,
    labels: int = DEFAULT_LABELS,
) -> pd.DataFrame:
    """`compare_with_evaluation` over `draws` label draws (seeds 0..draws-1), one row per draw
    and rule (the features are built once)."""
    rows = []
    for seed in range(draws):
        w = Walkthrough(work / f"draw-{seed}")
        commands = walkthrough_commands(
            w, tables=tables, base_dir=base_dir, labels=labels, seed=seed
        )
        run_walkthrough(w, commands)
        rows.append(compare_with_evaluation(w, seed=seed).assign(draw=seed))
    return pd.concat(rows, ignore_index=True)


def summary_table(measured: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute error (interval coverage) of precision and recall, walkthrough vs
    evaluation, over every draw and rule."""
    out = []
    for what in ("precision", "recall"):
        cells = {}
        for who, suffix in (("walkthrough", ""), ("evaluation", "_evaluation")):
            err = measured[f"{what}_err{suffix}"].mean()
            cov = measured[f"{what}_covered{suffix}"].mean()
            cells[who] = f"{err:.3f} ({cov:.2f})"
        out.append({"measure": f"{what} abs. error (coverage)", **cells})
    return pd.DataFrame(out).assign(
        draws=measured["draw"].nunique(), labels=f"{measured['labels'].mean():,.0f}"
    )


def gap(measured: pd.DataFrame) -> dict[str, float]:
    """Largest |walkthrough - evaluation| of precision and of recall over the rows."""
    return {
        what: float(np.nanmax(np.abs(measured[what] - measured[f"{what}_evaluation"])))
        for what in ("precision", "recall")
    }
