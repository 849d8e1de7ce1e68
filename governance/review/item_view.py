"""What a moderator sees of the item they judge: its content, its seller and, for videos and
lives, the listing they sell, read from the marketplace's contract tables; and the flag's
reasons in words.

The tables are read at request time with DuckDB filtered on the item's key, so the page shows
the item as the data directory holds it; a missing directory or table is simply not shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from features.catalog import describe
from features.display import format_value
from features.lexicon import GROUP_POLICY, group_pattern
from features.loader import table_path
from features.vocabulary import Entity, Policy

#: Feature-name marker of dense text projections: summarised as one "wording" reason.
_TEXT_HASH_MARK = "_text_hash_"
_TEXT_SUMMARY = "Wording of the text (dense text signals, combined)"


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of a text that matched a policy phrase or that the text model
    weighs (`contribution`: its exact log-odds; None for a lexicon phrase)."""

    start: int
    end: int
    why: str
    contribution: float | None = None

    @property
    def css(self) -> str:
        """The highlight's class: lexicon phrase, or a text-model phrase raising or lowering."""
        if self.contribution is None:
            return "lexicon"
        return "model-up" if self.contribution > 0 else "model-down"


@dataclass(frozen=True)
class ModelPhrase:
    """One phrase of a text-model reason: where it is in which field and its log-odds."""

    field: str
    start: int
    end: int
    text: str
    contribution: float
    policy: str


@dataclass(frozen=True)
class TextBlock:
    """A piece of seller- or creator-written text with the phrases to highlight."""

    label: str
    text: str
    spans: tuple[Span, ...] = ()

    def segments(self) -> list[tuple[str, Span | None]]:
        """The text cut into (piece, span) pairs; the span is None outside highlights."""
        out: list[tuple[str, Span | None]] = []
        at = 0
        for span in self.spans:
            if span.start > at:
                out.append((self.text[at : span.start], None))
            out.append((self.text[span.start : span.end], span))
            at = span.end
        if at < len(self.text):
            out.append((self.text[at:], None))
        return out


@dataclass(frozen=True)
class Fact:
    """One labelled value, already written for reading."""

    label: str
    value: str


@dataclass(frozen=True)
class ItemView:
    """The item as buyers see it, plus who sells it."""

    entity: str
    item_id: str
    texts: tuple[TextBlock, ...]
    facts: tuple[Fact, ...]
    image_hash: str | None = None
    seller: tuple[Fact, ...] = ()
    creator: tuple[Fact, ...] = ()
    linked: ItemView | None = None


@dataclass(frozen=True)
class ReasonLine:
    """One reason the model gave, in words: what, its value with unit, and its push."""

    feature: str
    label: str
    value: str
    contribution: float
    #: For a text-model score: its phrases in words ("title contains 'replica' (+0.82)").
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reasons:
    """Reasons that raised the risk and reasons that lowered it, strongest first."""

    raised: list[ReasonLine] = field(default_factory=list)
    lowered: list[ReasonLine] = field(default_factory=list)


# -- reasons -------------------------------------------------------------------------------------


def reasons_in_words(reasons: Iterable[Mapping[str, Any]], entity: str) -> Reasons:
    """The flag's reasons with labels and units; dense text projections summed into one line."""
    lines: list[ReasonLine] = []
    text_push, text_count = 0.0, 0
    for reason in reasons:
        name = str(reason.get("feature", ""))
        contribution = float(reason.get("contribution") or 0.0)
        if _TEXT_HASH_MARK in name:
            text_push, text_count = text_push + contribution, text_count + 1
            continue
        label, unit = _label_and_unit(entity, name, str(reason.get("description") or name))
        words = tuple(
            f"{p.field} contains '{p.text}' ({p.contribution:+.2f} log-odds)"
            for p in _phrases_of(reason)
        )
        lines.append(
            ReasonLine(name, label, format_value(reason.get("value"), unit), contribution, words)
        )
    if text_count:
        lines.append(ReasonLine("text", _TEXT_SUMMARY, "–", text_push))
    lines.sort(key=lambda line: -abs(line.contribution))
    return Reasons(
        raised=[line for line in lines if line.contribution > 0],
        lowered=[line for line in lines if line.contribution < 0],
    )


def _label_and_unit(entity: str, name: str, fallback: str) -> tuple[str, str]:
    try:
        feature = describe(entity, name)
    except (KeyError, ValueError):
        return re.sub(r"\s*\[[^\]]*\]$", "", fallback), ""
    return feature.description.rstrip("."), feature.unit


# -- highlighting --------------------------------------------------------------------------------


@cache
def _patterns() -> tuple[tuple[str, Policy, re.Pattern[str]], ...]:
    return tuple(
        (group, policy, re.compile(group_pattern(group), re.IGNORECASE | re.ASCII))
        for group, policy in GROUP_POLICY.items()
    )


