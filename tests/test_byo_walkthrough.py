"""docs/byo-walkthrough.md, run command by command through the `govrisk` CLI.

On a seeded 2,500-row stand-in for the fraud data always, and on a 3,000-row sample of the real
data when `../shared/data/ecommerce_fraud` is there. The audit's precision and recall must match
the fraud evaluation's for the same labels within `TOLERANCE`: both use the production
estimators on the same design draws, but with different models (the walkthrough's calibrated
model trained by `govrisk train`, the evaluation's cross-fitted LightGBM), which only the
model-assisted part of the estimates sees.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.byo_walkthrough import (
    Walkthrough,
    compare_with_evaluation,
    gap,
    model_uri,
    run_walkthrough,
    shell_lines,
    walkthrough_commands,
)
from experiments.synthetic.fraud import RANGES_FILE, ROWS_FILE, write_fraud_files

REPO = Path(__file__).resolve().parents[1]
FRAUD = REPO.parent / "shared" / "data" / "ecommerce_fraud"
RULES = {"instant-checkout@v1", "shared-device@v1", "shared-ip@v1", "new-account-high-value@v1"}
#: Largest |walkthrough - evaluation| allowed for any rule's precision or recall.
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for both walkthroughs (creating one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _check(w: Walkthrough, *, labels: int) -> pd.DataFrame:
    compared = compare_with_evaluation(w)
    assert set(compared["strategy"]) == RULES
    drawn = pd.read_parquet(w.labels)["sampling"].value_counts()
    assert drawn["random"] == pytest.approx(labels / 2, rel=0.3)
    assert drawn["model_ranked"] == pytest.approx(labels / 2, rel=0.3)
    for what, worst in gap(compared).items():
        assert worst <= TOLERANCE, f"{what}: walkthrough and evaluation differ by {worst:.3f}"
    flags = pd.read_parquet(w.audit / "flags.parquet")
    assert {"likely_false_positive", "random_audit"} <= set(flags["kind"])
    assert flags["reasons"].str.contains('"contribution"').all()
    assert (w.work / "review" / "govrisk.db").exists()
    _check_bundle(w)
    assert len(pd.read_parquet(w.audit / "slices.parquet"))
    return compared


def _check_bundle(w: Walkthrough) -> None:
    """The registered bundle declares its own features: the dataset's."""
    import mlflow

    from features.store import read_dataset
    from models.pyfunc import load_bundle

    mlflow.set_tracking_uri(w.tracking_uri)
    declared = load_bundle(model_uri(w.specs)).metadata["feature_declaration"]
    assert sorted(f["name"] for f in declared) == sorted(read_dataset(w.features).feature_set.names)


def test_the_walkthrough_on_synthetic_fraud_data(tmp_path: Path, tracking: str) -> None:
    tables = write_fraud_files(tmp_path / "raw", n=2_500, seed=0)
    w = Walkthrough(tmp_path / "w", tracking=tracking)
    run_walkthrough(w, walkthrough_commands(w, tables=tables, labels=500))
    _check(w, labels=500)


@pytest.mark.skipif(not (FRAUD / ROWS_FILE).exists(), reason="fraud data not present")
def test_the_walkthrough_on_a_sample_of_the_real_data(tmp_path: Path, tracking: str) -> None:
    rows = pd.read_csv(FRAUD / ROWS_FILE, dtype=str).sample(3_000, random_state=0)
    rows.to_csv(tmp_path / ROWS_FILE, index=False)
    tables = {"rows": tmp_path / ROWS_FILE, "ip_country": FRAUD / RANGES_FILE}
    w = Walkthrough(tmp_path / "w", tracking=tracking)
    run_walkthrough(w, walkthrough_commands(w, tables=tables, labels=600))
    _check(w, labels=600)


def test_the_doc_shows_every_command() -> None:
    doc = (REPO / "docs" / "byo-walkthrough.md").read_text()
    w = Walkthrough(Path("out/fraud"), specs=Path("experiments/specs"))
    for line in shell_lines(walkthrough_commands(w)):
        assert line in doc, f"docs/byo-walkthrough.md lacks: {line}"


def test_a_bad_step_fails_with_its_output(tmp_path: Path) -> None:
    w = Walkthrough(tmp_path / "w")
    with pytest.raises(RuntimeError, match="no manifest.json"):
        run_walkthrough(w, [["labels", "draw", "--dataset", str(tmp_path), "--size", "5",
                             "--out", str(tmp_path / "l.parquet")]])  # fmt: skip
