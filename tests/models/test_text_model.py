"""The n-gram text model: scikit-learn parity, storage round trip, exact phrase reasons."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.text_source import join_fields
from models.text_model import (
    TextModel,
    TextModelError,
    describe_phrase,
)

_CLEAN = ("soft cotton shirt", "leather wallet brown", "garden hose 20m", "kids puzzle box")
_BAD = ("replica designer bag", "r3plica watch 1:1", "miracle cure pills", "ozempic-like results")


def make_texts(n: int = 200, *, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Seeded short texts; violating ones carry one of a few phrases."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    texts = []
    for label in y:
        words = list(rng.choice(_CLEAN, size=2))
        if label:
            words.insert(int(rng.integers(0, 3)), str(rng.choice(_BAD)))
        texts.append(" ".join(words))
    return texts, y


EDGE_TEXTS = [
    "",
    "x" * 5_000,
    "Ünïcödé café naïve — 日本語 テスト r3plica",
    "  multiple   spaces\ttab\n newline ",
    "OZEMPIC-LIKE results!!! 100%",
    "a",
    "İstanbul ß straße",
]


@pytest.fixture(scope="module")
def fitted() -> tuple[TextModel, list[str], np.ndarray]:
    texts, y = make_texts()
    return TextModel(min_df=1).fit(texts, y), texts, y


def test_scores_equal_scikit_learn_pipeline(fitted: tuple[TextModel, list[str], np.ndarray]):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    model, texts, y = fitted
    reference = make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=10.0, solver="liblinear", max_iter=2_000),
    ).fit(texts, y)
    holdout = make_texts(50, seed=1)[0] + EDGE_TEXTS
    ours = model.predict_proba(holdout)[:, 1]
    theirs = reference.predict_proba(holdout)[:, 1]
    assert np.abs(ours - theirs).max() <= 1e-10


def test_learns_obfuscated_and_new_wording(fitted: tuple[TextModel, list[str], np.ndarray]):
    model, _, _ = fitted
    p = model.predict_proba(["kids puzzle box", "r3plica puzzle box", "ozempic-like shirt"])[:, 1]
    assert p[0] < 0.2 < 0.5 < p[1]
    assert p[2] > 0.5


def test_one_row_equals_batch_row(fitted: tuple[TextModel, list[str], np.ndarray]):
    model, _, _ = fitted
    batch = model.decision_function(EDGE_TEXTS)
    single = np.array([model.decision_function([t])[0] for t in EDGE_TEXTS])
    assert np.array_equal(batch, single)


def test_missing_text_reads_as_empty(fitted: tuple[TextModel, list[str], np.ndarray]):
    model, _, _ = fitted
    scores = model.decision_function([None, "", np.nan])
    assert scores[0] == scores[1] == scores[2] == pytest.approx(model.intercept_)


def test_round_trip_through_files_is_exact(fitted: tuple[TextModel, list[str], np.ndarray]):
    model, _, _ = fitted
    files = model.to_files()
    assert not any(b"pickle" in data for data in files.values())
    loaded = TextModel.from_files(files)
    assert np.array_equal(loaded.decision_function(EDGE_TEXTS), model.decision_function(EDGE_TEXTS))
    assert loaded.to_files() == files


def test_refuses_bad_input():
    with pytest.raises(TextModelError, match="one class"):
        TextModel().fit(["a b", "c d"], [0, 0])
    with pytest.raises(TextModelError, match="not fitted"):
        TextModel().decision_function(["x"])
    with pytest.raises(TextModelError, match="0/1"):
        TextModel().fit(["a b", "c d"], [0, 2])


def test_phrases_name_the_words_and_sum_to_the_margin(
    fitted: tuple[TextModel, list[str], np.ndarray],
):
    model, _, _ = fitted
    fields = [("title", "Kids puzzle BOX r3plica"), ("description", "ozempic-like results")]
    phrases = model.phrases(fields)
    margin = model.decision_function([join_fields([v for _, v in fields])])[0]
    assert sum(p.contribution for p in phrases) + model.intercept_ == pytest.approx(margin)
    top = phrases[0]
    assert top.contribution > 0
    assert top.text in {"r3plica", "ozempic-like", "ozempic-like results"}
    for phrase in phrases:
        for field, start, end in phrase.spans:
            value = dict(fields)[field]
            assert value[start:end].lower() == phrase.text.lower()
    assert describe_phrase(top).startswith(f"{top.field} contains '{top.text}' (+")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab r3plicaözé- \t\n!İ"), max_size=40),
        min_size=1,
        max_size=3,
    )
)
def test_phrase_contributions_are_exact(values: list[str]):
    model = TextModel(min_df=1).fit(*make_texts(60, seed=2))
    fields = [(f"f{i}", v) for i, v in enumerate(values)]
    phrases = model.phrases(fields)
    margin = model.decision_function([join_fields(values)])[0]
    assert sum(p.contribution for p in phrases) + model.intercept_ == pytest.approx(
        margin, abs=1e-9
    )
