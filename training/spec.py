"""Experiment specs: one YAML file describes a training run (data, targets, features, parameters).

`load_spec(path)` parses and validates a spec strictly; every problem in the file is reported at
once, each naming the field path (`lightgbm.num_leaves`, `targets[0].policies[2]`) and the fix.
Relative paths resolve against the current working directory, as command-line paths do.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.settings import thread_count
from features.vocabulary import Entity, Policy

#: The pseudo-policy of the any-violation model: violating on at least one judged policy.
ANY = "any"
#: Dimensions metrics can be sliced by.
SliceDimension = Literal["channel", "category", "seller", "new_category"]
#: Largest number of Optuna trials a spec may ask for.
MAX_OPTUNA_TRIALS = 500


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file: where it is and what to do."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class SpecError(ValueError):
    """A spec file that cannot be used; lists every problem found."""

    def __init__(self, source: str, problems: Sequence[SpecProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TargetSpec(_Strict):
    """Models to train for one entity: one per policy, `any` being the any-violation model."""

    entity: Entity
    policies: tuple[str, ...]

    @field_validator("entity", mode="before")
    @classmethod
    def _entity_name(cls, v: object) -> object:
        if isinstance(v, str) and v not in {e.value for e in Entity}:
            raise PydanticCustomError(
                "bad_entity",
                "unknown entity '{value}'; use one of {known}",
                {"value": v, "known": ", ".join(e.value for e in Entity)},
            )
        return v

    @field_validator("policies", mode="before")
    @classmethod
    def _policy_names(cls, v: object) -> object:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple):
            return v
        if not v:
            raise PydanticCustomError("no_policies", "list at least one policy (or any)", {})
        known = [p.value for p in Policy] + [ANY]
        bad = [p for p in v if not isinstance(p, str) or p not in known]
        if bad:
            raise PydanticCustomError(
                "bad_policy",
                "unknown policy {bad}; use any of {known}",
                {"bad": ", ".join(repr(b) for b in bad), "known": ", ".join(known)},
            )
        dupes = sorted({p for p in v if list(v).count(p) > 1})
        if dupes:
            raise PydanticCustomError(
                "duplicate_policy",
                "policy listed twice: {dupes}; list each once",
                {"dupes": ", ".join(dupes)},
            )
        return tuple(v)


class FeatureSelection(_Strict):
    """Which of the entity's declared features the model uses (glob patterns over names)."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def select(self, names: Sequence[str]) -> list[str]:
        """The names kept, in their declared order."""
        kept = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in self.include)]
        return [n for n in kept if not any(fnmatch.fnmatchcase(n, p) for p in self.exclude)]


class LabelSpec(_Strict):
    """How audit labels become training targets and weights."""

    dedupe: Literal["majority", "latest"] = "majority"
    weighting: Literal["inverse_inclusion", "none"] = "inverse_inclusion"
    max_weight: float | None = Field(default=5.0, gt=1)
    min_positives: int = Field(default=20, ge=1)
    any_target: Literal["imputed", "judged"] = "imputed"
    feature_cutoff: Literal["week", "day"] = "week"


