"""The one place the review service reads and writes strategy files (via governance.registry).

Approvals go through this adapter, so a change in the registry's interface is wired here only.
The directory is re-read for every operation: other tools (`govrisk strategies ...`, the
simulator) write to it too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from features.vocabulary import StrategyStatus
from governance.registry import StrategyRegistry
from governance.review.errors import InvalidInputError, NotFoundError
from governance.strategy import Strategy, StrategyError, dump_strategy, format_ref, parse_strategy

_WRITE_ATTEMPTS = 5


class StrategyStore:
    """Strategy versions in one directory of `<id>@v<version>.yaml` files."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def registry(self) -> StrategyRegistry:
        """A fresh registry of the directory (empty when the directory does not exist yet)."""
        if not self.directory.is_dir():
            return StrategyRegistry([], directory=self.directory)
        return StrategyRegistry.from_directory(self.directory)

    def parse(self, yaml_text: str, *, source: str) -> Strategy:
        """Parse strategy YAML; a problem becomes an InvalidInputError naming the field."""
        try:
            return parse_strategy(yaml_text, source=source)
        except StrategyError as err:
            raise InvalidInputError(str(err)) from err

    def versions(self, strategy_id: str) -> list[Strategy]:
        """Every version of a strategy, oldest first (empty for an unknown id)."""
        registry = self.registry()
        return registry.versions(strategy_id) if strategy_id in registry.ids() else []

    def all(self) -> list[Strategy]:
        """Every version in the directory, by id then version."""
        return list(self.registry())

    def scopes(self) -> dict[str, tuple[str, str]]:
        """Strategy id -> (entity, policy) of its latest version; empty if the directory is
        broken (the dashboard and the escalation board still render)."""
        try:
            return {s.id: (s.entity.value, s.policy.value) for s in self.all()}
        except StrategyError:
            return {}

    def get(self, strategy_id: str, version: int) -> Strategy:
        """One version."""
        for strategy in self.versions(strategy_id):
            if strategy.version == version:
                return strategy
        ref = format_ref(strategy_id, version)
        raise NotFoundError(f"strategy {ref} is not in {self.directory}")

    def yaml_text(self, strategy_id: str, version: int) -> str | None:
        """The YAML of one version, or None when it does not exist."""
        try:
            return dump_strategy(self.get(strategy_id, version))
        except NotFoundError:
            return None

    def add_shadow(
        self, proposed: Strategy, *, created_at: datetime, min_version: int = 1
    ) -> tuple[Strategy, Path]:
        """Write `proposed` as the next version of its id, in shadow status.

        The version is above every version in the directory and at least `min_version` (the
        caller's record of versions that existed before, so a number is never reused).
        """
        for _ in range(_WRITE_ATTEMPTS):
            registry = self.registry()
            version = max(registry.next_version(proposed.id), min_version)
            latest = registry.latest_version(proposed.id)
            shadow = proposed.model_copy(
                update={
                    "version": version,
                    "status": StrategyStatus.SHADOW,
                    "created_at": created_at,
                    "parent": proposed.parent
                    or (format_ref(proposed.id, latest) if latest else None),
                }
            )
            try:
                path = registry.add(shadow)
            except FileExistsError:  # another writer took this version number; take the next
                continue
            assert path is not None
            return shadow, path
        raise InvalidInputError(
            f"could not find a free version number for {proposed.id!r} in {self.directory}"
        )

    def set_status(self, strategy_id: str, version: int, status: StrategyStatus) -> list[Strategy]:
        """Change one version's status; activating retires the previously active version.

        Returns every version whose status changed.
        """
        self.get(strategy_id, version)
        return self.registry().set_status(format_ref(strategy_id, version), status)
