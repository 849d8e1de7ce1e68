"""Strategy YAML: strict parsing, precise errors, canonical dumps that round-trip."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.vocabulary import ENTITY_CHANNELS, Action, Entity, Policy, StrategyStatus
from governance.strategy import (
    LIST_OPS,
    MAX_CONDITION_DEPTH,
    NULL_OPS,
    OPS,
    AllOf,
    AnyOf,
    Condition,
    Not,
    Predicate,
    Strategy,
    StrategyError,
    condition_depth,
    dump_strategy,
    iter_predicates,
    load_strategy,
    new_version,
    parse_ref,
    parse_strategy,
    render_condition,
    replace_node,
    with_status,
)

EXAMPLE = """\
id: listing-counterfeit-terms        # slug, [a-z0-9-]
version: 1                           # int >= 1; id+version unique in a registry
name: Block listings with counterfeit wording
owner: brand-protection
description: One or two sentences on intent.
entity: listing                      # listing | video | live | seller
policy: counterfeit                  # a Policy
channels: [shop_tab, campaigns]      # subset of ENTITY_CHANNELS[entity] (seller: any)
action: block                        # block | demote | limit_exposure
status: active                       # draft | shadow | active | retired
condition:                           # nested all / any / not of predicates
  all:
    - {feature: listing_counterfeit_term_count, op: ">=", value: 1}
    - any:
        - {feature: seller_tenure_days, op: "<", value: 90}
        - {feature: listing_category, op: in, value: [bags, watches]}
