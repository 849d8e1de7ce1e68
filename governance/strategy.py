"""Traffic control strategies: the versioned YAML format, parsed strictly into frozen models.

A strategy is one file, `<id>@v<version>.yaml`. Its `condition` is a tree of `all` / `any` /
`not` groups over predicates `{feature, op, value}`; nothing in it is ever evaluated as code.
Every problem found in a file is reported at once, each naming the file, the field path
(`condition.all[1].any[0].op`) and how to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.vocabulary import ENTITY_CHANNELS, Action, Channel, Entity, Policy, StrategyStatus

Op = Literal["<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null"]
#: Every operator a predicate may use, in documentation order.
OPS: tuple[str, ...] = get_args(Op)
#: Operators comparing a feature with one value.
COMPARISON_OPS: frozenset[str] = frozenset({"<", "<=", ">", ">=", "==", "!="})
#: Operators that need an order on the feature (numeric features only).
ORDER_OPS: frozenset[str] = frozenset({"<", "<=", ">", ">="})
#: Operators taking a non-empty list of values.
LIST_OPS: frozenset[str] = frozenset({"in", "not_in"})
#: Operators taking no value.
NULL_OPS: frozenset[str] = frozenset({"is_null", "not_null"})

Scalar: TypeAlias = bool | int | float | str
#: A predicate's value: one scalar, a tuple of scalars (in / not_in) or None (is_null / not_null).
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None

#: Deepest nesting of all / any / not groups a condition may have.
MAX_CONDITION_DEPTH = 12

_SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_SLUG_RE = re.compile(rf"^{_SLUG}$")
_FEATURE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_REF_RE = re.compile(rf"^(?P<id>{_SLUG})(?:@v?(?P<version>[0-9]+))?$")
_OP_ALIASES = {
    "lt": "<",
    "le": "<=",
    "lte": "<=",
    "gt": ">",
    "ge": ">=",
    "gte": ">=",
    "eq": "==",
    "=": "==",
    "is": "==",
    "ne": "!=",
    "neq": "!=",
    "<>": "!=",
    "not in": "not_in",
    "notin": "not_in",
    "nin": "not_in",
    "isnull": "is_null",
    "is null": "is_null",
    "null": "is_null",
    "notnull": "not_null",
    "not null": "not_null",
    "is_not_null": "not_null",
    "exists": "not_null",
}


# --------------------------------------------------------------------------------------------
# Problems and errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyProblem:
    """One problem in one strategy file: where (`source`, field `path`) and what to do."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class StrategyError(ValueError):
    """One or more strategy files are invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[StrategyProblem]) -> None:
        self.problems = list(problems)
        n_sources = len({p.source for p in self.problems})
        lines = "\n  ".join(str(p) for p in self.problems)
        see = "see docs/strategies.md for the strategy YAML format"
        if len(self.problems) == 1:
            super().__init__(f"{lines} ({see})")
            return
        super().__init__(
            f"{len(self.problems)} problems in {n_sources} strategy file(s):\n  {lines}\n{see}"
        )


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _scalar_kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def _check_scalar(value: object, op: str) -> Scalar:
    if isinstance(value, datetime | date):
        raise PydanticCustomError(
            "value_type",
            "dates are not comparable values (got {got}); use a numeric feature such as "
            "`*_age_days` or quote the value to compare text",
            {"got": str(value)},
        )
    if isinstance(value, list | tuple | dict):
        raise PydanticCustomError(
            "value_shape",
            "op '{op}' compares with one value, got a {kind}; write a single number, text or "
            "true/false (use `in` / `not_in` for a list)",
            {"op": op, "kind": type(value).__name__},
        )
    if value is None:
        raise PydanticCustomError(
            "value_missing",
            "op '{op}' needs a value; add `value: ...` (use is_null / not_null to test for "
            "missing values)",
            {"op": op},
        )
    if _scalar_kind(value) is None:
        raise PydanticCustomError(
            "value_type",
            "value must be a number, text or true/false, got {kind}",
            {"kind": type(value).__name__},
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(
            "value_finite", "value must be a finite number, got {got}", {"got": str(value)}
        )
    assert isinstance(value, bool | int | float | str)
    return value


class Predicate(BaseModel):
    """`feature op value`: one test on one column of the target entity's feature frame."""

    model_config = _FROZEN

    feature: str
    op: Op
    value: Value = Field(default=None, validate_default=True)

    @field_validator("feature", mode="before")
    @classmethod
    def _feature_name(cls, v: object) -> object:
        if isinstance(v, str) and not _FEATURE_RE.match(v):
            raise PydanticCustomError(
                "feature_name",
                "feature {name} is not a feature name; names are lower_snake_case "
                "(letters, digits, underscores, starting with a letter)",
                {"name": repr(v)},
            )
        return v

    @field_validator("op", mode="before")
    @classmethod
    def _op_name(cls, v: object) -> object:
        if isinstance(v, str) and v not in OPS:
            hint = _OP_ALIASES.get(v.strip().lower())
            fix = f"did you mean {hint!r}? " if hint else ""
            raise PydanticCustomError(
                "operator",
                "{got} is not an operator; {fix}use one of {ops}",
                {"got": repr(v), "fix": fix, "ops": ", ".join(OPS)},
            )
        return v

    @field_validator("value", mode="plain")
    @classmethod
    def _value_shape(cls, v: object, info: ValidationInfo) -> Value:
        op = info.data.get("op")
        if op is None:  # the op itself is invalid and reported; nothing to check against
            return v if isinstance(v, bool | int | float | str | None) else None
        if op in NULL_OPS:
            if v is not None:
                raise PydanticCustomError(
                    "value_shape", "op '{op}' takes no value; remove `value`", {"op": op}
                )
            return None
        if op in LIST_OPS:
            if not isinstance(v, list | tuple) or not v:
                raise PydanticCustomError(
                    "value_shape",
                    "op '{op}' needs a non-empty list of values, e.g. `value: [a, b]`",
                    {"op": op},
                )
            items = tuple(_check_scalar(item, op) for item in v)
            kinds = {_scalar_kind(item) for item in items}
            if len(kinds) > 1:
                raise PydanticCustomError(
                    "value_type",
                    "the values of '{op}' mix {kinds}; use one kind (quote numbers meant as text)",
                    {"op": op, "kinds": " and ".join(sorted(k or "?" for k in kinds))},
                )
            return items
        return _check_scalar(v, op)


