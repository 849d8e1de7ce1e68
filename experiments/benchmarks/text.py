"""Text models on real labelled text and on the simulated marketplace, measured.

`python -m experiments.benchmarks.text [--data PATH] [--quick] [--world DIR ...]` reads the
SMS Spam Collection (`--data`, else `GOVRISK_SMS_SPAM_PATH`, else
`../shared/data/sms_spam/sms_spam.tsv.gz` from the working directory; CC BY 4.0, Almeida et
al. 2011; read in place, never copied) and scores,
in the same 5 cross-validation folds, every pipeline below on the spam label:

- `byo text + LightGBM`: the bring-your-own-data `text` feature (lexicon counts, length, 4 or
  64 hash projection columns, `features.text.text_signals`) with LightGBM;
- `baseline`: scikit-learn `TfidfVectorizer` word 1-2-grams + `LogisticRegression` (defaults);
- `govrisk TextModel`: word 1-2 + `char_wb` 2-5-gram TF-IDF (sublinear tf, capped
  vocabularies) + liblinear logistic regression, the model `models.text_model` serves;
- the alternatives it was chosen against: the same n-grams hashed (`HashingVectorizer`, 2**20
  buckets, + `TfidfTransformer`), and `SGDClassifier` (log loss) instead of the solver.

Folds: `StratifiedGroupKFold` grouped by message text, so the 403 exact repeats never sit on
both sides of a split. ROC-AUC and PR-AUC (average precision) are the mean over folds. Cost:
featurization (text -> model input) in µs per row, CPU time of this thread, over the test
folds, one batch call per fold, and for one row at a time; model size is the stored bytes
(vocabulary + arrays; LightGBM text model; hashed: the dense coefficient vector).

With `--world DIR` (a `govrisk simulate` output, repeatable) it also compares, per world, entity
and text policy, the **old** text features (lexicon counts, length and hash projection of the
listing text pipeline, LightGBM), the **new** text model alone (`TextModel` with the training
defaults of `training.spec.TextSpec`: vocabulary and idf from every document, `min_df` 5) and
**both**, stacked as training does (LightGBM on the old features plus the text model's out-of-
fold score, item folds as in `training.text`), all text-only and trained on the entity's audit
labels of that policy reviewed before the last two weeks, weighted by inverse inclusion
probability trimmed at 5x. All three are scored against the ground truth (`violates_<policy>`)
on every item of the entity without such a training label: overall, and on the items whose
violation is worded in an obfuscated or a novel way (`wording_<policy>`; each subset keeps every
non-violating item as negatives).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

DEFAULT_PATH = Path("..") / "shared" / "data" / "sms_spam" / "sms_spam.tsv.gz"
ENV_PATH = "GOVRISK_SMS_SPAM_PATH"
_SINGLE_ROWS = 300


@dataclass
class _Result:
    name: str
    roc: list[float] = field(default_factory=list)
    pr: list[float] = field(default_factory=list)
    featurize_seconds: float = 0.0
    featurize_rows: int = 0
    single_us: list[float] = field(default_factory=list)
    size_bytes: list[int] = field(default_factory=list)


# A pipeline: fit(texts, y) -> (featurize(texts) -> X, score(X) -> scores, size in bytes).
_Fitted = tuple[Callable[[list[str]], Any], Callable[[Any], NDArray[np.float64]], int]
_Pipeline = Callable[[list[str], NDArray[np.int64]], _Fitted]


def load_sms(path: Path) -> tuple[list[str], NDArray[np.int64]]:
    """Messages and 1 = spam labels."""
    if not path.exists():
        raise SystemExit(
            f"SMS spam data not found at {path}; pass --data PATH or set {ENV_PATH} "
            "(the corpus is not in the repository)"
        )
    df = pd.read_csv(path, sep="\t", quoting=3)
    if list(df.columns) != ["Label", "SMS"]:
        raise SystemExit(f"{path}: expected columns Label, SMS; found {list(df.columns)}")
    texts = [t if isinstance(t, str) else "" for t in df["SMS"]]
    return texts, (df["Label"] == "spam").to_numpy().astype(np.int64)


def _byo_lightgbm(n_dims: int) -> _Pipeline:
    def fit(texts: list[str], y: NDArray[np.int64]) -> _Fitted:
        import lightgbm as lgb

        from features.text import encode, text_signals

        def featurize(docs: list[str]) -> NDArray[np.float64]:
            signals = text_signals(encode(np.asarray(docs, object)), prefix="t", n_dims=n_dims)
            return np.column_stack(list(signals.values()))

        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "num_threads": 1,
            "deterministic": True,
            "seed": 0,
            "verbose": -1,
        }
        booster = lgb.train(params, lgb.Dataset(featurize(texts), y), num_boost_round=300)

        def score(X: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(booster.predict(X, raw_score=True, num_threads=1))

        return featurize, score, len(booster.model_to_string().encode())

    return fit


def _baseline(texts: list[str], y: NDArray[np.int64]) -> _Fitted:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2))
    model = LogisticRegression(max_iter=1_000).fit(vectorizer.fit_transform(texts), y)
    size = _vocabulary_bytes(vectorizer.get_feature_names_out()) + 16 * len(vectorizer.idf_)
    return vectorizer.transform, lambda X: model.decision_function(X), size


def _govrisk(texts: list[str], y: NDArray[np.int64]) -> _Fitted:
    from models.text_model import TextModel

    model = TextModel().fit(texts, y)
    word_coef, char_coef, intercept = model.word_coef_, model.char_coef_, model.intercept_

    def score(X: Any) -> NDArray[np.float64]:
        return np.asarray(X[0] @ word_coef + X[1] @ char_coef + intercept)

    return model.transform, score, sum(len(b) for b in model.to_files().values())


def _ngram_vectorizers(hashed: bool) -> list[Any]:
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer

    blocks = (("word", (1, 2)), ("char_wb", (2, 5)))
    if hashed:
        return [
            HashingVectorizer(
                analyzer=a, ngram_range=n, n_features=2**20, alternate_sign=False, norm=None
            )
            for a, n in blocks
        ]
    return [
        TfidfVectorizer(analyzer=a, ngram_range=n, min_df=2, sublinear_tf=True) for a, n in blocks
    ]


def _variant(*, hashed: bool, sgd: bool) -> _Pipeline:
    def fit(texts: list[str], y: NDArray[np.int64]) -> _Fitted:
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        vectorizers = _ngram_vectorizers(hashed)
        transformers = [TfidfTransformer(sublinear_tf=True) for _ in vectorizers]

        def featurize(docs: list[str], *, fitting: bool = False) -> Any:
            parts = []
            for v, t in zip(vectorizers, transformers, strict=True):
                if hashed:
                    counts = v.transform(docs)
                    parts.append(t.fit_transform(counts) if fitting else t.transform(counts))
                else:
                    parts.append(v.fit_transform(docs) if fitting else v.transform(docs))
            return sp.hstack(parts, format="csr")

        X = featurize(texts, fitting=True)
        if sgd:
            model: Any = SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=50, random_state=0)
        else:
            model = LogisticRegression(C=10.0, solver="liblinear", max_iter=2_000)
        model.fit(X, y)
        if hashed:
            size = 8 * X.shape[1] + sum(8 * len(t.idf_) for t in transformers)
        else:
            size = sum(
                _vocabulary_bytes(v.get_feature_names_out()) + 16 * len(v.idf_) for v in vectorizers
            )
        return featurize, lambda Z: model.decision_function(Z), size

    return fit


def _vocabulary_bytes(names: Any) -> int:
    return len(json.dumps(list(names), ensure_ascii=False).encode())


PIPELINES: dict[str, _Pipeline] = {
    "byo text (4 hash dims) + LightGBM": _byo_lightgbm(4),
    "byo text (64 hash dims) + LightGBM": _byo_lightgbm(64),
    "baseline: TF-IDF word 1-2 + LogisticRegression": _baseline,
    "govrisk TextModel: TF-IDF word 1-2 + char_wb 2-5, liblinear LR": _govrisk,
    "same n-grams, TF-IDF + SGD (log loss)": _variant(hashed=False, sgd=True),
    "same n-grams, Hashing 2**20 + TfidfTransformer + LR": _variant(hashed=True, sgd=False),
}


def run(
    texts: list[str], y: NDArray[np.int64], *, folds: int = 5, names: list[str] | None = None
) -> list[_Result]:
    """Every pipeline in the same folds."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    _, groups = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    splits = list(splitter.split(np.zeros(len(y)), y, groups))
    results = []
    for name in names or list(PIPELINES):
        result = _Result(name)
        for train, test in splits:
            featurize, score, size = PIPELINES[name]([texts[i] for i in train], y[train])
            docs = [texts[i] for i in test]
            start = time.thread_time()
            X = featurize(docs)
            result.featurize_seconds += time.thread_time() - start
            result.featurize_rows += len(docs)
            scores = score(X)
            for doc in docs[:_SINGLE_ROWS]:
                start = time.thread_time()
                featurize([doc])
                result.single_us.append(1e6 * (time.thread_time() - start))
            result.roc.append(float(roc_auc_score(y[test], scores)))
            result.pr.append(float(average_precision_score(y[test], scores)))
            result.size_bytes.append(size)
        results.append(result)
    return results


