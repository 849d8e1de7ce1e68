"""The n-gram text model: word and character n-gram TF-IDF with a logistic regression.

One `TextModel` scores one policy from an item's text fields (a listing's title and
description, a video's caption, ...). It is fitted with scikit-learn (`TfidfVectorizer` for the
vocabularies and idf, `LogisticRegression` on inclusion weights), then reduced to plain arrays:
the two vocabularies in column order, their idf, the coefficients and the intercept. Scoring,
saving and explaining use only those arrays, so training, batch and online run the same code
and the stored model is JSON + `.npz` (no pickle).

Why not ONNX: skl2onnx converts a word or `char` `TfidfVectorizer` through onnxruntime's
`StringNormalizer` + `Tokenizer` ops, but on the SMS spam corpus its probabilities differed
from scikit-learn's by up to 0.06 (word 1-2-grams) and 0.02 (char 2-4-grams) on 1,579 holdout
messages, `char_wb` is refused, and the graph needs the `en_US.UTF-8` locale at load time.

Features (the scikit-learn analyzers, rebuilt from the stored parameters):
- word 1-2-grams: lower-cased, tokens of two or more word characters (`(?u)\\b\\w\\w+\\b`);
- character 2-5-grams within words (`char_wb`: each whitespace-separated word padded with a
  space), which read obfuscations ("r3plica", "0zempic") as near their plain spelling.
Each block: counts -> 1 + log(count) -> times idf -> rows scaled to unit L2 norm.
margin = word block . coef_word + char block . coef_char + intercept (log-odds).

Explanations are exact: every non-zero n-gram's `value * coef` is attributed to the words of
the text it occurs in (a character n-gram lies inside one whitespace word; a word n-gram is
split evenly over its occurrences; a bigram is its own phrase), so the phrases' contributions
plus the intercept add up to the margin.
"""

from __future__ import annotations

import bisect
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from features.text_source import FIELD_SEPARATOR, join_fields

TEXT_MODEL_FORMAT_VERSION: Final = 1
PARAMS_FILE: Final = "text_model.json"
ARRAYS_FILE: Final = "text_model.npz"

_WORD_PATTERN: Final = r"(?u)\b\w\w+\b"
_WORD_RE: Final = re.compile(_WORD_PATTERN)
_SPACE_RE: Final = re.compile(r"\S+")


#: Word and character n-gram counts of one document (`TextModel.analyze`).
Grams = tuple[Counter[str], Counter[str]]


class TextModelError(ValueError):
    """A text model cannot be fitted, loaded or used; the message says why and how to fix it."""


@dataclass(frozen=True)
class Phrase:
    """A phrase of an item's text and its exact contribution to the text model's log-odds."""

    text: str  # as written (first occurrence)
    contribution: float  # log-odds; positive raises the risk
    field: str  # the text field of the first occurrence
    spans: tuple[tuple[str, int, int], ...]  # (field, start, end) character offsets, all found

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "contribution": self.contribution,
            "field": self.field,
            "spans": [{"field": f, "start": s, "end": e} for f, s, e in self.spans],
        }


