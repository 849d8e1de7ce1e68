"""The audit's output tables, declared once with the input contract's machinery.

Their column lists, the checks the review service runs when it loads them, and the limits of
its API and database (an `item_id` of at most 128 characters) derive from these declarations.
"""

from __future__ import annotations

from features.tables import TableSpec, column_spec
from features.vocabulary import Channel, Entity, Policy
from governance.audit.vocabulary import FlagKind

#: Longest item id the review service stores (its database column and API field).
ITEM_ID_MAX_LENGTH = 128

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