_SIM_HOLDOUT_WEEKS = 2
_SIM_MAX_WEIGHT = 5.0


@dataclass
class _WorldRow:
    world: str
    entity: str
    policy: str
    labels: int
    positives: int
    pr: dict[str, tuple[float, float, float, int]]  # subset -> (old, new, stacked, violating)


def simulator_rows(world: Path) -> list[_WorldRow]:
    """Old text features vs the new text model, per entity and text policy, on one world."""
    from sklearn.metrics import average_precision_score

    from features.loader import load_tables
    from features.text import encode, text_signals
    from features.text_source import TEXT_POLICIES, TEXT_SOURCES
    from training.dataset import _normalised, prepare_labels, week_start
    from training.spec import TextSpec
    from training.text import item_folds

    spec = TextSpec()

    tables = load_tables(world / "data")
    truth = pd.read_parquet(world / "ground_truth" / "items.parquet")
    rows = []
    for entity, source in TEXT_SOURCES.items():
        docs = source.documents(tables[source.table])
        ids = docs.index.to_numpy()
        signals = text_signals(encode(docs.to_numpy(dtype=object)), prefix="t", n_dims=8)
        X_old = np.column_stack(list(signals.values()))
        labels = prepare_labels(tables["audit_labels"], entity=entity)
        if labels.empty:
            continue
        weeks = np.sort(week_start(labels["reviewed_at"]).unique())
        cut = weeks[-_SIM_HOLDOUT_WEEKS] if len(weeks) > _SIM_HOLDOUT_WEEKS else weeks[-1]
        item_truth = truth.loc[truth["entity"] == entity.value].set_index("item_id")
        for policy in TEXT_POLICIES:
            train = labels.loc[(labels["policy"] == policy) & (labels["reviewed_at"] < cut)]
            train = train.loc[train["item_id"].isin(ids)]
            y = train["y"].to_numpy(dtype=np.float64)
            if (y == 1).sum() < 5 or (y == 0).sum() < 5:
                continue
            weight = _normalised(
                1.0 / train["inclusion_probability"].to_numpy(np.float64),
                max_weight=_SIM_MAX_WEIGHT,
            )
            position = pd.Series(np.arange(len(ids)), index=ids)
            at = position.loc[train["item_id"]].to_numpy()
            all_docs = docs.to_numpy(dtype=object)
            model = _text_model(spec).fit(all_docs[at], y, sample_weight=weight, corpus=all_docs)
            scored = ~np.isin(ids, train["item_id"].to_numpy())
            eval_ids = ids[scored]
            text_score = model.decision_function(all_docs)
            folds = item_folds(ids[at], n_folds=spec.folds)
            for k in range(spec.folds):
                if len(np.unique(y[folds != k])) < 2:
                    text_score[at[folds == k]] = np.nan
                    continue
                fold_model = _text_model(spec).fit(
                    all_docs[at[folds != k]],
                    y[folds != k],
                    sample_weight=weight[folds != k],
                    corpus=all_docs,
                )
                text_score[at[folds == k]] = fold_model.decision_function(all_docs[at[folds == k]])
            X_both = np.column_stack([X_old, text_score])
            old = _boost(X_old, at, y, weight).predict(X_old[scored], num_threads=1)
            both = _boost(X_both, at, y, weight).predict(X_both[scored], num_threads=1)
            new = text_score[scored]
            facts = item_truth.reindex(eval_ids)
            violates = facts[f"violates_{policy}"].fillna(False).to_numpy(dtype=bool)
            wording = facts[f"wording_{policy}"].astype(str).to_numpy()
            pr = {}
            for subset, keep in (
                ("all", np.ones(len(eval_ids), bool)),
                ("lexicon", ~violates | (wording == "lexicon")),
                ("obfuscated", ~violates | (wording == "obfuscated")),
                ("novel", ~violates | (wording == "novel")),
            ):
                n_pos = int((violates & keep).sum())
                if n_pos == 0:
                    pr[subset] = (float("nan"), float("nan"), float("nan"), 0)
                    continue
                pr[subset] = (
                    float(average_precision_score(violates[keep], old[keep])),
                    float(average_precision_score(violates[keep], new[keep])),
                    float(average_precision_score(violates[keep], both[keep])),
                    n_pos,
                )
            rows.append(_WorldRow(world.name, entity.value, policy, len(train), int(y.sum()), pr))
    return rows


