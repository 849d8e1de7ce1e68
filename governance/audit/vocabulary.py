"""Closed vocabularies of the audit's outputs, declared once: the review service, its API and
its database take them from here."""

from __future__ import annotations

from enum import StrEnum


class FlagKind(StrEnum):
    """Which list a flags.parquet row comes from (the review queue's item kind)."""

    LIKELY_FALSE_POSITIVE = "likely_false_positive"
    LIKELY_FALSE_NEGATIVE = "likely_false_negative"
    RANDOM_AUDIT = "random_audit"


class SuggestionKind(StrEnum):
    """What a suggested change does to its strategy (suggestions.parquet `kind`)."""

    THRESHOLD = "threshold"
    DROP_PREDICATE = "drop_predicate"
    ADD_PREDICATE = "add_predicate"
    SCORE_GATE = "score_gate"
    CHANNEL_SCOPE = "channel_scope"
    NEW_STRATEGY = "new_strategy"
