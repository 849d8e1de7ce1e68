"""The audit's output tables, declared once with the input contract's machinery.

Their column lists, the checks the review service runs when it loads them, and the limits of
its API and database (an `item_id` of at most 128 characters) derive from these declarations.
"""

from __future__ import annotations

from features.tables import ColumnSpec, TableSpec, column_spec
from features.vocabulary import Channel, Entity, Policy
from governance.audit.vocabulary import FlagKind, SuggestionKind

#: Longest item id the review service stores (its database column and API field).
ITEM_ID_MAX_LENGTH = 128


def _estimate(name: str, description: str, *, unit: str = "") -> tuple[ColumnSpec, ...]:
    """An estimate and the bounds of its interval (at the audit's confidence level)."""
    low = f"Lower bound of {name}'s interval."
    high = f"Upper bound of {name}'s interval."
    return (
        column_spec(name, "float", description, nullable=True, unit=unit),
        column_spec(f"{name}_low", "float", low, nullable=True, unit=unit),
        column_spec(f"{name}_high", "float", high, nullable=True, unit=unit),
    )


METRICS = TableSpec(
    name="strategy_metrics",
    description=(
        "Each strategy's precision, recall, errors and their exposure per channel, with "
        "intervals from the design-weighted labels (strategy_metrics.parquet)."
    ),
    key=("strategy", "channel"),
    columns=(
        column_spec("strategy", "string", "Strategy version (`id@vN`; `*`: every strategy)."),
        column_spec("strategy_id", "string", "Strategy id."),
        column_spec("strategy_version", "int", "Strategy version (null for `*`).", nullable=True),
        column_spec("entity", "string", "Kind of item.", enum=Entity),
        column_spec("policy", "string", "The strategy's policy.", enum=Policy),
        column_spec("channel", "string", "Channel (`all`: every channel)."),
        column_spec("n_actioned", "int", "Items the strategy acts on.", min_value=0),
        *_estimate("precision", "Share of actioned items that violate."),
        *_estimate("recall", "Share of violating items the strategy acts on."),
        column_spec("tp", "float", "Estimated violating items actioned.", nullable=True),
        *_estimate("fp", "Estimated honest items actioned (false positives)."),
        *_estimate("fn", "Estimated violating items missed (false negatives)."),
        column_spec("fn_confirmed", "float", "Missed items confirmed by a label.", nullable=True),
        *_estimate("fn_impressions", "Impressions of missed violating items.", unit="views"),
        *_estimate("fn_gmv", "GMV of missed violating items.", unit="USD"),
        *_estimate("fp_impressions", "Impressions removed from honest items.", unit="views"),
        *_estimate("fp_gmv", "GMV of honest items actioned.", unit="USD"),
        column_spec(
            "error_cost", "float", "Cost of the errors at the audit's costs.", nullable=True
        ),
        column_spec("n_labels", "int", "Labels inside the actioned set.", min_value=0),
        column_spec("n_labeled_positive", "int", "Of them, violating.", nullable=True),
        column_spec("n_labels_population", "int", "Labels in the whole population.", min_value=0),
        column_spec(
            "model_only_share", "float", "Share of the variance the model carries.", nullable=True
        ),
        column_spec("flip_rate", "float", "Reviewer flip rate used.", nullable=True),
    ),
)

FLAGS = TableSpec(
    name="flags",
    description=(
        "Items for review: ranked likely false positives and false negatives, and the audit "
        "slice drawn with known inclusion probabilities (flags.parquet)."
    ),
    key=("entity", "item_id", "policy", "kind"),
    columns=(
        column_spec("entity", "string", "Kind of item.", enum=Entity),
        column_spec("item_id", "string", "The item's id.", max_length=ITEM_ID_MAX_LENGTH),
        column_spec("policy", "string", "The policy it may violate.", enum=Policy),
        column_spec(
            "channel",
            "string",
            "The channel the error was seen in (null: every channel).",
            nullable=True,
            enum=Channel,
        ),
        column_spec("kind", "string", "Which list the item is on.", enum=FlagKind),
        column_spec("priority", "float", "Review order, highest first.", min_value=0),
        column_spec(
            "p_error",
            "float",
            "Chance the current decision is wrong.",
            min_value=0,
            max_value=1,
        ),
        column_spec(
            "inclusion_probability",
            "float",
            "Chance the item was drawn (1 for ranked-list picks).",
            min_value=0,
            max_value=1,
        ),
        column_spec(
            "strategies", "string", "Strategy versions involved, comma-separated.", nullable=True
        ),
        column_spec(
            "reasons",
            "string",
            "JSON list of {feature, description, value, contribution}.",
            nullable=True,
        ),
    ),
)

SLICES = TableSpec(
    name="slices",
    description=(
        "Where each strategy's errors concentrate: feature slices ranked per strategy and "
        "error kind (slices.parquet)."
    ),
    key=("strategy", "error_kind", "rank"),
    columns=(
        column_spec("strategy", "string", "Strategy version (`id@vN`, `*`: coverage gaps)."),
        column_spec("strategy_id", "string", "Strategy id."),
        column_spec("strategy_version", "int", "Strategy version (null for gaps).", nullable=True),
        column_spec("entity", "string", "Kind of item.", enum=Entity),
        column_spec("policy", "string", "The strategy's policy.", enum=Policy),
        column_spec("error_kind", "string", "`fp` or `fn`."),
        column_spec("rank", "int", "Rank among the strategy's slices of this kind.", min_value=1),
        column_spec("description", "string", "The slice in words."),
        column_spec("predicates", "string", "JSON list of the slice's predicates."),
        column_spec("level", "int", "Number of predicates.", min_value=0),
        column_spec("size", "int", "Units in the slice.", min_value=0),
        column_spec("errors", "float", "Estimated errors in the slice.", min_value=0),
        column_spec("mean_error", "float", "Error rate in the slice."),
        column_spec("lift", "float", "Error rate against the rest."),
        column_spec("error_share", "float", "Share of the strategy's errors in the slice."),
        column_spec("score", "float", "Ranking score."),
    ),
)

SUGGESTIONS = TableSpec(
    name="suggestions",
    description=(
        "Suggested strategy changes, each a shadow version re-evaluated on the feature frame "
        "with its projected effect (suggestions.parquet)."
    ),
    key=("suggestion_id",),
    columns=(
        column_spec("suggestion_id", "string", "Hash of the change's effect.", max_length=128),
        column_spec("strategy_id", "string", "The strategy it changes.", max_length=128),
        column_spec("base_version", "int", "The version it changes (null: new).", nullable=True),
        column_spec("kind", "string", "What the change does.", enum=SuggestionKind),
        column_spec("summary", "string", "The change in words."),
        column_spec("proposed_yaml", "string", "The proposed version as a strategy file."),
        column_spec("delta_fp", "float", "Projected change in false positives."),
        column_spec("delta_fp_low", "float", "Its interval's low end."),
        column_spec("delta_fp_high", "float", "Its interval's high end."),
        column_spec("delta_fn", "float", "Projected change in false negatives."),
        column_spec("delta_fn_low", "float", "Its interval's low end."),
        column_spec("delta_fn_high", "float", "Its interval's high end."),
        column_spec(
            "delta_impressions", "float", "Change in impressions shown to buyers.", unit="views"
        ),
        column_spec("delta_gmv", "float", "Change in GMV shown to buyers.", unit="USD"),
        column_spec("labels_used", "int", "Audit labels behind the projection.", min_value=0),
        column_spec("rank", "int", "Rank by projected benefit.", min_value=1),
    ),
)