def _non_empty_group(members: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    # Checked after the members validate, so a group of broken members is not also "empty".
    if not members:
        raise PydanticCustomError(
            "empty_group",
            "an `{key}` group needs at least one condition; remove the group or add members",
            {"key": key},
        )
    return members


class AllOf(BaseModel):
    """True where every member condition is true."""

    model_config = _FROZEN

    all: tuple[Condition, ...]

    @field_validator("all", mode="after")
    @classmethod
    def _not_empty(cls, v: tuple[Condition, ...]) -> tuple[Condition, ...]:
        return _non_empty_group(v, "all")


class AnyOf(BaseModel):
    """True where at least one member condition is true."""

    model_config = _FROZEN

    any: tuple[Condition, ...]

    @field_validator("any", mode="after")
    @classmethod
    def _not_empty(cls, v: tuple[Condition, ...]) -> tuple[Condition, ...]:
        return _non_empty_group(v, "any")


class Not(BaseModel):
    """True where the member condition is false (including where it is false for missing data)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    not_: Condition = Field(alias="not")


def _condition_tag(v: Any) -> str | None:
    if isinstance(v, Predicate):
        return "@predicate"
    if isinstance(v, AllOf):
        return "@all"
    if isinstance(v, AnyOf):
        return "@any"
    if isinstance(v, Not):
        return "@not"
    if not isinstance(v, dict):
        return None
    groups = [k for k in ("all", "any", "not") if k in v]
    if "feature" in v and not groups:
        return "@predicate"
    if len(groups) == 1 and "feature" not in v:
        return f"@{groups[0]}"
    return None


#: A condition node: a predicate or an all / any / not group.
Condition: TypeAlias = Annotated[
    Annotated[Predicate, Tag("@predicate")]
    | Annotated[AllOf, Tag("@all")]
    | Annotated[AnyOf, Tag("@any")]
    | Annotated[Not, Tag("@not")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_shape",
        custom_error_message=(
            "a condition is either a predicate {feature, op, value} or a mapping with exactly "
            "one key: all (list), any (list) or not (one condition)"
        ),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def _ref_string(v: object) -> object:
    if isinstance(v, str):
        m = _REF_RE.match(v.strip())
        if m is None or m.group("version") is None:
            raise PydanticCustomError(
                "strategy_ref",
                "{got} is not a strategy reference; write `<id>@v<version>`, e.g. "
                "listing-counterfeit-terms@v2",
                {"got": repr(v)},
            )
        return f"{m.group('id')}@v{int(m.group('version'))}"
    return v


class Strategy(BaseModel):
    """One version of a traffic control strategy, as declared in `<id>@v<version>.yaml`."""

    model_config = _FROZEN

    id: str = Field(pattern=rf"^{_SLUG}$", max_length=80)
    version: StrictInt = Field(ge=1)
    name: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    description: str = Field(min_length=1)
    entity: Entity
    policy: Policy
    channels: tuple[Channel, ...] = Field(min_length=1)
    action: Action
    status: StrategyStatus
    created_at: datetime | None = None
    parent: str | None = None
    notes: str | None = None
    condition: Condition

    @field_validator("id", mode="before")
    @classmethod
    def _id_slug(cls, v: object) -> object:
        if isinstance(v, str) and not _SLUG_RE.match(v):
            raise PydanticCustomError(
                "slug",
                "{got} is not a slug; use lowercase letters, digits and single hyphens, "
                "e.g. listing-counterfeit-terms",
                {"got": repr(v)},
            )
        return v

    @field_validator("name", "owner", "description", mode="after")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise PydanticCustomError("blank", "must not be blank; write a few words", {})
        return v

    @field_validator("created_at", mode="after")
    @classmethod
    def _naive_utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is not None:
            return v.astimezone(UTC).replace(tzinfo=None)
        return v

    @field_validator("parent", mode="before")
    @classmethod
    def _parent_ref(cls, v: object) -> object:
        return _ref_string(v)

    @field_validator("channels", mode="after")
    @classmethod
    def _channels_for_entity(
        cls, v: tuple[Channel, ...], info: ValidationInfo
    ) -> tuple[Channel, ...]:
        problems: list[str] = []
        duplicates = sorted({c.value for c in v if v.count(c) > 1})
        if duplicates:
            problems.append(f"{', '.join(duplicates)} listed twice (list each channel once)")
        entity = info.data.get("entity")
        if entity is not None:
            allowed = ENTITY_CHANNELS[entity]
            bad = [c.value for c in v if c not in allowed]
            if bad:
                problems.append(
                    f"{', '.join(bad)} cannot show {entity.value} items (use a subset of "
                    f"{', '.join(c.value for c in allowed)})"
                )
        if problems:
            raise PydanticCustomError("channels", "{problems}", {"problems": "; ".join(problems)})
        return v

    @model_validator(mode="after")
    def _depth(self) -> Strategy:
        depth = condition_depth(self.condition)
        if depth > MAX_CONDITION_DEPTH:
            raise PydanticCustomError(
                "condition_depth",
                "condition nests {depth} groups deep; flatten it to at most {max} levels",
                {"depth": depth, "max": MAX_CONDITION_DEPTH},
            )
        return self

    @property
    def ref(self) -> str:
        """`<id>@v<version>`: how decisions, flags and file names refer to this version."""
        return format_ref(self.id, self.version)

    @property
    def features(self) -> tuple[str, ...]:
        """Sorted names of the features the condition reads."""
        return tuple(sorted({p.feature for _, p in iter_predicates(self.condition)}))

    @property
    def file_name(self) -> str:
        """The registry file name of this version: `<id>@v<version>.yaml`."""
        return f"{self.ref}.yaml"


# --------------------------------------------------------------------------------------------
# References and condition helpers
# --------------------------------------------------------------------------------------------


def format_ref(strategy_id: str, version: int) -> str:
    """`<id>@v<version>`."""
    return f"{strategy_id}@v{version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split `id`, `id@3` or `id@v3` into (id, version or None)."""
    m = _REF_RE.match(ref.strip())
    if m is None:
        raise ValueError(
            f"{ref!r} is not a strategy reference; write `<id>`, `<id>@<version>` or "
            "`<id>@v<version>`, e.g. listing-counterfeit-terms@v2"
        )
    version = m.group("version")
    if version is not None and int(version) < 1:
        raise ValueError(f"{ref!r}: versions start at 1")
    return m.group("id"), int(version) if version is not None else None


def iter_predicates(
    condition: Condition, path: str = "condition"
) -> Iterator[tuple[str, Predicate]]:
    """Every predicate of a condition with its field path (`condition.all[1].any[0]`)."""
    if isinstance(condition, Predicate):
        yield path, condition
    elif isinstance(condition, AllOf):
        for i, child in enumerate(condition.all):
            yield from iter_predicates(child, f"{path}.all[{i}]")
    elif isinstance(condition, AnyOf):
        for i, child in enumerate(condition.any):
            yield from iter_predicates(child, f"{path}.any[{i}]")
    else:
        yield from iter_predicates(condition.not_, f"{path}.not")


def condition_depth(condition: Condition) -> int:
    """Number of nested groups above the deepest predicate (0 for a bare predicate)."""
    if isinstance(condition, Predicate):
        return 0
    if isinstance(condition, Not):
        return 1 + condition_depth(condition.not_)
    children = condition.all if isinstance(condition, AllOf) else condition.any
    return 1 + max(condition_depth(c) for c in children)


_PATH_STEP = re.compile(r"\.(all|any)\[(\d+)\]|\.(not)")


def replace_node(condition: Condition, path: str, replacement: Condition | None) -> Condition:
    """A copy of `condition` with the node at `path` replaced (removed if `replacement` is None).

    Paths are those of `iter_predicates` (`condition.all[1].any[0]`). Removing the only member of
    a group removes the group; removing the whole condition is an error.
    """
    if not path.startswith("condition"):
        raise ValueError(f"path {path!r} must start with 'condition'")
    steps: list[tuple[str, int]] = []
    rest = path[len("condition") :]
    while rest:
        m = _PATH_STEP.match(rest)
        if m is None:
            raise ValueError(f"path {path!r} is malformed at {rest!r}")
        steps.append((m.group(1), int(m.group(2))) if m.group(1) else ("not", 0))
        rest = rest[m.end() :]
    result = _replace(condition, steps, replacement, path)
    if result is None:
        raise ValueError(f"removing {path!r} would leave the strategy without a condition")
    return result


def _replace(
    node: Condition, steps: list[tuple[str, int]], new: Condition | None, path: str
) -> Condition | None:
    if not steps:
        return new
    key, index = steps[0]
    if key == "not":
        if not isinstance(node, Not):
            raise ValueError(f"path {path!r} does not match the condition (no `not` there)")
        child = _replace(node.not_, steps[1:], new, path)
        return None if child is None else Not(not_=child)
    if key == "all" and isinstance(node, AllOf):
        members = node.all
    elif key == "any" and isinstance(node, AnyOf):
        members = node.any
    else:
        raise ValueError(f"path {path!r} does not match the condition (no `{key}` group there)")
    if index >= len(members):
        raise ValueError(f"path {path!r}: the `{key}` group has only {len(members)} member(s)")
    child = _replace(members[index], steps[1:], new, path)
    replaced = () if child is None else (child,)
    kept = tuple(members[:index]) + replaced + tuple(members[index + 1 :])
    if not kept:
        return None
    return AllOf(all=kept) if key == "all" else AnyOf(any=kept)


#: The opposite of each comparison (on present values; missing values satisfy neither).
FLIPPED_OPS: dict[str, str] = {
    "<": ">=",
    "<=": ">",
    ">": "<=",
    ">=": "<",
    "==": "!=",
    "!=": "==",
    "in": "not_in",
    "not_in": "in",
    "is_null": "not_null",
    "not_null": "is_null",
}


def negate(condition: Condition) -> Condition:
    """The condition's opposite: a predicate with its comparison flipped, a group under `not`.

    A flipped predicate still needs its value present (`x < 3` negates to `x >= 3`, which a
    missing `x` satisfies neither way), as the evaluator treats missing values.
    """
    if isinstance(condition, Predicate):
        return condition.model_copy(update={"op": FLIPPED_OPS[condition.op]})
    return Not(not_=condition)


def render_condition(condition: Condition) -> str:
    """The condition as one readable line: `a >= 1 AND (b < 90 OR c in [x, y])`."""
    return _render(condition, top=True)


def _render_value(value: Value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_render_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _render(node: Condition, *, top: bool = False) -> str:
    if isinstance(node, Predicate):
        if node.op in NULL_OPS:
            return f"{node.feature} is {'missing' if node.op == 'is_null' else 'present'}"
        op = node.op.replace("_", " ")
        return f"{node.feature} {op} {_render_value(node.value)}"
    if isinstance(node, Not):
        return f"NOT ({_render(node.not_, top=True)})"
    members = node.all if isinstance(node, AllOf) else node.any
    joiner = " AND " if isinstance(node, AllOf) else " OR "
    text = joiner.join(_render(m) for m in members)
    return text if top or len(members) == 1 else f"({text})"


# --------------------------------------------------------------------------------------------
# YAML in and out
# --------------------------------------------------------------------------------------------


class _StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first at line {seen[key].start_mark.line + 1}); "
                "keep only one",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=True)


_StrictSafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _yaml_problem(err: yaml.YAMLError, source: str) -> StrategyProblem:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = ""
    if any(s in problem for s in ("mapping values are not allowed", "block scalar", "chomping")):
        hint = " (quote operators such as \">=\" and text containing ': ')"
    return StrategyProblem(source, where, f"invalid YAML: {problem}{hint}")


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("@") and i < len(loc) - 1:
            continue  # union tags pydantic inserts; not part of the user's document
        else:
            out += f".{part}" if out else part
    return out


def _allowed_keys(loc: tuple[str | int, ...]) -> tuple[str, ...]:
    tags = [p for p in loc[:-1] if isinstance(p, str) and p.startswith("@")]
    if not tags:
        return tuple(Strategy.model_fields)
    return {
        "@predicate": ("feature", "op", "value"),
        "@all": ("all",),
        "@any": ("any",),
        "@not": ("not",),
    }[tags[-1]]


_OWN_ERROR_TYPES = frozenset(
    {
        "value_type",
        "value_shape",
        "value_missing",
        "value_finite",
        "feature_name",
        "operator",
        "empty_group",
        "condition_shape",
        "strategy_ref",
        "slug",
        "blank",
        "channels",
        "condition_depth",
    }
)


def _error_message(err: Any) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc))
        return f"unknown key {loc[-1]!r}; allowed here: {allowed}"
    if kind == "missing":
        field = loc[-1] if loc else "field"
        return f"required field missing; add `{field}: ...`"
    if kind in ("enum", "literal_error", "string_pattern_mismatch") and "input" in err:
        return f"got {err['input']!r}; {err['msg'][0].lower()}{err['msg'][1:]}"
    if kind == "too_short" and loc and loc[-1] == "channels":
        return "list at least one channel"
    if kind in _OWN_ERROR_TYPES or "ctx" in err and kind == "condition_shape":
        return str(err["msg"])
    got = err.get("input")
    if isinstance(got, bool | int | float | str) or got is None:
        return f"{err['msg']} (got {got!r})"
    return f"{err['msg']} (got a {type(got).__name__})"


