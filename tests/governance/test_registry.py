"""Registry: loads every version, reports every broken file at once, never overwrites a version."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.vocabulary import Entity, StrategyStatus
from governance.evaluator import FeatureType
from governance.registry import (
    StrategyNotFoundError,
    StrategyRegistry,
    catalog_feature_types,
    strategies_dir,
    write_version,
)
from governance.strategy import (
    Predicate,
    Strategy,
    StrategyError,
    dump_strategy,
    load_strategy,
    new_version,
    parse_strategy,
)
from govrisk import build_app

LISTING_TYPES: dict[str, FeatureType] = {
    "listing_counterfeit_term_count": "numeric",
    "seller_tenure_days": "numeric",
    "listing_category": "categorical",
    "listing_has_brand": "boolean",
}
VIDEO_TYPES: dict[str, FeatureType] = {"video_view_spike_ratio": "numeric"}
FEATURE_TYPES: dict[Entity, dict[str, FeatureType]] = {
    Entity.LISTING: LISTING_TYPES,
    Entity.VIDEO: VIDEO_TYPES,
    Entity.LIVE: {},
    Entity.SELLER: {},
}


def _yaml(
    sid: str,
    version: int,
    *,
    status: str = "active",
    entity: str = "listing",
    channels: str = "[shop_tab, campaigns]",
    condition: str = '{feature: listing_counterfeit_term_count, op: ">=", value: 1}',
) -> str:
    return (
        f"id: {sid}\nversion: {version}\nname: Rule {sid}\nowner: tests\n"
        f"description: A rule.\nentity: {entity}\npolicy: counterfeit\nchannels: {channels}\n"
        f"action: block\nstatus: {status}\ncondition: {condition}\n"
    )


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = strategies_dir(tmp_path)
    _write(d, "terms@v1.yaml", _yaml("terms", 1, status="retired"))
    _write(d, "terms@v2.yaml", _yaml("terms", 2, status="active"))
    _write(d, "terms@v3.yaml", _yaml("terms", 3, status="shadow"))
    _write(d, "drafty@v1.yaml", _yaml("drafty", 1, status="draft"))
    _write(d, "drafty@v2.yaml", _yaml("drafty", 2, status="shadow"))
    _write(
        d,
        "spikes@v1.yaml",
        _yaml(
            "spikes",
            1,
            entity="video",
            channels="[video]",
            condition='{feature: video_view_spike_ratio, op: ">", value: 5}',
        ),
    )
    _write(d, "README.md", "not a strategy")
    return tmp_path


def test_load_and_lookup(data_dir: Path) -> None:
    registry = StrategyRegistry.load(data_dir, feature_types=FEATURE_TYPES)
    assert len(registry) == 6
    assert registry.ids() == ["drafty", "spikes", "terms"]
    assert [s.ref for s in registry.versions("terms")] == ["terms@v1", "terms@v2", "terms@v3"]
    assert registry.get("terms").ref == "terms@v2"  # the active one, not the latest
    assert registry.get("drafty").ref == "drafty@v2"  # no active version: the latest
    assert registry.get("terms@3").ref == registry.get("terms@v3").ref == "terms@v3"
    assert "terms@v1" in registry and "terms@v9" not in registry and "nope" not in registry
    assert registry.source("terms@v2") == strategies_dir(data_dir) / "terms@v2.yaml"
    assert registry.next_version("terms") == 4 and registry.next_version("new-rule") == 1
    assert [s.ref for s in registry.active()] == ["spikes@v1", "terms@v2"]
    assert [s.ref for s in registry.active(entity="video")] == ["spikes@v1"]
    assert [s.ref for s in registry.active(channel="campaigns")] == ["terms@v2"]
    assert [s.ref for s in registry.active(entity=Entity.LIVE)] == []
    assert [s.ref for s in registry.select(status="shadow")] == ["drafty@v2", "terms@v3"]


def test_lookup_errors_say_what_exists(data_dir: Path) -> None:
    registry = StrategyRegistry.load(data_dir)
    with pytest.raises(StrategyNotFoundError, match="did you mean terms"):
        registry.get("termz")
    with pytest.raises(StrategyNotFoundError, match="has no version 9; it has v1, v2, v3"):
        registry.get("terms@v9")
    with pytest.raises(ValueError, match="not a strategy reference"):
        registry.get("Terms Rule")


def test_every_broken_file_is_reported_in_one_error(tmp_path: Path) -> None:
    d = strategies_dir(tmp_path)
    _write(d, "ok@v1.yaml", _yaml("ok", 1))
    unknown = _write(
        d,
        "unknown@v1.yaml",
        _yaml("unknown", 1, condition="{feature: seller_tenure, op: '<', value: 90}"),
    )
    mismatch = _write(
        d,
        "mismatch@v1.yaml",
        _yaml("mismatch", 1, condition="{feature: listing_category, op: '>', value: bags}"),
    )
    bad_op = _write(
        d,
        "badop@v1.yaml",
        _yaml("badop", 1, condition="{feature: seller_tenure_days, op: lt, value: 90}"),
    )
    bad_channel = _write(d, "chan@v1.yaml", _yaml("chan", 1, channels="[shop_tab, live]"))
    extra_key = _write(d, "extra@v1.yaml", _yaml("extra", 1) + "colour: red\n")
    bad_yaml = _write(d, "broken@v1.yaml", "id: broken\nversion: [1\n")
    wrong_type = _write(
        d,
        "wrongtype@v1.yaml",
        _yaml("wrongtype", 1, condition="{feature: seller_tenure_days, op: '<', value: '90'}"),
    )
    with pytest.raises(StrategyError) as info:
        StrategyRegistry.load(tmp_path, feature_types=FEATURE_TYPES)
    problems = info.value.problems
    by_file: dict[str, list[str]] = {}
    for p in problems:
        by_file.setdefault(p.source, []).append(f"{p.path}: {p.message}")
    assert set(by_file) == {
        str(p) for p in (unknown, mismatch, bad_op, bad_channel, extra_key, bad_yaml, wrong_type)
    }
    assert "did you mean seller_tenure_days" in by_file[str(unknown)][0]
    assert by_file[str(unknown)][0].startswith("condition.feature:")
    assert "compares order" in by_file[str(mismatch)][0]
    assert "did you mean '<'" in by_file[str(bad_op)][0]
    assert "live cannot show listing items" in by_file[str(bad_channel)][0]
    assert "unknown key 'colour'" in by_file[str(extra_key)][0]
    assert "invalid YAML" in by_file[str(bad_yaml)][0]
    assert "write a number without quotes" in by_file[str(wrong_type)][0]
    message = str(info.value)
    assert f"{len(problems)} problems in 7 strategy file(s)" in message


def test_feature_checks_are_optional_at_load(tmp_path: Path) -> None:
    d = strategies_dir(tmp_path)
    _write(d, "x@v1.yaml", _yaml("x", 1, condition="{feature: not_in_catalogue, op: is_null}"))
    assert len(StrategyRegistry.load(tmp_path)) == 1
    registry = StrategyRegistry.load(tmp_path)
    [problem] = registry.check_features(FEATURE_TYPES)
    assert "unknown feature 'not_in_catalogue'" in problem.message
    assert problem.source == str(d / "x@v1.yaml")


def test_duplicate_id_and_version_names_both_files(tmp_path: Path) -> None:
    d = strategies_dir(tmp_path)
    first = _write(d, "dup@v1.yaml", _yaml("dup", 1))
    second = _write(d, "dup@v1-copy.yaml", _yaml("dup", 1, status="shadow"))
    with pytest.raises(StrategyError) as info:
        StrategyRegistry.load(tmp_path)
    messages = [str(p) for p in info.value.problems]
    duplicate = [m for m in messages if "is also defined in" in m]
    assert len(duplicate) == 1
    assert str(first) in duplicate[0] and str(second) in duplicate[0]
    assert any("rename it to dup@v1.yaml" in m for m in messages)


def test_duplicates_in_memory_and_two_active_versions_are_errors() -> None:
    a = parse_strategy(_yaml("a", 1))
    with pytest.raises(StrategyError, match="a@v1 is defined twice"):
        StrategyRegistry([a, a])
    with pytest.raises(StrategyError, match="a@v1, a@v2 are all active"):
        StrategyRegistry([a, new_version(a, status="active")])


def test_file_layout_problems(tmp_path: Path) -> None:
    with pytest.raises(StrategyError, match="strategies directory not found"):
        StrategyRegistry.load(tmp_path)
    d = strategies_dir(tmp_path)
    _write(d, "a@v2.yaml", _yaml("a", 1))
    _write(d, "b@v1.yml", _yaml("b", 1))
    with pytest.raises(StrategyError) as info:
        StrategyRegistry.load(tmp_path)
    messages = " | ".join(str(p) for p in info.value.problems)
    assert "rename it to a@v1.yaml" in messages
    assert "rename to b@v1.yaml" in messages


def test_write_version_refuses_to_overwrite(tmp_path: Path) -> None:
    s = parse_strategy(_yaml("w", 1))
    path = write_version(s, tmp_path)
    assert path.name == "w@v1.yaml"
    assert load_strategy(path) == s
    before = path.read_text()
    with pytest.raises(FileExistsError, match="versions are immutable"):
        write_version(with_changed_name(s), tmp_path)
    assert path.read_text() == before


def with_changed_name(s: Strategy) -> Strategy:
    return Strategy.model_validate({**s.model_dump(by_alias=True), "name": "Changed"})


def test_add_and_promote_through_the_registry(data_dir: Path) -> None:
    registry = StrategyRegistry.load(data_dir)
    base = registry.get("terms")
    tighter = new_version(
        base,
        version=registry.next_version("terms"),
        status="shadow",
        condition=Predicate(feature="listing_counterfeit_term_count", op=">=", value=2),
    )
    path = registry.add(tighter)
    assert path == strategies_dir(data_dir) / "terms@v4.yaml"
    assert registry.get("terms@v4").parent == "terms@v2"
    with pytest.raises(FileExistsError):
        registry.add(tighter)
    with pytest.raises(ValueError, match="already has an active version"):
        registry.add(new_version(base, version=5, status="active"))

    with pytest.raises(ValueError, match="name the version"):
        registry.set_status("terms", "active")
    changed = registry.set_status("terms@v4", StrategyStatus.ACTIVE)
    assert [(s.ref, s.status.value) for s in changed] == [
        ("terms@v2", "retired"),
        ("terms@v4", "active"),
    ]
    reloaded = StrategyRegistry.load(data_dir)
    assert reloaded.get("terms").ref == "terms@v4"
    assert reloaded.get("terms@v2").status is StrategyStatus.RETIRED
    assert reloaded.get("terms@v2").condition == base.condition
    assert [p.name for p in strategies_dir(data_dir).iterdir() if p.name.startswith(".")] == []


# -- CLI -----------------------------------------------------------------------------------


def _fake_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    def feature_types(entity: Entity) -> dict[str, FeatureType]:
        if entity is Entity.SELLER:
            raise KeyError(entity)
        return FEATURE_TYPES[entity]

    module = types.ModuleType("features.catalog")
    module.feature_types = feature_types  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "features.catalog", module)


def test_catalogue_feature_types(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_catalogue(monkeypatch)
    types_by_entity = catalog_feature_types()
    assert set(types_by_entity) == {Entity.LISTING, Entity.VIDEO, Entity.LIVE}
    assert types_by_entity[Entity.LISTING]["listing_category"] == "categorical"
    monkeypatch.setitem(sys.modules, "features.catalog", None)
    with pytest.raises(ImportError, match="feature catalogue is unavailable"):
        catalog_feature_types()


def test_cli_list_show(data_dir: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "300"})
    app = build_app()
    listed = runner.invoke(
        app, ["strategies", "list", "--data", str(data_dir), "--status", "active"]
    )
    assert listed.exit_code == 0, listed.output
    assert "terms@v2" in listed.output and "spikes@v1" in listed.output
    assert "terms@v3" not in listed.output

    shown = runner.invoke(app, ["strategies", "show", "terms@3", "--data", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    assert "listing_counterfeit_term_count >= 1" in shown.output
    assert "status: shadow" in shown.output
    assert "terms@v2 (active)" in shown.output

    missing = runner.invoke(app, ["strategies", "show", "termz", "--data", str(data_dir)])
    assert missing.exit_code == 2 and "did you mean terms" in missing.output


def test_cli_validate(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner(env={"COLUMNS": "300"})
    app = build_app()
    _fake_catalogue(monkeypatch)
    valid = runner.invoke(app, ["strategies", "validate", "--data", str(data_dir)])
    assert valid.exit_code == 0, valid.output
    assert "6 strategy version(s) of 3 strategies" in valid.output
    assert "warning" not in valid.output

    d = strategies_dir(data_dir)
    _write(d, "bad@v1.yaml", _yaml("bad", 1).replace("block", "ban"))
    _write(d, "typo@v1.yaml", _yaml("typo", 1, condition="{feature: listing_categry, op: is_null}"))
    invalid = runner.invoke(app, ["strategies", "validate", "--data", str(data_dir)])
    assert invalid.exit_code == 1
    assert "bad@v1.yaml: action: got 'ban'" in invalid.output
    assert "did you mean listing_category" in invalid.output

    monkeypatch.setitem(sys.modules, "features.catalog", None)
    unchecked = runner.invoke(app, ["strategies", "validate", "--data", str(data_dir)])
    assert unchecked.exit_code == 1
    assert "feature catalogue is unavailable" in unchecked.output
    assert "did you mean listing_category" not in unchecked.output


def test_dumped_registry_files_reload_identically(data_dir: Path) -> None:
    registry = StrategyRegistry.load(data_dir)
    for strategy in registry:
        assert parse_strategy(dump_strategy(strategy)) == strategy
