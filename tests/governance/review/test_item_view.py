"""The item as a moderator reads it: reasons in words, phrases highlighted."""

from __future__ import annotations

from pathlib import Path

from governance.review.item_view import (
    TextBlock,
    model_phrases,
    phrase_spans,
    reasons_in_words,
)


def test_reasons_split_by_direction_with_units_and_one_text_summary() -> None:
    reasons = [
        {"feature": "listing_price", "description": "x", "value": 3671.734, "contribution": 0.9},
        {"feature": "seller_tenure_days", "value": 26.83, "contribution": -0.4},
        *(
            {"feature": f"listing_text_hash_{i}", "value": 0.1, "contribution": 0.05}
            for i in range(4)
        ),
        {"feature": "not_declared", "description": "Odd [units]", "value": 2, "contribution": 0.1},
    ]
    out = reasons_in_words(reasons, "listing")
    assert [r.feature for r in out.raised] == ["listing_price", "text", "not_declared"]
    assert [r.value for r in out.raised] == ["$3,671.73", "–", "2"]
    assert out.raised[0].label == "Selling price"
    assert abs(out.raised[1].contribution - 0.2) < 1e-9
    assert out.raised[1].label.startswith("Wording of the text")
    assert out.raised[2].label == "Odd"
    assert [(r.label, r.value) for r in out.lowered] == [
        ("Days since the seller account was created", "26.8 days")
    ]
    assert all("hash" not in r.label for r in out.raised + out.lowered)


def test_phrases_highlight_as_the_features_count_them() -> None:
    text = "Genuine-looking REPLICAS, secure box; 1:1 copy. Not a dupe-free deal"
    spans = phrase_spans(text)
    found = [text[s.start : s.end] for s in spans]
    assert found == ["REPLICAS", "1:1", "dupe"]
    assert all(s.css == "lexicon" and s.contribution is None for s in spans)
    pieces = TextBlock("Title", text, spans).segments()
    assert "".join(piece for piece, _ in pieces) == text
    assert [p for p, span in pieces if span] == found


def _text_reason(text: str, start: int, contribution: float) -> dict[str, object]:
    return {
        "feature": "listing_text_score_counterfeit",
        "description": "text score",
        "value": 1.9,
        "contribution": 0.7,
        "phrases": [
            {
                "text": text,
                "contribution": contribution,
                "field": "title",
                "spans": [{"field": "title", "start": start, "end": start + len(text)}],
            }
        ],
    }


def test_text_model_phrases_are_highlighted_where_the_model_found_them_with_their_push() -> None:
    text = "Genuine-looking REPLICAS, secure box; 1:1 copy"
    reasons = [
        _text_reason("secure box", 26, 0.82),
        _text_reason("genuine-looking", 0, -0.31),  # the offsets point at it, case aside
        {"feature": "listing_price", "value": 3.0, "contribution": 0.1},  # no phrases
        _text_reason("gone", 999, 0.5),  # not in this text: nothing to highlight
    ]
    phrases = model_phrases(reasons)
    assert [p.text for p in phrases] == ["secure box", "genuine-looking", "gone"]
    spans = phrase_spans(text, model=phrases)
    got = [(text[s.start : s.end], s.css, s.contribution) for s in spans]
    assert got == [
        ("Genuine-looking", "model-down", -0.31),
        ("REPLICAS", "lexicon", None),
        ("secure box", "model-up", 0.82),
        ("1:1", "lexicon", None),
    ]
    assert "counterfeit text model" in spans[2].why and "+0.82 log-odds" in spans[2].why
    # A phrase the model placed elsewhere (the text changed since) is found by its words.
    moved = phrase_spans(
        "a SECURE BOX inside", model=model_phrases([_text_reason("secure box", 26, 0.8)])
    )
    assert [(s.start, s.end) for s in moved] == [(2, 12)]
    # The reason reads in words.
    line = reasons_in_words(reasons[:1], "listing").raised[0]
    assert line.phrases == ("title contains 'secure box' (+0.82 log-odds)",)


def test_a_video_shows_its_caption_creator_and_the_listing_it_sells(tmp_path: Path) -> None:
    from datetime import datetime

    import pandas as pd

    from governance.review.item_view import load_item_view

    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "video_id": ["V1"],
            "creator_id": ["C1"],
            "listing_id": ["L1"],
            "created_at": [datetime(2026, 3, 5, 10)],
            "caption": ["Miracle serum, clinically proven!"],
            "duration_seconds": [42.0],
        }
    ).to_parquet(tables / "videos.parquet")
    pd.DataFrame(
        {
            "creator_id": ["C1"],
            "registered_at": [datetime(2025, 1, 1)],
            "region": ["US"],
            "verified": [True],
        }
    ).to_parquet(tables / "creators.parquet")
    pd.DataFrame(
        {
            "listing_id": ["L1"],
            "seller_id": ["S9"],
            "created_at": [datetime(2026, 3, 1)],
            "category": ["beauty"],
            "brand": [None],
            "title": ["Serum"],
            "description": ["cures acne"],
            "price": [19.5],
            "list_price": [None],
            "image_hash": ["h"],
            "ships_from": ["US"],
        }
    ).to_parquet(tables / "listings.parquet")
    view = load_item_view(tmp_path, "video", "V1")
    assert view is not None and view.linked is not None
    (caption,) = view.texts
    assert [caption.text[s.start : s.end] for s in caption.spans] == [
        "Miracle",
        "clinically proven",
    ]
    assert ("Length", "42 s") in [(f.label, f.value) for f in view.facts]
    assert ("Verified", "yes") in [(f.label, f.value) for f in view.creator]
    assert view.linked.item_id == "L1" and view.linked.seller == ()  # no sellers table: no seller
    assert [t.text for t in view.linked.texts] == ["Serum", "cures acne"]
    assert load_item_view(tmp_path, "video", "missing") is None
    assert load_item_view(tmp_path / "nowhere", "video", "V1") is None