def _text_model(spec: Any) -> Any:
    from models.text_model import TextModel

    return TextModel(
        word_ngrams=spec.word_ngrams,
        char_ngrams=spec.char_ngrams,
        min_df=spec.min_df,
        max_word_features=spec.max_word_features,
        max_char_features=spec.max_char_features,
        C=spec.C,
    )


def _boost(X: NDArray[np.float64], at: NDArray[np.int64], y: Any, weight: Any) -> Any:
    import lightgbm as lgb

    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 10,
        "num_threads": 1,
        "deterministic": True,
        "seed": 0,
        "verbose": -1,
    }
    return lgb.train(params, lgb.Dataset(X[at], y, weight=weight), num_boost_round=200)


def _print_simulator(console: Any, rows: list[_WorldRow]) -> None:
    from rich.table import Table

    table = Table(
        title="Simulated marketplace, text only: PR-AUC against ground truth, old text features "
        "(LightGBM) / text model / both stacked (violating items in the subset)"
    )
    for column in (
        "world",
        "entity",
        "policy",
        "train labels (+)",
        "all",
        "lexicon",
        "obfuscated",
        "novel",
    ):
        table.add_column(
            column, justify="left" if column in ("world", "entity", "policy") else "right"
        )

    def cell(value: tuple[float, float, float, int]) -> str:
        old, new, both, n = value
        if n == 0:
            return "-"
        return f"{old:.3f} / {new:.3f} / {both:.3f} ({n})"

    for r in rows:
        table.add_row(
            r.world,
            r.entity,
            r.policy,
            f"{r.labels} ({r.positives})",
            *(cell(r.pr[s]) for s in ("all", "lexicon", "obfuscated", "novel")),
        )
    console.print(table)