def phrase_spans(text: str, *, model: Sequence[ModelPhrase] = ()) -> tuple[Span, ...]:
    """The text model's phrases in `text` (at the offsets the model reported; searched for
    where the text differs) and, where none of those sits, the policy-lexicon phrases as the
    features count them: non-overlapping, in order."""
    found = [s for p in model for s in _model_spans(text, p)]
    found.sort(key=lambda s: (s.start, -(s.end - s.start)))
    kept: list[Span] = []
    for span in found:
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    for group, policy, pattern in _patterns():
        for m in pattern.finditer(text):
            if not any(m.start() < k.end and k.start < m.end() for k in kept):
                why = f"{policy.value.replace('_', ' ')} phrase ({group} lexicon)"
                kept.append(Span(m.start(), m.end(), why))
    return tuple(sorted(kept, key=lambda s: s.start))


def _model_spans(text: str, phrase: ModelPhrase) -> list[Span]:
    why = (
        f"the {phrase.policy.replace('_', ' ')} text model weighs this phrase "
        f"({phrase.contribution:+.2f} log-odds)"
    )
    if text[phrase.start : phrase.end].lower() == phrase.text.lower():
        return [Span(phrase.start, phrase.end, why, phrase.contribution)]
    return [
        Span(m.start(), m.end(), why, phrase.contribution)
        for m in re.finditer(re.escape(phrase.text), text, re.IGNORECASE)
    ]


def model_phrases(reasons: Iterable[Mapping[str, Any]]) -> tuple[ModelPhrase, ...]:
    """Every located phrase of the flag's text-model reasons (one per occurrence)."""
    out: list[ModelPhrase] = []
    for reason in reasons:
        policy = str(reason.get("feature", "")).rpartition("_text_score_")[2]
        for phrase in _phrases_of(reason):
            spans = phrase.spans or ((phrase.field, -1, -1),)
            out += [
                ModelPhrase(field, start, end, phrase.text, phrase.contribution, policy)
                for field, start, end in spans
            ]
    return tuple(out)


@dataclass(frozen=True)
class _Phrase:
    text: str
    contribution: float
    field: str
    spans: tuple[tuple[str, int, int], ...]


def _phrases_of(reason: Mapping[str, Any]) -> list[_Phrase]:
    """The phrases a reason carries (bundle `Reason.to_dict`); malformed entries are skipped."""
    out = []
    for p in reason.get("phrases") or ():
        try:
            spans = tuple(
                (str(s["field"]), int(s["start"]), int(s["end"])) for s in p.get("spans") or ()
            )
            out.append(_Phrase(str(p["text"]), float(p["contribution"]), str(p["field"]), spans))
        except (KeyError, TypeError, ValueError):
            continue
    return out


# -- loading -------------------------------------------------------------------------------------


def load_item_view(
    data_dir: Path | None,
    entity: str,
    item_id: str,
    phrases: Sequence[ModelPhrase] = (),
) -> ItemView | None:
    """The item from `data_dir/tables`, or None when the directory or its row is missing;
    `phrases` (the flag's text-model phrases) are highlighted in the item's own text."""
    if data_dir is None or not (Path(data_dir) / "tables").is_dir():
        return None
    reader = _TableReader(Path(data_dir))
    if entity in _CONTENT:
        return _content_view(reader, entity, item_id, phrases)
    if entity == Entity.LISTING.value:
        return _listing_view(reader, item_id, phrases)
    if entity == Entity.SELLER.value:
        return _seller_item_view(reader, item_id)
    return None