def _validation_problems(err: ValidationError, source: str) -> list[StrategyProblem]:
    return [
        StrategyProblem(source, _format_loc(tuple(e["loc"])), _error_message(e))
        for e in err.errors(include_url=False)
    ]


def parse_strategy(text: str, *, source: str = "<string>") -> Strategy:
    """Parse one strategy from YAML text; raises StrategyError naming `source` and field paths."""
    try:
        data = yaml.load(text, Loader=_StrictSafeLoader)  # safe_load + duplicate-key errors
    except yaml.YAMLError as err:
        raise StrategyError([_yaml_problem(err, source)]) from err
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise StrategyError(
            [StrategyProblem(source, "", f"expected a mapping of strategy fields, got {got}")]
        )
    return strategy_from_dict(data, source=source)


def strategy_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Strategy:
    """Validate already-parsed YAML data into a Strategy; raises StrategyError."""
    try:
        return Strategy.model_validate(data)
    except ValidationError as err:
        raise StrategyError(_validation_problems(err, source)) from err


def load_strategy(path: Path | str) -> Strategy:
    """Read and parse one strategy YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise StrategyError(
            [StrategyProblem(str(path), "", f"not UTF-8 text ({err.reason}); save it as UTF-8")]
        ) from err
    except OSError as err:
        raise StrategyError([StrategyProblem(str(path), "", f"cannot read: {err}")]) from err
    return parse_strategy(text, source=str(path))


class _FlowMap(dict[str, Any]):
    """A mapping emitted on one line (predicates)."""


class _FlowList(list[Any]):
    """A list emitted on one line (channels, `in` values)."""


class _Quoted(str):
    """Text emitted double-quoted (symbolic operators, as the docs write them)."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents block lists under their key and emits literal multi-line text."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        del indentless
        super().increase_indent(flow, False)


