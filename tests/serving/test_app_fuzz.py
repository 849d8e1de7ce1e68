"""schemathesis against the whole app in-process: every operation, anonymous and every role.

Each operation of the OpenAPI document gets a bounded number of generated requests per caller,
checked with schemathesis's checks (no server errors, responses match their declared schema,
status codes and content types are declared, and so on). Failures are collected rather than
shrunk, so one run reports every operation that misbehaves. `-m slow` runs more examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from models.bundle import ModelBundle
from serving.model_store import ModelStore
from serving.scoring_api import install
from tests.models.bundle_factory import make_frame, train_bundle

ON_SQLITE = pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
CALLERS = ("anonymous", "moderator", "pm", "ml_engineer", "admin")
#: Every check runs, including schema-valid requests refused (`positive_data_acceptance`) and
#: schema-violating ones accepted (`negative_data_rejection`): rules across fields are in the
#: schema (escalations and transitions are `oneOf` on their kind / target state; a flag's
#: reasons are a list, not JSON text), and a state the request conflicts with is a 409.
EXCLUDED_CHECKS: list[object] = []


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    """A small model, so /v1/score answers rather than 503."""
    trained = train_bundle(*make_frame(300, seed=12), n_trees=10)
    trained.threads = 1
    return trained


def fuzz(
    review_app: SimpleNamespace,
    bundle: ModelBundle,
    who: str,
    *,
    examples: int,
    negative_examples: int,
) -> tuple[Counter[str], list[str]]:
    """Generated case counts per operation and mode, and the failures, for one caller."""
    install(review_app.app, ModelStore.fixed(bundle, uri="models:/fuzz/1"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", review_app.app)
    headers = review_app.auth(who) if who != "anonymous" else {}
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        for mode, n in (
            (GenerationMode.POSITIVE, examples),
            (GenerationMode.NEGATIVE, negative_examples),
        ):
            _fuzz_operation(result.ok(), mode, who, headers, n, counts, failures)
    return counts, failures


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    who: str,
    headers: dict[str, str],
    examples: int,
    counts: Counter[str],
    failures: list[str],
) -> None:
    label = f"{operation.label} ({mode.value})"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        counts[label] += 1
        try:
            case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # collected, not shrunk: all at once
            failures.append(f"{who} {label}: {str(exc)[:600]}")

    try:
        run()
    except Unsatisfiable:  # negative mode: the operation has no input to make invalid
        assert mode == GenerationMode.NEGATIVE, label


@ON_SQLITE
@pytest.mark.parametrize("who", CALLERS)
def test_every_operation_for_every_caller(
    review_app: SimpleNamespace,
    bundle: ModelBundle,
    who: str,
    record_property: Callable[[str, object], None],
) -> None:
    counts, failures = fuzz(review_app, bundle, who, examples=3, negative_examples=2)
    record_property("generated_cases", sum(counts.values()))
    record_property("operation_modes", len(counts))
    assert len(counts) >= 60  # 34 operations, positive and (where possible) negative
    assert not failures, "\n\n".join(failures[:15])


@pytest.mark.slow
@ON_SQLITE
@pytest.mark.parametrize("who", CALLERS)
def test_every_operation_for_every_caller_at_length(
    review_app: SimpleNamespace,
    bundle: ModelBundle,
    who: str,
    record_property: Callable[[str, object], None],
) -> None:
    counts, failures = fuzz(review_app, bundle, who, examples=40, negative_examples=20)
    record_property("generated_cases", sum(counts.values()))
    assert not failures, "\n\n".join(failures[:15])