class _TableReader:
    """Rows of contract tables by key, one DuckDB query each."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def path(self, table: str) -> Path | None:
        path = table_path(self.data_dir, table)
        return path if path.is_file() else None

    def row(self, table: str, key: str, value: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM read_parquet(?) WHERE {key} = ? LIMIT 1", table, value)
        return rows[0] if rows else None

    def query(self, sql: str, table: str, *params: Any) -> list[dict[str, Any]]:
        import duckdb

        path = self.path(table)
        if path is None:
            return []
        with duckdb.connect() as con:
            result = con.execute(sql, [str(path), *params])
            names = [d[0] for d in result.description]
            return [dict(zip(names, values, strict=True)) for values in result.fetchall()]


def _text_block(label: str, field: str, text: str, phrases: Sequence[ModelPhrase]) -> TextBlock:
    return TextBlock(
        label, text, phrase_spans(text, model=[p for p in phrases if p.field == field])
    )


def _listing_view(
    reader: _TableReader, listing_id: str, phrases: Sequence[ModelPhrase] = ()
) -> ItemView | None:
    row = reader.row("listings", "listing_id", listing_id)
    if row is None:
        return None
    price, list_price = row.get("price"), row.get("list_price")
    facts = [
        Fact("Price", format_value(price, "USD")),
        Fact("List price (struck through)", format_value(list_price, "USD")),
    ]
    if price is not None and list_price:
        facts.append(
            Fact("Discount shown", format_value(max(0.0, 1 - price / list_price), "share"))
        )
    facts += [
        Fact("Category", str(row.get("category") or "–")),
        Fact("Brand named", str(row.get("brand") or "none")),
        Fact("Ships from", str(row.get("ships_from") or "–")),
        Fact("Published", _when(row.get("created_at"))),
    ]
    title, description = str(row.get("title") or ""), str(row.get("description") or "")
    return ItemView(
        entity=Entity.LISTING.value,
        item_id=listing_id,
        texts=(
            _text_block("Title", "title", title, phrases),
            _text_block("Description", "description", description, phrases),
        ),
        facts=tuple(facts),
        image_hash=row.get("image_hash"),
        seller=_seller_facts(reader, str(row.get("seller_id") or ""), row.get("created_at")),
    )


@dataclass(frozen=True)
class _Content:
    """Where a video's or live's own fields live in the contract tables."""

    table: str
    key: str
    text_column: str
    text_label: str
    #: (label, column, unit); unit "time" prints a UTC timestamp.
    facts: tuple[tuple[str, str, str], ...]


_CONTENT: Final = MappingProxyType(
    {
        Entity.VIDEO.value: _Content(
            "videos",
            "video_id",
            "caption",
            "Caption and spoken claims",
            (("Length", "duration_seconds", "s"), ("Posted", "created_at", "time")),
        ),
        Entity.LIVE.value: _Content(
            "live_sessions",
            "live_id",
            "title",
            "Title and pinned claim",
            (("Started", "started_at", "time"), ("Ended", "ended_at", "time")),
        ),
    }
)


def _content_view(
    reader: _TableReader, entity: str, item_id: str, phrases: Sequence[ModelPhrase] = ()
) -> ItemView | None:
    """A video or live: its text and facts, its creator and the listing it sells."""
    spec = _CONTENT[entity]
    row = reader.row(spec.table, spec.key, item_id)
    if row is None:
        return None
    text = str(row.get(spec.text_column) or "")
    return ItemView(
        entity=entity,
        item_id=item_id,
        texts=(_text_block(spec.text_label, spec.text_column, text, phrases),),
        facts=tuple(
            Fact(label, _when(row.get(col)) if unit == "time" else format_value(row.get(col), unit))
            for label, col, unit in spec.facts
        ),
        creator=_creator_facts(reader, str(row.get("creator_id") or "")),
        linked=_listing_view(reader, str(row.get("listing_id") or "")),
    )


def _seller_item_view(reader: _TableReader, seller_id: str) -> ItemView | None:
    facts = _seller_facts(reader, seller_id, None)
    if not facts:
        return None
    return ItemView(entity=Entity.SELLER.value, item_id=seller_id, texts=(), facts=(), seller=facts)


def _seller_facts(reader: _TableReader, seller_id: str, as_of: Any) -> tuple[Fact, ...]:
    row = reader.row("sellers", "seller_id", seller_id)
    if row is None:
        return ()
    facts = [Fact("Seller", seller_id)]
    registered = row.get("registered_at")
    if isinstance(registered, datetime) and isinstance(as_of, datetime):
        tenure = (as_of - registered).total_seconds() / 86_400
        facts.append(Fact("Registered when this was listed", format_value(tenure, "days")))
    facts += [
        Fact("Registered", _when(registered)),
        Fact("Verification", str(row.get("verification") or "–")),
        Fact("Official brand store", format_value(bool(row.get("is_official_store")))),
        Fact("Region", str(row.get("region") or "–")),
    ]
    facts += _enforcement_facts(reader, seller_id)
    return tuple(facts)


def _enforcement_facts(reader: _TableReader, seller_id: str) -> list[Fact]:
    listings = reader.path("listings")
    if listings is None:
        return []
    decided = reader.query(
        "SELECT count(*) AS n, count(DISTINCT d.item_id) AS items FROM read_parquet(?) d "
        "JOIN read_parquet(?) l ON d.item_id = l.listing_id "
        "WHERE d.entity = 'listing' AND l.seller_id = ?",
        "strategy_decisions",
        str(listings),
        seller_id,
    )
    labelled = reader.query(
        "SELECT count(*) FILTER (WHERE a.verdict = 'violating') AS bad, count(*) AS n "
        "FROM read_parquet(?) a JOIN read_parquet(?) l ON a.item_id = l.listing_id "
        "WHERE a.entity = 'listing' AND l.seller_id = ?",
        "audit_labels",
        str(listings),
        seller_id,
    )
    facts = []
    if decided:
        d = decided[0]
        facts.append(
            Fact("Past enforcement", f"{d['n']:,} strategy decisions on {d['items']:,} listings")
        )
    if labelled:
        a = labelled[0]
        facts.append(Fact("Past verdicts", f"{a['bad']:,} violating of {a['n']:,} reviewed"))
    return facts


def _creator_facts(reader: _TableReader, creator_id: str) -> tuple[Fact, ...]:
    row = reader.row("creators", "creator_id", creator_id)
    if row is None:
        return ()
    return (
        Fact("Creator", creator_id),
        Fact("Registered", _when(row.get("registered_at"))),
        Fact("Verified", format_value(bool(row.get("verified")))),
        Fact("Region", str(row.get("region") or "–")),
    )


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else "–"
