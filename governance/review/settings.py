"""Settings of the review service, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from governance.review.vocabulary import DEFAULT_SLA_HOURS, EscalationPriority

if TYPE_CHECKING:
    from governance.review.users import TokenLifetime


class ReviewSettings(BaseSettings):
    """Configuration of the review service; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    #: Govrisk data directory: holds `govrisk.db` by default, `strategies/` and `tables/`.
    data_dir: Path = Path(".")
    #: SQLAlchemy URL; empty means a SQLite file `govrisk.db` inside `data_dir`.
    database_url: str = ""
    #: Strategy YAML directory; empty means `data_dir/strategies`.
    strategies_dir: Path | None = None
    #: Marketplace data directory (its `tables/` of the data contract) that item pages read to
    #: show the item, its seller and linked listing; empty means `data_dir`.
    marketplace_dir: Path | None = None
    #: Output of `govrisk features build` (`<entity>.parquet`): the version comparison page
    #: measures what each strategy version acts on there.
    features_dir: Path | None = None
    #: Output directory of `govrisk audit` (strategy metrics for the dashboard), if any.
    audit_dir: Path | None = None
    #: Output directory of `govrisk monitor` (the monitoring page), if any.
    monitor_dir: Path | None = None
    #: Secret that signs session cookies; empty means one kept in `data_dir/.govrisk-secret`.
    secret_key: str = ""
    #: Send cookies only over HTTPS (set in production behind TLS).
    secure_cookies: bool = False
    session_max_age_seconds: int = Field(default=12 * 3600, gt=0)
    #: Failed sign-ins (pages and token exchange) allowed per username, and per client address,
    #: within `login_window_seconds`; the next attempt is refused with 429 until the oldest
    #: failure leaves the window. Counted per process (see docs/review-service.md).
    login_max_failures: int = Field(default=5, ge=1)
    #: Length of the moving window of `login_max_failures`, seconds.
    login_window_seconds: float = Field(default=15 * 60, gt=0)
    lease_seconds: int = Field(default=300, gt=0)
    #: Lifetime of a new API token when none is asked for, days (no token lives forever).
    token_ttl_days: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    #: Longest lifetime a non-admin may ask for, days.
    token_max_ttl_days: float = Field(default=90.0, gt=0, allow_inf_nan=False)
    #: Longest lifetime an admin may ask for (for themselves or with `govrisk users token`).
    token_admin_max_ttl_days: float = Field(default=365.0, gt=0, allow_inf_nan=False)
    #: SLA per escalation priority, hours from creation to resolution.
    sla_hours_critical: float = Field(default=DEFAULT_SLA_HOURS[EscalationPriority.CRITICAL], gt=0)
    sla_hours_high: float = Field(default=DEFAULT_SLA_HOURS[EscalationPriority.HIGH], gt=0)
    sla_hours_medium: float = Field(default=DEFAULT_SLA_HOURS[EscalationPriority.MEDIUM], gt=0)
    sla_hours_low: float = Field(default=DEFAULT_SLA_HOURS[EscalationPriority.LOW], gt=0)
    #: Largest flags/suggestions upload accepted over the API, rows.
    max_ingest_rows: int = Field(default=50_000, gt=0)
    #: Run `alembic upgrade head` when the service starts.
    migrate_on_start: bool = True

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'govrisk.db').resolve()}"

    def resolved_strategies_dir(self) -> Path:
        """Where strategy YAML versions live."""
        if self.strategies_dir is not None:
            return self.strategies_dir
        return self.data_dir / "strategies"

    def resolved_marketplace_dir(self) -> Path:
        """Where the contract tables shown on item pages live (`<dir>/tables/*.parquet`)."""
        return self.marketplace_dir if self.marketplace_dir is not None else self.data_dir

    def token_lifetime(self) -> TokenLifetime:
        """The lifetime policy of new API tokens."""
        from governance.review.users import TokenLifetime

        return TokenLifetime(
            default_days=self.token_ttl_days,
            max_days=self.token_max_ttl_days,
            admin_max_days=self.token_admin_max_ttl_days,
        )

    def sla_hours(self, priority: str) -> float:
        """Hours allowed to resolve an escalation of `priority`."""
        return float(getattr(self, f"sla_hours_{priority}"))

    def sla_hours_by_priority(self) -> dict[EscalationPriority, float]:
        """Hours allowed to resolve an escalation, per priority (every priority)."""
        return {p: self.sla_hours(p.value) for p in EscalationPriority}


@lru_cache(maxsize=1)
def get_settings() -> ReviewSettings:
    """The cached settings object."""
    return ReviewSettings()