class TextModel:
    """Word + character n-gram TF-IDF and logistic regression, fitted on weighted labels.

    `fit(texts, y, sample_weight=...)` takes documents (strings; None reads as empty) and 0/1
    labels. Learned attributes: `word_vocabulary_`, `char_vocabulary_` (n-grams in column
    order), `word_idf_`, `char_idf_`, `word_coef_`, `char_coef_`, `intercept_`.
    """

    def __init__(
        self,
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        min_df: int = 2,
        max_word_features: int = 50_000,
        max_char_features: int = 100_000,
        C: float = 10.0,
        max_iter: int = 2_000,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features
        self.C = C
        self.max_iter = max_iter

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        texts: Sequence[object] | NDArray[Any],
        y: Sequence[int] | NDArray[Any],
        *,
        sample_weight: NDArray[np.float64] | None = None,
        corpus: Sequence[object] | NDArray[Any] | None = None,
    ) -> TextModel:
        """Fit vocabularies, idf and coefficients; `sample_weight` are inclusion weights.

        `corpus` (unlabelled documents, e.g. every item's text) fits the vocabularies and idf
        instead of the labelled texts: n-gram rarity is then that of the population, and
        `min_df` drops n-grams too rare in it to generalise. Labels are never read from it.
        """
        docs = _as_docs(texts)
        labels = np.asarray(y, dtype=np.float64)
        if labels.shape != (len(docs),):
            raise TextModelError(f"y has {labels.shape} labels for {len(docs)} texts")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise TextModelError("y must be 0/1 labels")
        if len(np.unique(labels)) < 2:
            raise TextModelError("y has one class; a text model needs both violating and clean")
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if weights is not None and (weights.shape != labels.shape or not (weights >= 0).all()):
            raise TextModelError("sample_weight must be one non-negative weight per text")
        vocabulary_docs = docs if corpus is None else _as_docs(corpus)
        return self._compute_fit(docs, labels, weights, vocabulary_docs)

    def _compute_fit(
        self,
        docs: list[str],
        labels: NDArray[np.float64],
        weights: NDArray[np.float64] | None,
        vocabulary_docs: list[str],
    ) -> TextModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        blocks: list[tuple[list[str], NDArray[np.float64], sp.csr_matrix]] = []
        for analyzer, ngrams, cap in (
            ("word", self.word_ngrams, self.max_word_features),
            ("char_wb", self.char_ngrams, self.max_char_features),
        ):
            # A tiny training set may have no n-gram in min_df documents: fall back to 1.
            min_df = self.min_df if len(vocabulary_docs) >= 10 * self.min_df else 1
            vectorizer = TfidfVectorizer(
                analyzer=analyzer,
                ngram_range=ngrams,
                min_df=min_df,
                max_features=cap,
                sublinear_tf=True,
                token_pattern=_WORD_PATTERN,
                dtype=np.float64,
            )
            try:
                vectorizer.fit(vocabulary_docs)
                matrix = vectorizer.transform(docs)
            except ValueError:  # every document empty
                blocks.append(([], np.zeros(0), sp.csr_matrix((len(docs), 0))))
                continue
            names = vectorizer.get_feature_names_out().tolist()
            blocks.append((names, vectorizer.idf_.astype(np.float64), matrix))
        X = sp.hstack([blocks[0][2], blocks[1][2]], format="csr")
        if X.shape[1] == 0:
            raise TextModelError("no n-gram found in the training texts (all empty?)")
        classifier = LogisticRegression(C=self.C, max_iter=self.max_iter, solver="liblinear")
        classifier.fit(X, labels.astype(np.int64), sample_weight=weights)
        coef = classifier.coef_[0].astype(np.float64)
        n_word = len(blocks[0][0])
        self.word_vocabulary_: list[str] = list(blocks[0][0])
        self.char_vocabulary_: list[str] = list(blocks[1][0])
        self.word_idf_: NDArray[np.float64] = blocks[0][1]
        self.char_idf_: NDArray[np.float64] = blocks[1][1]
        self.word_coef_: NDArray[np.float64] = coef[:n_word].copy()
        self.char_coef_: NDArray[np.float64] = coef[n_word:].copy()
        self.intercept_: float = float(classifier.intercept_[0])
        self._reset()
        return self

    # -- scoring ---------------------------------------------------------------------------

    def decision_function(self, texts: Sequence[object] | NDArray[Any]) -> NDArray[np.float64]:
        """Log-odds per text, shape (n,); each text is scored alone, so a row scores the same
        in any batch."""
        self._check_fitted()
        out = np.empty(len(texts), dtype=np.float64)
        for i, doc in enumerate(_as_docs(texts)):
            out[i] = self.margin(self.analyze(doc))
        return out

    def predict_proba(self, texts: Sequence[object] | NDArray[Any]) -> NDArray[np.float64]:
        """(n, 2) probabilities of clean and violating."""
        p = _sigmoid(self.decision_function(texts))
        return np.column_stack([1.0 - p, p])

    def transform(
        self, texts: Sequence[object] | NDArray[Any]
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The word and character TF-IDF blocks (rows L2-normalised), CSR float64."""
        self._check_fitted()
        docs = _as_docs(texts)
        word_counter, char_counter = self._counters()
        return (
            _tfidf(word_counter(docs), self.word_idf_),
            _tfidf(char_counter(docs), self.char_idf_),
        )

    # -- explaining ------------------------------------------------------------------------

    def phrases(
        self, fields: Sequence[tuple[str, object]], *, top_k: int | None = None
    ) -> list[Phrase]:
        """Exact per-phrase log-odds of one item given as (field name, text) pairs.

        Sorted by |contribution|, largest first. Over all phrases (top_k=None) the
        contributions plus `intercept_` equal `decision_function([join_fields(...)])`.
        """
        self._check_fitted()
        names = [name for name, _ in fields]
        doc = join_fields([value for _, value in fields])
        starts = _field_starts([value for _, value in fields])
        (w_idx, w_val), (c_idx, c_val) = self._values(doc)
        word_contrib = dict(
            zip(w_idx.tolist(), (w_val * self.word_coef_[w_idx]).tolist(), strict=True)
        )
        char_contrib = dict(
            zip(c_idx.tolist(), (c_val * self.char_coef_[c_idx]).tolist(), strict=True)
        )
        # phrase key (lower-cased text) -> [contribution, spans in document offsets]
        totals: dict[str, float] = defaultdict(float)
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        words = [(m.start(), m.end()) for m in _SPACE_RE.finditer(doc)]
        for start, end in words:
            spans[doc[start:end].lower()].append((start, end))
        residual = 0.0
        # character n-grams: each lies inside one whitespace word (char_wb)
        if char_contrib:
            analyzer = self._analyzers()[1]
            occurrences: dict[int, list[tuple[str, int]]] = defaultdict(list)
            # A word's character n-grams do not depend on where it stands: analyse each
            # distinct word once and weigh it by how often it occurs.
            repeats = Counter(doc[start:end].lower() for start, end in words)
            for key, times in repeats.items():
                for gram, c in Counter(analyzer(key)).items():
                    j = self._char_index.get(gram)
                    if j is not None and j in char_contrib:
                        occurrences[j].append((key, c * times))
            for j, value in char_contrib.items():
                where = occurrences.get(j)
                if not where:
                    residual += value
                    continue
                total = sum(c for _, c in where)
                for key, c in where:
                    totals[key] += value * c / total
        # word n-grams: unigrams go to the whitespace words holding them, bigrams are phrases
        if word_contrib:
            tokens = [(m.group().lower(), m.start(), m.end()) for m in _WORD_RE.finditer(doc)]
            located: dict[str, list[tuple[int, int]]] = defaultdict(list)
            low, high = self.word_ngrams
            for n in range(low, high + 1):
                for i in range(len(tokens) - n + 1):
                    gram_text = " ".join(t[0] for t in tokens[i : i + n])
                    located[gram_text].append((tokens[i][1], tokens[i + n - 1][2]))
            word_starts = [start for start, _ in words]
            for j, value in word_contrib.items():
                gram = self.word_vocabulary_[j]
                parts = gram.split(" ")
                hits = located.get(gram, [])
                if not hits:
                    residual += value
                    continue
                if len(parts) == 1:
                    owners = [_owner(words, word_starts, start) for start, _ in hits]
                    keys = [doc[words[o][0] : words[o][1]].lower() for o in owners if o >= 0]
                    if len(keys) != len(hits):
                        residual += value
                        continue
                    for key in keys:
                        totals[key] += value / len(keys)
                else:
                    key = doc[hits[0][0] : hits[0][1]].lower()
                    totals[key] += value
                    spans[key] = list(dict.fromkeys([*spans.get(key, []), *hits]))
        out = []
        for key, value in totals.items():
            found = tuple(_to_field(starts, names, s, e) for s, e in spans.get(key, []))
            if not found:
                continue
            field, start, end = found[0]
            first = doc[starts[names.index(field)] + start : starts[names.index(field)] + end]
            out.append(Phrase(first, float(value), field, found))
        if residual != 0.0:
            out.append(Phrase("(other n-grams)", float(residual), "", ()))
        out.sort(key=lambda p: (-abs(p.contribution), p.text))
        return out if top_k is None else out[:top_k]

    # -- storage ---------------------------------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """`text_model.json` (parameters, vocabularies) and `text_model.npz` (idf, coef)."""
        self._check_fitted()
        params = {
            "format_version": TEXT_MODEL_FORMAT_VERSION,
            "params": self.get_params(),
            "intercept": self.intercept_,
            "word_vocabulary": self.word_vocabulary_,
            "char_vocabulary": self.char_vocabulary_,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            word_idf=self.word_idf_,
            char_idf=self.char_idf_,
            word_coef=self.word_coef_,
            char_coef=self.char_coef_,
        )
        return {
            PARAMS_FILE: json.dumps(params, ensure_ascii=False).encode(),
            ARRAYS_FILE: buffer.getvalue(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> TextModel:
        """Inverse of `to_files`; refuses unknown formats and inconsistent arrays."""
        missing = [name for name in (PARAMS_FILE, ARRAYS_FILE) if name not in files]
        if missing:
            raise TextModelError(f"text model files missing: {', '.join(missing)}")
        doc = json.loads(files[PARAMS_FILE])
        if doc.get("format_version") != TEXT_MODEL_FORMAT_VERSION:
            raise TextModelError(
                f"{PARAMS_FILE}: format_version {doc.get('format_version')!r} is not "
                f"{TEXT_MODEL_FORMAT_VERSION}; retrain the model with this govrisk"
            )
        params = doc["params"]
        model = cls(
            **{
                **params,
                "word_ngrams": tuple(params["word_ngrams"]),
                "char_ngrams": tuple(params["char_ngrams"]),
            }
        )
        with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as arrays:
            model.word_idf_ = arrays["word_idf"].astype(np.float64)
            model.char_idf_ = arrays["char_idf"].astype(np.float64)
            model.word_coef_ = arrays["word_coef"].astype(np.float64)
            model.char_coef_ = arrays["char_coef"].astype(np.float64)
        model.word_vocabulary_ = list(doc["word_vocabulary"])
        model.char_vocabulary_ = list(doc["char_vocabulary"])
        model.intercept_ = float(doc["intercept"])
        for block in ("word", "char"):
            n = len(getattr(model, f"{block}_vocabulary_"))
            if getattr(model, f"{block}_idf_").shape != (n,) or getattr(
                model, f"{block}_coef_"
            ).shape != (n,):
                raise TextModelError(f"{ARRAYS_FILE}: {block} arrays do not match the vocabulary")
        model._reset()
        return model

    def save(self, directory: Path | str) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self.to_files().items():
            (path / name).write_bytes(data)
        return path

    @classmethod
    def load(cls, directory: Path | str) -> TextModel:
        path = Path(directory)
        return cls.from_files({n: (path / n).read_bytes() for n in (PARAMS_FILE, ARRAYS_FILE)})

    def get_params(self) -> dict[str, Any]:
        return {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "min_df": self.min_df,
            "max_word_features": self.max_word_features,
            "max_char_features": self.max_char_features,
            "C": self.C,
            "max_iter": self.max_iter,
        }

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return len(self.word_vocabulary_) + len(self.char_vocabulary_)

    # -- internals -------------------------------------------------------------------------

    @property
    def analysis_key(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Models with equal keys read the same n-grams: `analyze` once, score with each."""
        return tuple(self.word_ngrams), tuple(self.char_ngrams)  # type: ignore[return-value]

    def analyze(self, doc: object) -> Grams:
        """The word and character n-gram counts of one document (vocabulary not applied)."""
        self._check_fitted()
        (w_analyzer, c_analyzer), _ = self._built()
        text = doc if isinstance(doc, str) else ""
        return Counter(w_analyzer(text)), Counter(c_analyzer(text))

    def margin(self, grams: Grams) -> float:
        """Log-odds of one document from its `analyze` output."""
        (w_idx, w_val), (c_idx, c_val) = self._grams_values(grams)
        return (
            self.intercept_
            + float(np.dot(w_val, self.word_coef_[w_idx]))
            + float(np.dot(c_val, self.char_coef_[c_idx]))
        )

    def _values(
        self, doc: str
    ) -> tuple[
        tuple[NDArray[np.int64], NDArray[np.float64]], tuple[NDArray[np.int64], NDArray[np.float64]]
    ]:
        """(indices, TF-IDF values) of one document's word and character blocks."""
        return self._grams_values(self.analyze(doc))

    def _grams_values(
        self, grams: Grams
    ) -> tuple[
        tuple[NDArray[np.int64], NDArray[np.float64]], tuple[NDArray[np.int64], NDArray[np.float64]]
    ]:
        return (
            _block_values(grams[0], self._word_index, self.word_idf_),
            _block_values(grams[1], self._char_index, self.char_idf_),
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "intercept_"):
            raise TextModelError("this TextModel is not fitted; call fit() or load() first")

    def _reset(self) -> None:
        self.__dict__.pop("_cache", None)
        self._char_index = {g: j for j, g in enumerate(self.char_vocabulary_)}
        self._word_index = {g: j for j, g in enumerate(self.word_vocabulary_)}

    def _analyzers(self) -> tuple[Callable[[str], list[str]], Callable[[str], list[str]]]:
        analyzers: tuple[Callable[[str], list[str]], Callable[[str], list[str]]]
        analyzers = self._built()[0]
        return analyzers

    def _counters(
        self,
    ) -> tuple[Callable[[list[str]], sp.csr_matrix], Callable[[list[str]], sp.csr_matrix]]:
        counters: tuple[
            Callable[[list[str]], sp.csr_matrix], Callable[[list[str]], sp.csr_matrix]
        ] = self._built()[1]
        return counters

    def _built(self) -> Any:
        cache = self.__dict__.get("_cache")
        if cache is None:
            from sklearn.feature_extraction.text import CountVectorizer

            def counter(analyzer: str, ngrams: tuple[int, int], vocabulary: list[str]) -> Any:
                analyzer_fn = CountVectorizer(
                    analyzer=analyzer, ngram_range=ngrams, token_pattern=_WORD_PATTERN
                ).build_analyzer()
                if not vocabulary:
                    return analyzer_fn, lambda docs: sp.csr_matrix((len(docs), 0), dtype=np.float64)
                index = {g: j for j, g in enumerate(vocabulary)}
                return analyzer_fn, lambda docs: _count(docs, analyzer_fn, index)

            w_analyzer, w_count = counter("word", self.word_ngrams, self.word_vocabulary_)
            c_analyzer, c_count = counter("char_wb", self.char_ngrams, self.char_vocabulary_)
            cache = ((w_analyzer, c_analyzer), (w_count, c_count))
            self.__dict__["_cache"] = cache
        return cache


def _as_docs(texts: Sequence[object] | NDArray[Any]) -> list[str]:
    return [t if isinstance(t, str) else "" for t in texts]


def _count(
    docs: list[str], analyzer: Callable[[str], list[str]], index: dict[str, int]
) -> sp.csr_matrix:
    # CountVectorizer.transform with a fixed vocabulary, without its per-call overhead.
    indptr, indices, data = [0], list[int](), list[int]()
    for doc in docs:
        counts: dict[int, int] = {}
        for gram in analyzer(doc):
            j = index.get(gram)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        indices.extend(counts)
        data.extend(counts.values())
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.asarray(data, np.float64), np.asarray(indices, np.int64), np.asarray(indptr)),
        shape=(len(docs), len(index)),
    )


