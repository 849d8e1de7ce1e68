"""The BYO audit: exposure from the governance section, strategies over the dataset's
features, every row scored, and clear errors through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments import SPECS_DIR
from experiments.synthetic.fraud import write_fraud_files
from features.byo import ByoDataset, GovernanceDecl, build_dataset, load_spec
from features.store import write_dataset
from governance.audit.byo import byo_exposure, load_byo_strategies, scores_for
from governance.strategy import StrategyError
from govrisk import build_app

RULES = SPECS_DIR / "ecommerce_fraud_rules"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> ByoDataset:
    tables = write_fraud_files(tmp_path_factory.mktemp("raw"), n=600, seed=7)
    return build_dataset(load_spec(SPECS_DIR / "ecommerce_fraud.yaml"), overrides=tables)


def test_each_row_is_one_impression_worth_its_value_in_its_channel() -> None:
    frame = pd.DataFrame({"channel": ["shop_tab", "affiliate", "shop_tab"], "v": [10.0, 2.0, 1.0]})
    gov = GovernanceDecl(entity="listing", policy="counterfeit", channel_column="c", value="v")
    ex = byo_exposure(frame, gov)
    assert ex.channels == ("shop_tab", "affiliate")
    assert ex.impressions.tolist() == [[1, 0], [0, 1], [1, 0]]
    assert ex.gmv.tolist() == [[10, 0], [0, 2], [1, 0]]
    one = byo_exposure(frame.drop(columns="channel"), gov.model_copy(update={"value": None}))
    assert one.channels == ("shop_tab",) and (one.gmv == 1).all()


def test_the_fraud_rules_load_against_the_dataset(dataset: ByoDataset, tmp_path: Path) -> None:
    assert {s.id for s in load_byo_strategies(RULES, dataset)} == {
        "instant-checkout",
        "shared-device",
        "shared-ip",
        "new-account-high-value",
    }
    shutil.copytree(RULES, tmp_path / "rules")
    path = tmp_path / "rules" / "strategies" / "shared-ip@v1.yaml"
    path.write_text(path.read_text().replace("ip_shared_count", "ip_shared_cnt"))
    with pytest.raises(StrategyError, match="ip_shared_cnt"):
        load_byo_strategies(tmp_path / "rules", dataset)


def test_every_row_needs_a_score(dataset: ByoDataset) -> None:
    ids = dataset.frame["item_id"]
    p = scores_for(dataset, pd.DataFrame({"item_id": ids, "probability": 0.1}))
    assert p.shape == (len(ids),) and np.allclose(p, 0.1)
    with pytest.raises(ValueError, match=r"3 of 600 rows have no score"):
        scores_for(dataset, pd.DataFrame({"item_id": ids[3:], "probability": 0.1}))


def test_cli_errors_are_one_clear_message(dataset: ByoDataset, tmp_path: Path) -> None:
    write_dataset(dataset, tmp_path / "features")
    runner, app = CliRunner(), build_app()
    base = ["audit", "--data", str(RULES), "--dataset", str(tmp_path / "features")]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "--dataset needs --scores and --labels" in result.output
    pd.DataFrame({"item_id": ["x"], "probability": [0.5]}).to_parquet(tmp_path / "s.parquet")
    pd.DataFrame({"item_id": []}).to_parquet(tmp_path / "l.parquet")
    args = ["--scores", str(tmp_path / "s.parquet"), "--labels", str(tmp_path / "l.parquet")]
    result = runner.invoke(app, [*base, *args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "600 of 600 rows have no score" in result.output
