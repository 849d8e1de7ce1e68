"""The strategy registry: every version of every strategy, loaded from `<data>/strategies/*.yaml`.

Files are named `<id>@v<version>.yaml` and a version is never overwritten: a change is a new
version. The only in-place edit is the status (draft -> shadow -> active -> retired), done through
`StrategyRegistry.set_status`, which also retires the previously active version of the same id.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from features.vocabulary import Channel, Entity, StrategyStatus
from governance.evaluator import FeatureType, check_strategy
from governance.strategy import (
    Strategy,
    StrategyError,
    StrategyProblem,
    dump_strategy,
    format_ref,
    load_strategy,
    parse_ref,
    with_status,
)

#: Sub-directory of a data directory that holds the strategy files.
STRATEGIES_DIRNAME = "strategies"


class StrategyNotFoundError(KeyError):
    """No strategy (or version) matches a reference; the message lists what exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "strategy not found"


def strategies_dir(data_dir: Path | str) -> Path:
    """Where a data directory keeps its strategy files."""
    return Path(data_dir) / STRATEGIES_DIRNAME


def catalog_feature_types(
    entities: Iterable[Entity] = tuple(Entity),
) -> dict[Entity, dict[str, FeatureType]]:
    """Feature names and types strategies may reference, per entity, from the feature catalogue.

    Raises ImportError naming the missing module when `features.catalog` is not available;
    entities the catalogue does not know are left out.
    """
    try:
        from features.catalog import feature_types
    except ImportError as err:
        raise ImportError(
            f"the feature catalogue is unavailable ({err}); strategies can only be checked "
            "for structure, not against feature names and types"
        ) from err
    out: dict[Entity, dict[str, FeatureType]] = {}
    for entity in entities:
        try:
            out[entity] = dict(feature_types(entity))
        except (KeyError, ValueError):
            continue  # no catalogue for this entity: its strategies are reported as such
    return out


