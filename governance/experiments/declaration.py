"""An experiment as data: what it compares, on which units and traffic, and how it is judged.

An experiment is declared in YAML (or through `govrisk experiments create`) and validated like a
strategy: every problem is reported at once with its field path and a fix, and the two strategy
versions must exist in the registry (`check_against_registry`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from features.vocabulary import Channel, StrategyStatus
from governance.experiments.metrics import METRICS
from governance.experiments.vocabulary import RandomisationUnit
from governance.strategy import format_ref, parse_ref

if TYPE_CHECKING:
    from governance.registry import StrategyRegistry

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ExperimentError(ValueError):
    """An experiment declaration is invalid; `problems` lists every `path: message`."""

    def __init__(self, problems: list[str], *, source: str = "experiment") -> None:
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in {source}:\n  {lines}\n"
            "See docs/experiments.md for the experiment format."
        )


class Guardrail(BaseModel):
    """A metric the treatment must not make worse by more than `margin` (relative)."""

    model_config = _FROZEN

    metric: str
    #: Non-inferiority margin as a relative change of the control mean, e.g. 0.02 = 2%.
    margin: float = Field(gt=0, lt=1)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; use one of {', '.join(METRICS)}")
        return v


def _naive_utc(v: datetime) -> datetime:
    return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo is not None else v


class Experiment(BaseModel):
    """One A/B test of a candidate strategy version (treatment) against the active one."""

    model_config = _FROZEN

    id: str = Field(max_length=80)
    name: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    hypothesis: str = ""
    #: The active version, `<id>@v<N>`.
    control: str
    #: The candidate version, `<id>@v<N>` (draft or shadow).
    treatment: str
    unit: RandomisationUnit = RandomisationUnit.SELLER
    #: Share of units in the experiment; half of them get the treatment.
    traffic_share: float = Field(0.5, gt=0, le=1)
    #: Channels the treatment acts in; empty means every channel of the treatment version.
    channels: tuple[Channel, ...] = ()
    start: datetime
    end: datetime
    primary_metric: str
    guardrails: tuple[Guardrail, ...] = ()
    #: Minimum detectable effect on the primary metric, relative (0.05 = 5%).
    mde: float = Field(gt=0, lt=10)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0.5, lt=1)
    #: Days before `start` whose per-unit values serve as CUPED covariates.
    pre_period_days: int = Field(14, ge=0, le=365)

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG_RE.match(v):
            raise ValueError(
                f"{v!r} is not a slug; use lowercase letters, digits and single hyphens"
            )
        return v

    @field_validator("control", "treatment")
    @classmethod
    def _ref(cls, v: str) -> str:
        strategy_id, version = parse_ref(v)
        if version is None:
            raise ValueError(f"{v!r} names no version; write <id>@v<version>")
        return format_ref(strategy_id, version)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _naive_utc(v)

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; use one of {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if self.end <= self.start:
            problems.append("end must be after start")
        if self.control == self.treatment:
            problems.append("control and treatment are the same version; name two versions")
        names = [g.metric for g in self.guardrails]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            problems.append(f"guardrail(s) {', '.join(doubles)} listed twice; list each once")
        if self.primary_metric in names:
            problems.append(
                f"{self.primary_metric} is the primary metric and a guardrail; pick one role"
            )
        if len(set(self.channels)) != len(self.channels):
            problems.append("a channel is listed twice; list each channel once")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def duration_days(self) -> float:
        """Planned length in days."""
        return (self.end - self.start).total_seconds() / 86_400


def experiment_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Experiment:
    """Validate parsed data into an Experiment; raises ExperimentError listing every problem."""
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(experiment)'}: {e['msg']}"
            for e in err.errors(include_url=False)
        ]
        raise ExperimentError(problems, source=source) from err


def parse_experiment(text: str, *, source: str = "<string>") -> Experiment:
    """Parse one experiment from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ExperimentError([f"invalid YAML: {err}"], source=source) from err
    if not isinstance(data, dict):
        raise ExperimentError(["expected a mapping of experiment fields"], source=source)
    return experiment_from_dict(data, source=source)


def dump_experiment(experiment: Experiment) -> str:
    """The experiment as YAML; `parse_experiment` reads it back equal."""
    data = experiment.model_dump(mode="json", exclude_defaults=False)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    assert isinstance(text, str)
    return text


def check_against_registry(experiment: Experiment, registry: StrategyRegistry) -> None:
    """Raise ExperimentError unless both versions exist and can be compared.

    Control must be the active version, treatment a draft or shadow version on the same entity,
    and the experiment's channels among the treatment's.
    """
    problems: list[str] = []
    found = {}
    for role in ("control", "treatment"):
        ref = getattr(experiment, role)
        if ref not in registry:
            ids = ", ".join(registry.ids()[:8])
            problems.append(f"{role}: strategy version {ref} is not in the registry (ids: {ids})")
        else:
            found[role] = registry.get(ref)
    control, treatment = found.get("control"), found.get("treatment")
    if control is not None and control.status is not StrategyStatus.ACTIVE:
        problems.append(
            f"control: {control.ref} is {control.status.value}; control must be the active version"
        )
    if treatment is not None and treatment.status not in (
        StrategyStatus.DRAFT,
        StrategyStatus.SHADOW,
    ):
        problems.append(
            f"treatment: {treatment.ref} is {treatment.status.value}; "
            "the candidate must be a draft or shadow version"
        )
    if control is not None and treatment is not None and control.entity != treatment.entity:
        problems.append(
            f"treatment: {treatment.ref} acts on {treatment.entity.value} but {control.ref} on "
            f"{control.entity.value}; compare versions on the same entity"
        )
    if treatment is not None:
        extra = [c.value for c in experiment.channels if c not in treatment.channels]
        if extra:
            problems.append(
                f"channels: {', '.join(extra)} not among {treatment.ref}'s channels "
                f"({', '.join(c.value for c in treatment.channels)})"
            )
    if problems:
        raise ExperimentError(problems, source=f"experiment {experiment.id}")