def _block_values(
    grams: Counter[str], index: dict[str, int], idf: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    # One row of scikit-learn's TfidfTransformer(sublinear_tf=True, norm="l2"), columns sorted.
    counts = [(index[g], c) for g, c in grams.items() if g in index]
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    counts.sort()
    idx = np.fromiter((j for j, _ in counts), np.int64, len(counts))
    values = (np.log(np.fromiter((c for _, c in counts), np.float64, len(counts))) + 1.0) * idf[idx]
    return idx, values / np.sqrt(np.dot(values, values))


def _sigmoid(margin: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * margin)), dtype=np.float64)


def _tfidf(counts: sp.csr_matrix, idf: NDArray[np.float64]) -> sp.csr_matrix:
    # scikit-learn's TfidfTransformer(sublinear_tf=True, norm="l2") with a stored idf.
    X = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    X.sort_indices()
    X.data = (np.log(X.data) + 1.0) * idf[X.indices]
    row_nnz = np.diff(X.indptr)
    rows = np.repeat(np.arange(X.shape[0]), row_nnz)
    norms = np.sqrt(np.bincount(rows, weights=X.data**2, minlength=X.shape[0]))
    norms[norms == 0.0] = 1.0
    X.data /= np.repeat(norms, row_nnz)
    return X


def _owner(words: list[tuple[int, int]], starts: list[int], position: int) -> int:
    k = bisect.bisect_right(starts, position) - 1
    return k if k >= 0 and words[k][0] <= position < words[k][1] else -1


def _field_starts(values: Sequence[object]) -> list[int]:
    starts, position = [], 0
    for value in values:
        starts.append(position)
        position += len(value if isinstance(value, str) else "") + len(FIELD_SEPARATOR)
    return starts


def _to_field(starts: list[int], names: list[str], start: int, end: int) -> tuple[str, int, int]:
    k = max(i for i, s in enumerate(starts) if s <= start)
    return names[k], start - starts[k], end - starts[k]


def describe_phrase(phrase: Phrase) -> str:
    """`title contains 'ozempic-like' (+0.80 log-odds)`."""
    where = phrase.field or "text"
    sign = "+" if phrase.contribution >= 0 else "-"
    return f"{where} contains '{phrase.text}' ({sign}{abs(phrase.contribution):.2f} log-odds)"
