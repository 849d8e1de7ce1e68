"""The item as a moderator reads it: reasons in words, phrases highlighted."""

from __future__ import annotations

from governance.review.item_view import TextBlock, phrase_spans, reasons_in_words


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
    spans = phrase_spans(text, phrases=["secure box"])
    found = [text[s.start : s.end] for s in spans]
    assert found == ["REPLICAS", "secure box", "1:1", "dupe"]
    pieces = TextBlock("Title", text, spans).segments()
    assert "".join(piece for piece, _ in pieces) == text
    assert [p for p, why in pieces if why] == found