class LightGBMSpec(_Strict):
    """LightGBM training parameters; threads and determinism are explicit."""

    num_boost_round: int = Field(default=500, ge=1, le=20_000)
    early_stopping_rounds: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=131_072)
    max_depth: int = Field(default=-1, ge=-1)
    min_data_in_leaf: int = Field(default=20, ge=1)
    min_sum_hessian_in_leaf: float = Field(default=1e-3, ge=0)
    feature_fraction: float = Field(default=0.9, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l1: float = Field(default=0.0, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    max_bin: int = Field(default=255, ge=2)
    max_cat_to_onehot: int = Field(default=4, ge=1)
    cat_smooth: float = Field(default=10.0, ge=0)
    cat_l2: float = Field(default=10.0, ge=0)
    min_data_per_group: int = Field(default=50, ge=1)
    num_threads: int = Field(default_factory=thread_count, ge=1)
    deterministic: bool = True
    seed: int = 7

    def params(self) -> dict[str, Any]:
        """The parameter dict `lightgbm.train` takes (without the round counts)."""
        params = self.model_dump(exclude={"num_boost_round", "early_stopping_rounds"})
        params.update(
            objective="binary",
            metric="binary_logloss",
            verbosity=-1,
            force_row_wise=True,
            feature_pre_filter=False,
        )
        return params


class SplitSpec(_Strict):
    """Time-based split: test on the last weeks, validate early stopping on the weeks before.

    `by: random` is for labels without a time order (a bring-your-own sample drawn at once):
    a seeded `test_fraction` of the labels is the holdout, `validation_fraction` (default 0.2)
    of the rest validates early stopping, and the rest falls into random CV folds.
    """

    by: Literal["time", "random"] = "time"
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 7
    test_weeks: int = Field(default=2, ge=1)
    validation_weeks: int | None = Field(default=1, ge=1)
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    cv_folds: int = Field(default=5, ge=2, le=20)

    @model_validator(mode="before")
    @classmethod
    def _one_validation_rule(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("validation_fraction") is not None:
            if data.get("validation_weeks") is not None:
                raise PydanticCustomError(
                    "two_validation_rules",
                    "give validation_weeks or validation_fraction, not both",
                    {},
                )
            data = {**data, "validation_weeks": None}
        return data


class CalibrationSpec(_Strict):
    """Probability calibration: isotonic with enough labels of each class, Platt otherwise."""

    method: Literal["auto", "isotonic", "platt"] = "auto"
    isotonic_min_per_class: int = Field(default=300, ge=1)
    bins: int = Field(default=10, ge=2, le=100)
    #: Prior sd of the log-odds shift that calibrates the map on the population (untrimmed
    #: inverse-inclusion weights; see `training.calibrate.population_shift`); null: no shift.
    population_shift_sd: float | None = Field(default=1.0, gt=0)


class SliceSpec(_Strict):
    """Evaluation slices: which dimensions, and how new sellers and new categories are found."""

    dimensions: tuple[SliceDimension, ...] = ("channel", "category", "seller", "new_category")
    new_seller_days: float = Field(default=90.0, gt=0)
    new_categories: tuple[str, ...] | None = None
    new_category_after_days: float = Field(default=14.0, ge=0)
    min_labels: int = Field(default=30, ge=1)


class OptunaSpec(_Strict):
    """Optional hyperparameter search, each trial a nested MLflow run."""

    enabled: bool = False
    n_trials: int = Field(default=20, ge=1, le=MAX_OPTUNA_TRIALS)
    timeout_seconds: float | None = Field(default=900.0, gt=0)
    seed: int = 7


class PromotionSpec(_Strict):
    """Gate a challenger must pass to become champion."""

    min_pr_auc_gain: float = Field(default=0.0, ge=0)
    slice_margin: float = Field(default=0.02, ge=0, le=1)


class TextSpec(_Strict):
    """N-gram text models whose out-of-fold log-odds become `<entity>_text_score_<policy>`."""

    enabled: bool = True
    folds: int = Field(default=5, ge=2, le=20)
    min_positives: int = Field(default=10, ge=1)
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    min_df: int = Field(default=5, ge=1)
    vocabulary: Literal["corpus", "labels"] = "corpus"
    max_word_features: int = Field(default=50_000, ge=1)
    max_char_features: int = Field(default=100_000, ge=1)
    C: float = Field(default=10.0, gt=0)


class MlflowSpec(_Strict):
    """Where runs go and whether trained models are registered."""

    experiment: str = Field(default="govrisk", min_length=1)
    artifact_location: str | None = None
    register_models: bool = True
    model_name_prefix: str = Field(default="govrisk", pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class DatasetSource(_Strict):
    """A bring-your-own dataset to train on: a `govrisk features byo` output folder and an
    audit_labels Parquet file (`govrisk labels draw --reveal`)."""

    path: Path
    labels: Path

    @model_validator(mode="after")
    def _paths_exist(self, info: ValidationInfo) -> DatasetSource:
        if not (info.context or {}).get("check_paths", False):
            return self
        if not (self.path / "manifest.json").is_file():
            raise PydanticCustomError(
                "path_missing",
                "{path} is not a `govrisk features byo` output folder (no manifest.json)",
                {"path": str(self.path)},
            )
        if not self.labels.is_file():
            raise PydanticCustomError(
                "path_missing",
                "labels file {path} does not exist; draw it with `govrisk labels draw --reveal`",
                {"path": str(self.labels)},
            )
        return self


class ExperimentSpec(_Strict):
    """One training configuration: marketplace tables (`data_dir` and `targets`) or a
    bring-your-own `dataset` (its governance section names the target)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data_dir: Path | None = None
    dataset: DatasetSource | None = None
    output_dir: Path = Path("training-output")
    targets: tuple[TargetSpec, ...]
    features: FeatureSelection = FeatureSelection()
    labels: LabelSpec = LabelSpec()
    lightgbm: LightGBMSpec = LightGBMSpec()
    split: SplitSpec = SplitSpec()
    calibration: CalibrationSpec = CalibrationSpec()
    slices: SliceSpec = SliceSpec()
    optuna: OptunaSpec = OptunaSpec()
    text: TextSpec = TextSpec()
    promotion: PromotionSpec = PromotionSpec()
    mlflow: MlflowSpec = MlflowSpec()

    @field_validator("data_dir")
    @classmethod
    def _data_dir_exists(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        context = info.context or {}
        if v is None or not context.get("check_paths", False):
            return v
        if not v.is_dir():
            raise PydanticCustomError(
                "path_missing",
                "data directory {path} does not exist; run `govrisk simulate --out W` and point "
                "data_dir at W/data, or pass --data",
                {"path": str(v)},
            )
        if not (v / "tables").is_dir():
            raise PydanticCustomError(
                "path_missing",
                "{path} has no tables/ folder; data_dir is the folder holding tables/ "
                "(W/data for `govrisk simulate --out W`)",
                {"path": str(v)},
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _dataset_needs_no_targets(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("dataset") is not None:
            return {"targets": (), **data}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ExperimentSpec:
        if (self.data_dir is None) == (self.dataset is None):
            raise PydanticCustomError(
                "one_source",
                "give data_dir (marketplace tables) or dataset (bring your own data), not "
                "both or neither",
                {},
            )
        if self.dataset is not None and self.targets:
            raise PydanticCustomError(
                "byo_targets",
                "targets: a dataset's target comes from its spec's governance section; drop it",
                {},
            )
        return self

    @field_validator("targets")
    @classmethod
    def _entities_once(
        cls, v: tuple[TargetSpec, ...], info: ValidationInfo
    ) -> tuple[TargetSpec, ...]:
        if not v and info.data.get("dataset") is None:
            raise PydanticCustomError(
                "no_targets", "list at least one target (an entity and its policies)", {}
            )
        entities = [t.entity.value for t in v]
        dupes = sorted({e for e in entities if entities.count(e) > 1})
        if dupes:
            raise PydanticCustomError(
                "duplicate_entity",
                "entity listed in two targets: {dupes}; merge their policies into one entry",
                {"dupes": ", ".join(dupes)},
            )
        return v

    def target_pairs(self) -> list[tuple[Entity, str]]:
        """Every (entity, policy) model this spec trains, in spec order."""
        return [(t.entity, p) for t in self.targets for p in t.policies]


def load_spec(
    path: Path | str,
    *,
    data_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    dataset: Path | str | None = None,
    labels: Path | str | None = None,
    check_paths: bool = True,
) -> ExperimentSpec:
    """Read and validate a spec file; `data_dir` / `output_dir` and the dataset's `path` and
    `labels` (`dataset` / `labels`) override the file's values."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), [SpecProblem("", "spec file not found")])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [SpecProblem("", f"not valid YAML: {exc}")]) from exc
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    if output_dir is not None:
        overrides["output_dir"] = str(output_dir)
    if dataset is not None or labels is not None:
        given = raw.get("dataset") if isinstance(raw, Mapping) else None
        source = dict(given) if isinstance(given, Mapping) else {}
        if dataset is not None:
            source["path"] = str(dataset)
        if labels is not None:
            source["labels"] = str(labels)
        overrides["dataset"] = source
    return parse_spec(raw, source=str(path), overrides=overrides, check_paths=check_paths)


def parse_spec(
    raw: object,
    *,
    source: str = "<spec>",
    overrides: Mapping[str, Any] | None = None,
    check_paths: bool = False,
) -> ExperimentSpec:
    """Validate an already-parsed spec mapping; raises SpecError listing every problem."""
    if not isinstance(raw, Mapping):
        kind = type(raw).__name__
        raise SpecError(source, [SpecProblem("", f"expected a mapping at the top, got {kind}")])
    data = {**raw, **(overrides or {})}
    try:
        return ExperimentSpec.model_validate(data, context={"check_paths": check_paths})
    except ValidationError as exc:
        raise SpecError(source, _problems(exc)) from None


def spec_to_dict(spec: ExperimentSpec) -> dict[str, Any]:
    """The spec as plain JSON-able data (paths as strings)."""
    return spec.model_dump(mode="json")


def flat_params(spec: ExperimentSpec) -> dict[str, str]:
    """The spec flattened to `section.key` strings, for MLflow params."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        else:
            out[prefix] = (
                ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            )

    walk("", spec_to_dict(spec))
    return out


def _problems(exc: ValidationError) -> list[SpecProblem]:
    problems = []
    for err in exc.errors():
        loc = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(err["loc"][:-1])
            hint = f"; known keys here: {', '.join(known)}" if known else ""
            problems.append(SpecProblem(loc, f"unknown key{hint}"))
        elif err["type"] == "missing":
            problems.append(SpecProblem(loc, "required key missing"))
        else:
            problems.append(SpecProblem(loc, str(err["msg"])))
    return problems


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a spec section accepts, found by walking the models along `loc`."""
    model: type[BaseModel] = ExperimentSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        nested = _model_of(field.annotation)
        if nested is None:
            return []
        model = nested
    return list(model.model_fields)


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