"""


def _problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(StrategyError) as info:
        parse_strategy(text, source="s.yaml")
    assert all(p.source == "s.yaml" for p in info.value.problems)
    return [(p.path, p.message) for p in info.value.problems]


def _edit(old: str, new: str) -> str:
    assert old in EXAMPLE, old
    return EXAMPLE.replace(old, new)


def test_example_parses_into_typed_fields() -> None:
    s = parse_strategy(EXAMPLE)
    assert s.ref == "listing-counterfeit-terms@v1"
    assert s.file_name == "listing-counterfeit-terms@v1.yaml"
    assert s.entity is Entity.LISTING and s.policy is Policy.COUNTERFEIT
    assert s.action is Action.BLOCK and s.status is StrategyStatus.ACTIVE
    assert [c.value for c in s.channels] == ["shop_tab", "campaigns"]
    assert s.features == (
        "listing_category",
        "listing_counterfeit_term_count",
        "seller_tenure_days",
    )
    assert isinstance(s.condition, AllOf)
    inner = s.condition.all[1]
    assert isinstance(inner, AnyOf)
    assert inner.any[1] == Predicate(feature="listing_category", op="in", value=("bags", "watches"))


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        # bad operators, with the likely intended one suggested
        ('op: ">=", value: 1}', "op: gte, value: 1}", "condition.all[0].op", "did you mean '>='"),
        ("op: in,", "op: contains,", "condition.all[1].any[1].op", "use one of <, <="),
        # unknown keys, at the top and inside a predicate
        ("status: active ", "colour: red\nstatus: active ", "colour", "unknown key 'colour'"),
        ("value: 90}", "value: 90, unit: days}", "condition.all[1].any[0].unit", "allowed here"),
        # channel not showing the entity
        (
            "channels: [shop_tab, campaigns]",
            "channels: [shop_tab, live]",
            "channels",
            "live cannot show listing items",
        ),
        ("channels: [shop_tab, campaigns]", "channels: [shop_tab, shop_tab]", "channels", "twice"),
        ("channels: [shop_tab, campaigns]", "channels: []", "channels", "at least one channel"),
        ("channels: [shop_tab, campaigns]", "channels: [tv]", "channels[0]", "got 'tv'"),
        # value shape must match the op
        ("op: in, value: [bags, watches]", "op: in, value: bags", "", "non-empty list"),
        ("op: in, value: [bags, watches]", "op: in, value: []", "", "non-empty list"),
        ('op: "<", value: 90', 'op: "<", value: [90]', "", "compares with one value"),
        ('op: "<", value: 90', "op: is_null, value: 90", "", "takes no value"),
        ('op: "<", value: 90', 'op: "<"', "", "needs a value"),
        ("value: [bags, watches]", "value: [bags, 3]", "", "mix number and text"),
        ('op: "<", value: 90', 'op: "<", value: 2024-01-01', "", "dates are not comparable"),
        ('op: "<", value: 90', 'op: "<", value: .nan', "", "finite number"),
        # scalar fields
        ("id: listing-counterfeit-terms ", "id: Listing_Counterfeit ", "id", "is not a slug"),
        ("version: 1 ", "version: 0 ", "version", "greater than or equal to 1"),
        ("version: 1 ", 'version: "1" ', "version", "valid integer"),
        ("version: 1 ", "version: 1.5 ", "version", "valid integer"),
        ("entity: listing ", "entity: product ", "entity", "got 'product'"),
        ("policy: counterfeit ", "policy: fraud ", "policy", "got 'fraud'"),
        ("action: block ", "action: ban ", "action", "'demote'"),
        ("status: active ", "status: live ", "status", "'shadow'"),
        ("name: Block listings with counterfeit wording", 'name: "  "', "name", "blank"),
        ("owner: brand-protection\n", "", "owner", "required field missing"),
        ("feature: seller_tenure_days", "feature: Seller Tenure", "", "lower_snake_case"),
        # condition shapes
        ("  all:\n", "  every:\n", "condition", "exactly one key"),
        ("    - any:\n", "    - any: []\n    - none:\n", "condition.all[1].any", "at least one"),
    ],
)
def test_each_invalid_field_is_named_with_a_fix(
    old: str, new: str, path: str, fragment: str
) -> None:
    problems = _problems(_edit(old, new))
    assert any(fragment in message for _, message in problems), problems
    if path:
        assert any(p == path and fragment in m for p, m in problems), problems


def test_errors_are_all_reported_together_with_nested_paths() -> None:
    text = _edit('op: ">=", value: 1}', "op: gte, value: 1}")
    text = text.replace("value: [bags, watches]}", "value: [bags, watches], extra: 1}")
    text = text.replace("action: block ", "action: ban ")
    problems = dict(_problems(text))
    assert "condition.all[0].op" in problems
    assert "condition.all[1].any[1].extra" in problems
    assert "action" in problems
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id: [unclosed\n", "invalid YAML"),
        ("id: a\nid: b\n", "duplicate key 'id'"),
        ("op: >=\n", 'quote operators such as ">="'),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "empty file"),
    ],
)
def test_bad_yaml_is_reported_with_its_position(text: str, fragment: str) -> None:
    problems = _problems(text)
    assert len(problems) == 1
    assert fragment in problems[0][1]


def test_yaml_errors_carry_line_numbers() -> None:
    text = EXAMPLE.replace("action: block ", "action: block\naction: demote ")
    [(path, message)] = _problems(text)
    assert path.startswith("line 10")
    assert "duplicate key 'action'" in message


def test_seller_strategies_may_act_in_any_channel() -> None:
    text = _edit("entity: listing ", "entity: seller ").replace(
        "[shop_tab, campaigns]", "[shop_tab, video, live]"
    )
    assert len(parse_strategy(text).channels) == 3


def test_conditions_deeper_than_the_limit_are_rejected() -> None:
    node: Condition = Predicate(feature="x", op="is_null")
    for _ in range(MAX_CONDITION_DEPTH + 1):
        node = Not(not_=node)
    base = parse_strategy(EXAMPLE)
    with pytest.raises(StrategyError, match="flatten it"):
        new_version(base, condition=node)


def test_load_strategy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x@v1.yaml"
    path.write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(StrategyError, match="not UTF-8") as info:
        load_strategy(path)
    assert info.value.problems[0].source == str(path)
    path.write_text(EXAMPLE.replace("action: block ", "action: ban "), encoding="utf-8")
    with pytest.raises(StrategyError) as info:
        load_strategy(path)
    assert str(path) in str(info.value)
    assert "docs/strategies.md" in str(info.value)


def test_dump_is_canonical_and_round_trips() -> None:
    s = parse_strategy(EXAMPLE)
    text = dump_strategy(s)
    assert parse_strategy(text) == s
    assert dump_strategy(parse_strategy(text)) == text
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0] != " "]
    assert keys == [
        "id",
        "version",
        "name",
        "owner",
        "description",
        "entity",
        "policy",
        "channels",
        "action",
        "status",
        "condition",
    ]
    # predicates stay on one line with operators quoted, as people write them
    assert '- {feature: listing_counterfeit_term_count, op: ">=", value: 1}' in text
    assert "{feature: listing_category, op: in, value: [bags, watches]}" in text


def test_multiline_text_dumps_as_a_literal_block() -> None:
    s = new_version(parse_strategy(EXAMPLE), description="First line.\nSecond line.\n")
    text = dump_strategy(s)
    assert "description: |\n  First line.\n  Second line.\n" in text
    assert parse_strategy(text) == s


def test_optional_fields_round_trip_and_normalise() -> None:
    text = EXAMPLE + "created_at: 2024-05-01T10:00:00+02:00\nparent: other-rule@3\nnotes: why\n"
    s = parse_strategy(text)
    assert s.created_at == datetime(2024, 5, 1, 8, 0)  # naive UTC
    assert s.parent == "other-rule@v3"
    assert parse_strategy(dump_strategy(s)) == s
    [(path, message)] = _problems(EXAMPLE + "parent: other rule\n")
    assert path == "parent" and "<id>@v<version>" in message


def test_with_status_and_new_version() -> None:
    base = parse_strategy(EXAMPLE)
    shadow = with_status(base, "shadow")
    assert shadow.status is StrategyStatus.SHADOW and shadow.version == base.version
    assert shadow.condition == base.condition

    tighter = replace_node(
        base.condition,
        "condition.all[0]",
        Predicate(feature="listing_counterfeit_term_count", op=">=", value=2),
    )
    v2 = new_version(base, condition=tighter, status=StrategyStatus.SHADOW, notes="fewer FPs")
    assert (v2.version, v2.parent, v2.status) == (2, base.ref, StrategyStatus.SHADOW)
    assert v2.notes == "fewer FPs" and v2.name == base.name
    assert render_condition(v2.condition).startswith("listing_counterfeit_term_count >= 2 AND")
    assert new_version(base, version=7).version == 7

    with pytest.raises(ValueError, match="must be above"):
        new_version(base, version=1)
    with pytest.raises(StrategyError, match="cannot show listing items"):
        new_version(base, channels=("video",))


def test_replace_node_drops_and_collapses() -> None:
    s = parse_strategy(EXAMPLE)
    dropped = replace_node(s.condition, "condition.all[1].any[0]", None)
    assert [p for p, _ in iter_predicates(dropped)] == [
        "condition.all[0]",
        "condition.all[1].any[0]",
    ]
    only = replace_node(dropped, "condition.all[1]", None)
    assert isinstance(only, AllOf) and len(only.all) == 1
    with pytest.raises(ValueError, match="without a condition"):
        replace_node(only, "condition.all[0]", None)
    with pytest.raises(ValueError, match="no `any` group"):
        replace_node(s.condition, "condition.any[0]", None)
    with pytest.raises(ValueError, match="only 2 member"):
        replace_node(s.condition, "condition.all[5]", None)


def test_render_condition_reads_like_a_rule() -> None:
    s = parse_strategy(EXAMPLE)
    assert render_condition(s.condition) == (
        "listing_counterfeit_term_count >= 1 AND (seller_tenure_days < 90 OR "
        "listing_category in ['bags', 'watches'])"
    )
    assert render_condition(Not(not_=Predicate(feature="x", op="is_null"))) == (
        "NOT (x is missing)"
    )


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("a-b", ("a-b", None)), ("a-b@3", ("a-b", 3)), ("a-b@v12", ("a-b", 12))],
)
def test_parse_ref(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["A-b", "a-b@", "a-b@vx", "a-b@v0", "@v1"])
def test_parse_ref_rejects(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_ref(ref)


# -- property: any valid strategy survives dump -> parse unchanged ---------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda t: t.strip() != "")
_features = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_numbers = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False),
)
_kinds = {
    "number": _numbers,
    "text": st.text(max_size=12),
    "boolean": st.booleans(),
}


@st.composite
def _predicates(draw: st.DrawFn) -> Predicate:
    op = draw(st.sampled_from(OPS))
    feature = draw(_features)
    if op in NULL_OPS:
        return Predicate(feature=feature, op=op)
    values = _kinds[draw(st.sampled_from(sorted(_kinds)))]
    if op in LIST_OPS:
        return Predicate(
            feature=feature, op=op, value=tuple(draw(st.lists(values, min_size=1, max_size=4)))
        )
    return Predicate(feature=feature, op=op, value=draw(values))


def _groups(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    members = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        members.map(lambda m: AllOf(all=m)),
        members.map(lambda m: AnyOf(any=m)),
        children.map(lambda c: Not(not_=c)),
    )


_conditions = st.recursive(_predicates(), _groups, max_leaves=8).filter(
    lambda c: condition_depth(c) <= MAX_CONDITION_DEPTH
)


@st.composite
def _strategies(draw: st.DrawFn) -> Strategy:
    entity = draw(st.sampled_from(list(Entity)))
    channels = draw(
        st.lists(st.sampled_from(ENTITY_CHANNELS[entity]), min_size=1, unique=True).map(tuple)
    )
    return Strategy(
        id=draw(st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}", fullmatch=True)),
        version=draw(st.integers(min_value=1, max_value=10_000)),
        name=draw(_text),
        owner=draw(_text),
        description=draw(_text),
        entity=entity,
        policy=draw(st.sampled_from(list(Policy))),
        channels=channels,
        action=draw(st.sampled_from(list(Action))),
        status=draw(st.sampled_from(list(StrategyStatus))),
        created_at=draw(
            st.none() | st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
        ),
        parent=draw(st.none() | st.just("base-rule@v1")),
        notes=draw(st.none() | _text),
        condition=draw(_conditions),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_strategies())
def test_dump_parse_round_trip(strategy: Strategy) -> None:
    text = dump_strategy(strategy)
    assert parse_strategy(text) == strategy
    assert isinstance(yaml.safe_load(text), dict)


def test_the_documented_example_is_valid() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "strategies.md"
    block = docs.read_text(encoding="utf-8").split("```yaml\n", 1)[1].split("```", 1)[0]
    s = parse_strategy(block, source=str(docs))
    assert s.ref == "listing-counterfeit-terms@v2"
    assert s.parent == "listing-counterfeit-terms@v1"
    assert s.created_at == datetime(2024, 5, 1, 9, 30)