_YAML_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Only "\n" survives a literal block; YAML folds its other line breaks, so escape those.
    style: str | None = None
    if any(b in value for b in _YAML_BREAKS):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_flow_map(dumper: yaml.SafeDumper, value: _FlowMap) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, value: _FlowList) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


def _represent_quoted(dumper: yaml.SafeDumper, value: _Quoted) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Quoted, _represent_quoted)
_Dumper.add_representer(_FlowMap, _represent_flow_map)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def condition_to_data(condition: Condition) -> dict[str, Any]:
    """The condition as plain YAML-ready data (predicates as one-line mappings)."""
    if isinstance(condition, Predicate):
        op = condition.op if condition.op.isidentifier() else _Quoted(condition.op)
        out = _FlowMap(feature=condition.feature, op=op)
        if condition.value is not None:
            value = condition.value
            out["value"] = _FlowList(value) if isinstance(value, tuple) else value
        return out
    if isinstance(condition, AllOf):
        return {"all": [condition_to_data(c) for c in condition.all]}
    if isinstance(condition, AnyOf):
        return {"any": [condition_to_data(c) for c in condition.any]}
    return {"not": condition_to_data(condition.not_)}


def strategy_to_data(strategy: Strategy) -> dict[str, Any]:
    """The strategy as plain YAML-ready data in canonical key order; optional fields when set."""
    out: dict[str, Any] = {
        "id": strategy.id,
        "version": strategy.version,
        "name": strategy.name,
        "owner": strategy.owner,
        "description": strategy.description,
        "entity": strategy.entity.value,
        "policy": strategy.policy.value,
        "channels": _FlowList(c.value for c in strategy.channels),
        "action": strategy.action.value,
        "status": strategy.status.value,
    }
    if strategy.created_at is not None:
        out["created_at"] = strategy.created_at
    if strategy.parent is not None:
        out["parent"] = strategy.parent
    if strategy.notes is not None:
        out["notes"] = strategy.notes
    out["condition"] = condition_to_data(strategy.condition)
    return out