def write_version(strategy: Strategy, directory: Path | str) -> Path:
    """Write `strategy` to `directory/<id>@v<version>.yaml`; never overwrites an existing file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / strategy.file_name
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(dump_strategy(strategy))
    except FileExistsError as err:
        raise FileExistsError(
            f"{path} already exists: versions are immutable; write version "
            f"{strategy.version + 1} or higher instead (see StrategyRegistry.next_version)"
        ) from err
    return path


class StrategyRegistry:
    """All strategy versions, indexed by (id, version); optionally backed by a directory."""

    def __init__(
        self,
        strategies: Iterable[Strategy] = (),
        *,
        directory: Path | str | None = None,
        sources: Mapping[str, Path] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._by_key: dict[tuple[str, int], Strategy] = {}
        self._sources: dict[tuple[str, int], Path] = {}
        problems: list[StrategyProblem] = []
        for strategy in strategies:
            key = (strategy.id, strategy.version)
            source = (sources or {}).get(strategy.ref)
            if key in self._by_key:
                problems.append(_duplicate(strategy, self._sources.get(key), source))
                continue
            self._by_key[key] = strategy
            if source is not None:
                self._sources[key] = source
        problems.extend(_active_conflicts(self._by_key.values(), self._sources))
        if problems:
            raise StrategyError(problems)

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        data_dir: Path | str,
        *,
        feature_types: Mapping[Entity, Mapping[str, FeatureType]] | None = None,
    ) -> StrategyRegistry:
        """Load `data_dir/strategies/*.yaml`; every problem of every file is raised together."""
        return cls.from_directory(strategies_dir(data_dir), feature_types=feature_types)

    @classmethod
    def from_directory(
        cls,
        directory: Path | str,
        *,
        feature_types: Mapping[Entity, Mapping[str, FeatureType]] | None = None,
    ) -> StrategyRegistry:
        """Load every `*.yaml` of a strategies directory (see `load`)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise StrategyError(
                [
                    StrategyProblem(
                        str(directory),
                        "",
                        "strategies directory not found; pass the data directory that holds "
                        f"{STRATEGIES_DIRNAME}/<id>@v<version>.yaml",
                    )
                ]
            )
        problems: list[StrategyProblem] = []
        loaded: list[tuple[Strategy, Path]] = []
        for path in sorted(directory.iterdir()):
            if path.is_dir() or path.name.startswith("."):
                continue
            if path.suffix == ".yml":
                problems.append(
                    StrategyProblem(str(path), "", f"rename to {path.stem}.yaml to be loaded")
                )
                continue
            if path.suffix != ".yaml":
                continue
            try:
                strategy = load_strategy(path)
            except StrategyError as err:
                problems.extend(err.problems)
                continue
            if path.name != strategy.file_name:
                problems.append(
                    StrategyProblem(
                        str(path),
                        "",
                        f"file name does not match id {strategy.id!r} and version "
                        f"{strategy.version}; rename it to {strategy.file_name}",
                    )
                )
            if feature_types is not None:
                problems.extend(_feature_problems(strategy, feature_types, path))
            loaded.append((strategy, path))
        problems.extend(_duplicates(loaded))
        unique = {(s.id, s.version): s for s, _ in reversed(loaded)}
        problems.extend(
            _active_conflicts(unique.values(), {(s.id, s.version): p for s, p in loaded})
        )
        if problems:
            raise StrategyError(problems)
        return cls(
            [s for s, _ in loaded],
            directory=directory,
            sources={s.ref: p for s, p in loaded},
        )

    # -- lookup -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Strategy]:
        """Every version, ordered by id then version."""
        return iter(self._by_key[k] for k in sorted(self._by_key))

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        try:
            self.get(ref)
        except (StrategyNotFoundError, ValueError):
            return False
        return True

    def ids(self) -> list[str]:
        """Distinct strategy ids, sorted."""
        return sorted({sid for sid, _ in self._by_key})

    def versions(self, strategy_id: str) -> list[Strategy]:
        """Every version of one strategy, oldest first."""
        found = [self._by_key[k] for k in sorted(self._by_key) if k[0] == strategy_id]
        if not found:
            raise StrategyNotFoundError(self._not_found(strategy_id))
        return found

    def get(self, ref: str) -> Strategy:
        """`id` (its active version, else its latest), `id@3` or `id@v3` (that version)."""
        strategy_id, version = parse_ref(ref)
        if version is None:
            versions = self.versions(strategy_id)
            active = [s for s in versions if s.status == StrategyStatus.ACTIVE]
            return (active or versions)[-1]
        found = self._by_key.get((strategy_id, version))
        if found is None:
            if any(sid == strategy_id for sid, _ in self._by_key):
                have = ", ".join(f"v{s.version}" for s in self.versions(strategy_id))
                raise StrategyNotFoundError(
                    f"strategy {strategy_id!r} has no version {version}; it has {have}"
                )
            raise StrategyNotFoundError(self._not_found(strategy_id))
        return found

    def source(self, ref: str) -> Path | None:
        """The file a version was loaded from (None for in-memory registries)."""
        strategy = self.get(ref)
        return self._sources.get((strategy.id, strategy.version))

    def latest_version(self, strategy_id: str) -> int:
        """Highest version number of a strategy id (0 when the id is new)."""
        return max((v for sid, v in self._by_key if sid == strategy_id), default=0)

    def next_version(self, strategy_id: str) -> int:
        """The version number a new version of `strategy_id` must take."""
        return self.latest_version(strategy_id) + 1

    def select(
        self,
        *,
        status: StrategyStatus | str | None = None,
        entity: Entity | str | None = None,
        channel: Channel | str | None = None,
    ) -> list[Strategy]:
        """Versions matching every given filter, ordered by id then version."""
        out = list(self)
        if status is not None:
            out = [s for s in out if s.status == StrategyStatus(status)]
        if entity is not None:
            out = [s for s in out if s.entity == Entity(entity)]
        if channel is not None:
            out = [s for s in out if Channel(channel) in s.channels]
        return out

    def active(
        self, entity: Entity | str | None = None, channel: Channel | str | None = None
    ) -> list[Strategy]:
        """Active versions (at most one per id), optionally for one entity and/or channel."""
        return self.select(status=StrategyStatus.ACTIVE, entity=entity, channel=channel)

    def check_features(
        self, feature_types: Mapping[Entity, Mapping[str, FeatureType]]
    ) -> list[StrategyProblem]:
        """Predicates that name unknown features or mismatch their types, for every version."""
        problems: list[StrategyProblem] = []
        for strategy in self:
            path = self._sources.get((strategy.id, strategy.version))
            problems.extend(_feature_problems(strategy, feature_types, path))
        return problems

    # -- writing ------------------------------------------------------------------------------

    def add(self, strategy: Strategy) -> Path | None:
        """Index a new version and, for a directory-backed registry, write its file."""
        key = (strategy.id, strategy.version)
        if key in self._by_key:
            raise FileExistsError(
                f"{strategy.ref} already exists in the registry; versions are immutable, use "
                f"version {self.next_version(strategy.id)}"
            )
        if strategy.status == StrategyStatus.ACTIVE and self._active_version(strategy.id):
            raise ValueError(
                f"{strategy.id!r} already has an active version; add {strategy.ref} as draft or "
                "shadow and promote it with set_status"
            )
        path = write_version(strategy, self.directory) if self.directory is not None else None
        self._by_key[key] = strategy
        if path is not None:
            self._sources[key] = path
        return path

    def set_status(self, ref: str, status: StrategyStatus | str) -> list[Strategy]:
        """Change one version's status (rewriting its file); activating retires the old active.

        Returns the versions that changed.
        """
        if parse_ref(ref)[1] is None:
            raise ValueError(f"name the version to change explicitly, e.g. {ref}@v1")
        target = self.get(ref)
        status = StrategyStatus(status)
        changed: list[Strategy] = []
        if status == StrategyStatus.ACTIVE:
            previous = self._active_version(target.id)
            if previous is not None and previous.version != target.version:
                changed.append(self._replace(with_status(previous, StrategyStatus.RETIRED)))
        if target.status != status:
            changed.append(self._replace(with_status(target, status)))
        return changed

    def _replace(self, strategy: Strategy) -> Strategy:
        key = (strategy.id, strategy.version)
        path = self._sources.get(key)
        if path is None and self.directory is not None:
            path = self.directory / strategy.file_name
        if path is not None:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(dump_strategy(strategy), encoding="utf-8")
            os.replace(tmp, path)
            self._sources[key] = path
        self._by_key[key] = strategy
        return strategy

    # -- internals ----------------------------------------------------------------------------

    def _active_version(self, strategy_id: str) -> Strategy | None:
        active = [
            s
            for (sid, _), s in sorted(self._by_key.items())
            if sid == strategy_id and s.status == StrategyStatus.ACTIVE
        ]
        return active[-1] if active else None

    def _not_found(self, strategy_id: str) -> str:
        close = difflib.get_close_matches(strategy_id, self.ids(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        where = f" in {self.directory}" if self.directory is not None else ""
        return f"no strategy {strategy_id!r}{where}{hint} ({len(self.ids())} strategies known)"


def _active_conflicts(
    strategies: Iterable[Strategy], sources: Mapping[tuple[str, int], Path]
) -> list[StrategyProblem]:
    by_id: dict[str, list[Strategy]] = {}
    for strategy in strategies:
        if strategy.status == StrategyStatus.ACTIVE:
            by_id.setdefault(strategy.id, []).append(strategy)
    problems = []
    for strategy_id, active in sorted(by_id.items()):
        if len(active) < 2:
            continue
        active.sort(key=lambda s: s.version)
        refs = ", ".join(s.ref for s in active)
        paths = [sources.get((s.id, s.version)) for s in active]
        where = ", ".join(str(p) for p in paths if p is not None) or strategy_id
        problems.append(
            StrategyProblem(
                where,
                "status",
                f"{refs} are all active; keep one active version per id and set the others "
                "to retired",
            )
        )
    return problems


def _feature_problems(
    strategy: Strategy,
    feature_types: Mapping[Entity, Mapping[str, FeatureType]],
    path: Path | None,
) -> list[StrategyProblem]:
    source = str(path) if path is not None else strategy.ref
    types = feature_types.get(strategy.entity)
    if types is None:
        return [
            StrategyProblem(
                source, "entity", f"no feature catalogue for entity {strategy.entity.value!r}"
            )
        ]
    return check_strategy(strategy, types, source=source)


def _duplicate(strategy: Strategy, first: Path | None, second: Path | None) -> StrategyProblem:
    ref = format_ref(strategy.id, strategy.version)
    if first is not None and second is not None:
        return StrategyProblem(
            str(second),
            "version",
            f"{ref} is also defined in {first}; give one of them a new version",
        )
    return StrategyProblem(ref, "version", f"{ref} is defined twice; give one a new version")


def _duplicates(loaded: list[tuple[Strategy, Path]]) -> list[StrategyProblem]:
    seen: dict[tuple[str, int], Path] = {}
    problems = []
    for strategy, path in loaded:
        key = (strategy.id, strategy.version)
        if key in seen:
            problems.append(_duplicate(strategy, seen[key], path))
        else:
            seen[key] = path
    return problems
