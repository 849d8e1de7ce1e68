"""`govrisk data import`: a deliberately messy export becomes contract tables, losing nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.importer import OPTIONAL_TABLES, MappingError, import_tables, read_mapping
from features.loader import load_tables
from govrisk import build_app
from tests.factories import make_tables

#: Export column names of the listings file (contract -> export).
LISTING_COLUMNS = {"listing_id": "SKU", "seller_id": "Merchant", "created_at": "Published"}


def _messy_export(tmp_path: Path) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A 60-listing world exported as a real team might: CSV, other names, local times with
    and without offsets, display values for channels, a few broken rows, no outcomes."""
    tables = make_tables(60, seed=5)
    src = tmp_path / "export"
    src.mkdir()
    sellers = tables["sellers"].copy()
    # Offsets written out: 08:00 in Singapore is midnight UTC.
    sellers["registered_at"] = (
        sellers["registered_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Singapore")
    ).map(lambda t: t.isoformat())
    sellers.to_csv(src / "sellers.csv", index=False)
    listings = tables["listings"].rename(columns=LISTING_COLUMNS)
    # No offset: local Singapore wall-clock time (the mapping's default zone).
    listings["Published"] = (
        listings["Published"].dt.tz_localize("UTC").dt.tz_convert("Asia/Singapore")
    ).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    listings = listings.astype(object)
    listings.loc[3, "price"] = "twelve"  # not a number
    listings.loc[4, "Merchant"] = "S-nobody"  # a seller the export does not hold
    listings = pd.concat([listings, listings.iloc[[7]]], ignore_index=True)  # a repeat
    listings.to_csv(src / "listings.csv", index=False)
    exposure = tables["channel_exposure"].copy()
    exposure["channel"] = exposure["channel"].map(lambda c: c.replace("_", " ").title())
    exposure.loc[0, "channel"] = "Television"  # no such channel
    exposure.to_parquet(src / "exposure.parquet")
    for name in ("creators", "videos", "live_sessions", "strategy_decisions", "audit_labels"):
        tables[name].to_parquet(src / f"{name}.parquet")
    mapping = {
        "timezone": "Asia/Singapore",
        "tables": {
            "sellers": {"file": "sellers.csv"},
            "listings": {"file": "listings.csv", "columns": LISTING_COLUMNS},
            "channel_exposure": {
                "file": "exposure.parquet",
                "timezone": "UTC",
                "values": {
                    "channel": {
                        c.replace("_", " ").title(): c
                        for c in tables["channel_exposure"]["channel"].unique()
                    }
                },
            },
            **{
                name: {"file": f"{name}.parquet", "timezone": "UTC"}
                for name in (
                    "creators",
                    "videos",
                    "live_sessions",
                    "strategy_decisions",
                    "audit_labels",
                )
            },
        },
    }
    path = src / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return path, tables


def test_a_messy_export_imports_with_every_bad_row_quarantined_and_nothing_lost(
    tmp_path: Path,
) -> None:
    mapping, truth = _messy_export(tmp_path)
    result = import_tables(read_mapping(mapping))
    for name, r in result.items():
        assert r.rows_read == r.rows_imported + len(r.quarantined), name
    listings = result["listings"]
    assert listings.rows_read == 61 and listings.rows_imported == 58
    reasons = listings.quarantined.set_index("export_row")["reasons"]
    assert reasons[3] == "price: not a number"
    assert reasons[4] == "seller_id: no sellers row with this id was imported"
    assert reasons[60].startswith("repeats the key (listing_id)")
    # Rows that point at a refused listing are refused in turn, with that reason.
    refused = {"L000003", "L000004"}
    videos = result["videos"]
    orphans = truth["videos"]["listing_id"].isin(refused)
    assert len(videos.quarantined) == int(orphans.sum())
    assert (
        videos.quarantined["reasons"] == "listing_id: no listings row with this id was imported"
    ).all()
    exposure = result["channel_exposure"]
    assert "channel: not one of" in exposure.quarantined["reasons"].iloc[0]
    # Times: local wall-clock and offset times both land on the original UTC instants.
    kept = listings.imported.set_index("listing_id")["created_at"]
    want = truth["listings"].set_index("listing_id")["created_at"]
    pd.testing.assert_series_equal(kept, want.loc[kept.index], check_dtype=False)
    sellers = result["sellers"].imported.set_index("seller_id")["registered_at"]
    pd.testing.assert_series_equal(
        sellers, truth["sellers"].set_index("seller_id")["registered_at"], check_dtype=False
    )
    assert result["outcomes"].note == OPTIONAL_TABLES["outcomes"]


def test_the_command_writes_tables_the_loader_accepts_and_says_what_it_refused(
    tmp_path: Path,
) -> None:
    mapping, _ = _messy_export(tmp_path)
    out = tmp_path / "data"
    args = ["data", "import", "--mapping", str(mapping), "--out", str(out)]
    result = CliRunner().invoke(build_app(), args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "listings" in result.output and "no trust signals" in result.output
    assert (out / "quarantine" / "listings.parquet").exists()
    tables = load_tables(out)
    assert len(tables["listings"]) == 58 and len(tables["outcomes"]) == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["tables"].pop("listings"), "required table(s) ['listings']"),
        (lambda m: m.update(timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda m: m["tables"]["listings"].update(file="gone.csv"), "export file not found"),
        (
            lambda m: m["tables"]["listings"]["columns"].pop("listing_id"),
            "no export column for listings column(s) listing_id (looked for 'listing_id')",
        ),
    ],
)
def test_a_bad_mapping_is_one_line_naming_the_fix(
    tmp_path: Path, edit: object, message: str
) -> None:
    mapping, _ = _messy_export(tmp_path)
    doc = yaml.safe_load(mapping.read_text())
    edit(doc)  # type: ignore[operator]
    mapping.write_text(yaml.safe_dump(doc))
    with pytest.raises(MappingError, match=r".*") as err:
        import_tables(read_mapping(mapping))
    assert message in str(err.value) and "\n" not in str(err.value)
    args = ["data", "import", "--mapping", str(mapping), "--out", str(tmp_path / "d")]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) <= 3
    assert not (tmp_path / "d" / "tables").exists()
