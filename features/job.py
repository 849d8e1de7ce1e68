"""The `features build` job: validate every input, build, then write — nothing on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from features.build import BUILD_STEPS, INPUT_TABLES, FeatureBuild, build_features
from features.contract import ContractError
from features.loader import load_tables
from features.references import strategy_problems
from features.store import data_digest, default_as_of, write_build
from features.text_source import text_fields_of
from features.vocabulary import Entity

#: Steps reported to `on_step`, in order (validation, the build's own steps, writing).
JOB_STEPS = ("validate inputs", *BUILD_STEPS, "write outputs")


class InputError(ValueError):
    """The build inputs are unusable; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cannot build features:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class JobResult:
    """A finished build and the paths it wrote."""

    build: FeatureBuild
    paths: list[Path]


def run_build(
    data_dir: Path,
    out_dir: Path,
    *,
    as_of: datetime | None = None,
    entities: Iterable[Entity | str] = tuple(Entity),
    threads: int | None = None,
    on_step: Callable[[str], None] | None = None,
    shared: Mapping[str, pa.Table] | None = None,
) -> JobResult:
    """Validate `data_dir` (contract tables, strategy feature references), build every frame
    as of `as_of` (default: midnight after the latest input timestamp) and write `out_dir`.
    `shared`: lookup tables of the whole marketplace when `data_dir` is one partition of it."""
    step = on_step or (lambda _name: None)
    step(JOB_STEPS[0])
    problems: list[str] = []
    try:
        tables = load_tables(data_dir, INPUT_TABLES)
    except ContractError as err:
        problems.extend(str(p) for p in err.problems)
        tables = {}
    problems.extend(f"strategies/{p}" for p in strategy_problems(Path(data_dir) / "strategies"))
    if problems:
        raise InputError(problems)
    cutoff = as_of if as_of is not None else default_as_of(tables)
    build = build_features(
        tables, as_of=cutoff, entities=entities, threads=threads, on_step=step, shared=shared
    )
    step(JOB_STEPS[-1])
    texts = {e: t for e in build.frames if (t := text_fields_of(e, tables)) is not None}
    paths = write_build(build, out_dir, digest=data_digest(Path(data_dir)), texts=texts)
    return JobResult(build=build, paths=paths)