def dump_strategy(strategy: Strategy) -> str:
    """The strategy as YAML text in canonical key order; `parse_strategy` reads it back equal."""
    text = yaml.dump(
        strategy_to_data(strategy),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    assert isinstance(text, str)
    return text


# --------------------------------------------------------------------------------------------
# New versions
# --------------------------------------------------------------------------------------------


def with_status(strategy: Strategy, status: StrategyStatus | str) -> Strategy:
    """The same id and version with another status (the only change a version may undergo)."""
    return Strategy.model_validate({**_fields(strategy), "status": StrategyStatus(status)})


def new_version(
    base: Strategy,
    *,
    version: int | None = None,
    status: StrategyStatus | str = StrategyStatus.DRAFT,
    condition: Condition | None = None,
    channels: tuple[Channel | str, ...] | None = None,
    action: Action | str | None = None,
    name: str | None = None,
    owner: str | None = None,
    description: str | None = None,
    notes: str | None = None,
    created_at: datetime | None = None,
) -> Strategy:
    """A new version derived from `base` (`parent` = base.ref), by default version base + 1.

    Pass `version=registry.next_version(base.id)` when later versions may already exist.
    """
    changes: dict[str, Any] = {
        "version": base.version + 1 if version is None else version,
        "status": StrategyStatus(status),
        "parent": base.ref,
        "created_at": created_at,
        "notes": notes,
    }
    optional: dict[str, Any] = {
        "condition": condition,
        "channels": channels,
        "action": action,
        "name": name,
        "owner": owner,
        "description": description,
    }
    changes.update({k: v for k, v in optional.items() if v is not None})
    data = {**_fields(base), **changes}
    if data["version"] <= base.version and data["id"] == base.id:
        raise ValueError(
            f"new version {data['version']} of {base.id!r} must be above base version "
            f"{base.version}"
        )
    try:
        return Strategy.model_validate(data)
    except ValidationError as err:
        raise StrategyError(_validation_problems(err, f"new version of {base.ref}")) from err


def _fields(strategy: Strategy) -> dict[str, Any]:
    # Shallow: keeps the already-validated condition objects instead of re-parsing them.
    return {name: getattr(strategy, name) for name in Strategy.model_fields}