def online_latency(texts: list[str], y: NDArray[np.int64], *, calls: int) -> dict[str, float]:
    """Single-item latency (µs, p50/p99) of a text bundle: raw text -> score (+ top-5 reasons).

    A bundle like training's (8 numeric inputs plus the text score of a `TextModel` trained
    on `texts`), one item per call with a 500-character description, in process, one thread.
    """
    import lightgbm as lgb

    from features.text_source import join_fields
    from models.bundle import ModelBundle
    from models.calibration import Calibration
    from models.encoding import FeatureEncoder
    from models.text_model import TextModel

    rng = np.random.default_rng(0)
    n = len(texts)
    name = "listing_text_score_misleading_claim"
    numeric = [f"x{k}" for k in range(8)]
    frame = pd.DataFrame(rng.normal(size=(n, 8)), columns=numeric)
    frame["title"] = texts
    frame["description"] = [(t + " ") * (500 // max(len(t), 1) + 1) for t in texts]
    frame["description"] = frame["description"].str.slice(0, 500)
    frame.insert(0, "item_id", [f"m{i}" for i in range(n)])
    model = TextModel().fit(
        [join_fields(v) for v in zip(frame["title"], frame["description"], strict=True)], y
    )
    frame[name] = model.decision_function(
        [join_fields(v) for v in zip(frame["title"], frame["description"], strict=True)]
    )
    encoder = FeatureEncoder(categorical=[], numeric=[*numeric, name]).fit(frame)
    booster = lgb.train(
        {"objective": "binary", "num_threads": 1, "verbosity": -1, "deterministic": True},
        lgb.Dataset(encoder.transform(frame), y, feature_name=encoder.feature_names_),
        num_boost_round=250,
    )
    bundle = ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.platt(-1.0, 0.0),
        features={n_: n_ for n_ in encoder.feature_names_},
        metadata={"run_id": None},
        text_models={name: model},
        text_fields=("title", "description"),
    )
    bundle.threads = 1
    bundle.warm_up()
    records = frame.drop(columns=[name]).to_dict("records")
    out: dict[str, float] = {}
    # The /v1/score path in process: raw text -> text scores -> encode -> ONNX -> calibration
    # (-> top-5 TreeSHAP reasons, phrases for a text score reason), one item per call.
    for label, explain in (("score", False), ("score + top-5 reasons with phrases", True)):
        times = []
        for call in range(calls):
            record = dict(records[call % n])
            start = time.perf_counter()
            doc = join_fields([record.pop("title"), record.pop("description")])
            record.update({k: float(v[0]) for k, v in bundle.text_scores([doc]).items()})
            X = bundle.encoder.encode_records([{str(k): v for k, v in record.items()}])
            bundle.predict_matrix(X)
            if explain:
                reasons = bundle.explain_matrix(X, 5)
                for reason in reasons[0]:
                    if reason.feature in bundle.text_models:
                        bundle.phrases(
                            reason.feature,
                            {
                                "title": records[call % n]["title"],
                                "description": records[call % n]["description"],
                            },
                            k=5,
                        )
            times.append(1e6 * (time.perf_counter() - start))
        out[f"{label} p50"] = float(np.percentile(times, 50))
        out[f"{label} p99"] = float(np.percentile(times, 99))
    start = time.perf_counter()
    for call in range(calls):
        bundle.text_scores(
            [join_fields([records[call % n]["title"], records[call % n]["description"]])]
        )
    out["text score alone, mean"] = 1e6 * (time.perf_counter() - start) / calls
    out["text model files (bytes)"] = float(sum(len(b) for b in model.to_files().values()))
    return out


def main(argv: list[str] | None = None) -> None:
    """Run every pipeline in the same folds; print the table."""
    parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.text")
    parser.add_argument("--data", type=Path, default=None, help=f"SMS spam TSV (or ${ENV_PATH})")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 messages, 3 folds")
    parser.add_argument(
        "--world", type=Path, action="append", default=[], help="`govrisk simulate` output"
    )
    parser.add_argument("--no-sms", action="store_true", help="only the simulator table")
    args = parser.parse_args([] if argv is None else argv)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.world:
        rows = []
        for world in args.world:
            with console.status(f"old vs new text models on {world}"):
                rows.extend(simulator_rows(world))
        _print_simulator(console, rows)
    if args.no_sms:
        return
    path = args.data or Path(os.environ.get(ENV_PATH, str(DEFAULT_PATH)))
    texts, y = load_sms(path)
    folds = args.folds
    if args.quick:
        texts, y, folds = texts[:2_000], y[:2_000], 3
    from rich.table import Table

    with console.status(f"{len(PIPELINES)} pipelines x {folds} folds on {len(texts):,} messages"):
        results = run(texts, y, folds=folds)
    baseline = next(r for r in results if r.name.startswith("baseline"))
    table = Table(
        title=f"SMS spam ({len(texts):,} messages, {int(y.sum()):,} spam), {folds}-fold CV "
        "grouped by text; mean over folds"
    )
    for column in (
        "pipeline",
        "ROC-AUC",
        "PR-AUC",
        "PR-AUC vs baseline",
        "featurize µs/row (batch)",
        "µs/row (one row, p50)",
        "model size",
    ):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for r in results:
        table.add_row(
            r.name,
            f"{np.mean(r.roc):.3f}",
            f"{np.mean(r.pr):.3f}",
            f"{np.mean(r.pr) - np.mean(baseline.pr):+.3f}",
            f"{1e6 * r.featurize_seconds / max(r.featurize_rows, 1):.1f}",
            f"{np.median(r.single_us):.0f}",
            f"{np.mean(r.size_bytes) / 1e6:.2f} MB",
        )
    console.print(table)
    with console.status("online latency"):
        latency = online_latency(texts, y, calls=300 if args.quick else 2_000)
    small = Table(
        title="One item in process (500-character description, 250 trees, text model on all "
        "messages), wall µs"
    )
    small.add_column("measure")
    small.add_column("value", justify="right")
    for key, value in latency.items():
        small.add_row(key, f"{value:,.0f}")
    console.print(small)


if __name__ == "__main__":
    main(sys.argv[1:])
