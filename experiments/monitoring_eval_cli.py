"""`govrisk evaluate-monitoring`: alerts measured against planted incidents."""

from __future__ import annotations

from typing import Annotated

import typer

from experiments.options import parse_seeds
from features.vocabulary import Channel


def evaluate_monitoring(
    seeds: Annotated[
        list[str] | None,
        typer.Option("--seeds", help="Simulation seeds: `--seeds 1,2` or `--seeds 1 --seeds 2`."),
    ] = None,
    listings: Annotated[
        int, typer.Option("--listings", min=500, help="Listings per simulated marketplace.")
    ] = 3_000,
    days: Annotated[int, typer.Option("--days", min=28, help="Simulated days.")] = 56,
) -> None:
    """Simulate worlds with and without planted incidents (a complaint flood in one channel,
    a returns surge in one category, a broken strategy deployment) and print the detection
    delay per incident and the false alarms per month on incident-free worlds."""
    from rich.console import Console
    from rich.table import Table

    from experiments.monitoring_eval import MonitoringEvalConfig, run_monitoring_eval

    console = Console()
    parsed = parse_seeds(seeds, (1, 2))
    cfg = MonitoringEvalConfig(seeds=parsed, listings=listings, days=days)
    with console.status("simulating") as status:
        result = run_monitoring_eval(cfg, on_step=lambda msg: status.update(msg))
    det = Table(
        title="Detection delay (days of data after the incident started on day "
        f"{int(days * cfg.start_fraction)})"
    )
    for col in ("incident", *(f"seed {s}" for s in parsed), "found", "other alerts by then"):
        det.add_column(col, justify="left" if col == "incident" else "right")
    for name, g in result.detections.groupby("scenario", sort=False):
        delays = [g.loc[g["seed"] == s, "delay_days"].iloc[0] for s in parsed]
        found = sum(d is not None and d == d for d in delays)
        det.add_row(
            str(name),
            *("–" if d is None or d != d else f"{int(d)}" for d in delays),
            f"{found}/{len(parsed)}",
            f"{int(g['other_alerts'].sum())}",
        )
    console.print(det)
    _print_watched_alarms(console, result.detections, days)
    _print_evidence(console, result.detections, parsed)
    fa = result.false_alarms
    months = float(fa["months"].iloc[0]) if len(fa) else days / 30
    fat = Table(title="False alarms on incident-free worlds (alert episodes, launch excluded)")
    seed_cols = [f"seed {s}" for s in parsed]
    for col in ("kind", *seed_cols, "alerts", "per month", "per month per channel"):
        fat.add_column(col, justify="left" if col == "kind" else "right")
    fired = fa[fa["kind"] != "none"]
    for kind, g in [*fired.groupby("kind"), ("all", fired)]:
        n = int(g["alerts"].sum())
        by_seed = [str(int(g.loc[g["seed"] == s, "alerts"].sum())) for s in parsed]
        per = n / months / len(parsed)
        fat.add_row(str(kind), *by_seed, str(n), f"{per:.2f}", f"{per / len(Channel):.2f}")
    console.print(fat)
    _print_launch_share(console, fired, months=months, worlds=len(parsed))
    _print_model_checks(console, result)
    for _, r in result.launch.iterrows():
        first = r["first_alert_week"]
        console.print(
            f"seed {r['seed']}: new category launched {r['launch_week']:%Y-%m-%d}; first drift "
            f"alert week {'none' if pd_isna(first) else f'{first:%Y-%m-%d}'}"
        )


def _print_launch_share(console: object, fired: object, *, months: float, worlds: int) -> None:
    """How many of the false alarms were about the planted launch category, whose complaints
    and returns really do rise (it is riskier and no strategy covers it)."""
    import pandas as pd
    from rich.console import Console

    from experiments.simulator.categories import NEW_CATEGORY
    from features.vocabulary import Channel

    assert isinstance(console, Console) and isinstance(fired, pd.DataFrame)
    if "on_launch_category" not in fired.columns or not len(fired):
        return
    launch = int(fired["on_launch_category"].sum())
    rest = int(fired["alerts"].sum()) - launch
    per = rest / months / worlds / len(Channel)
    console.print(
        f"of these, {launch} were on the planted launch category {NEW_CATEGORY} (a real rise: it "
        f"is riskier and no strategy covers it); without them {per:.2f} per month per channel"
    )


def _print_watched_alarms(console: object, detections: object, days: int) -> None:
    """What a watch costs: sequential alerts on the watched categories of the incident-free
    worlds with the watch on (those the default threshold raises too included)."""
    import pandas as pd
    from rich.console import Console

    from experiments.monitoring_eval import WATCHED_SCENARIOS

    assert isinstance(console, Console) and isinstance(detections, pd.DataFrame)
    if "watched_false_alarms" not in detections.columns:
        return
    for name, (_base, watch) in WATCHED_SCENARIOS.items():
        g = detections[detections["scenario"] == name].dropna(subset=["watched_false_alarms"])
        if len(g):
            n, months = int(g["watched_false_alarms"].sum()), len(g) * days / 30
            console.print(
                f"{name}: on the incident-free worlds the watch on {', '.join(watch)} raised "
                f"{n} sequential alerts in {months:.1f} world-months ({n / months:.2f} per month)"
            )


def _print_evidence(console: object, detections: object, seeds: tuple[int, ...]) -> None:
    """Per trust surge and seed: its outcomes in the first days with and without it, and how
    unlikely the count with it is at the count without (Poisson upper tail)."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table
    from scipy.stats import poisson

    from experiments.monitoring_eval import EVIDENCE_DAYS, WATCHED_SCENARIOS

    assert isinstance(console, Console) and isinstance(detections, pd.DataFrame)
    d = detections.dropna(subset=["evidence_with", "evidence_without"])
    d = d[~d["scenario"].isin(list(WATCHED_SCENARIOS))]  # the same worlds as their base
    if not len(d):
        return
    t = Table(
        title=f"Evidence in the {EVIDENCE_DAYS} days after the start: the incident's outcomes in "
        "its slice, without -> with it (same seed), P(count >= with | Poisson(without))"
    )
    for col in ("incident", *(f"seed {s}" for s in seeds)):
        t.add_column(col, justify="left" if col == "incident" else "right")
    for name, g in d.groupby("scenario", sort=False):
        cells = []
        for s in seeds:
            r = g[g["seed"] == s]
            if not len(r):
                cells.append("–")
                continue
            lo, hi = int(r["evidence_without"].iloc[0]), int(r["evidence_with"].iloc[0])
            cells.append(f"{lo} -> {hi} (p {poisson.sf(hi - 1, max(lo, 1)):.2g})")
        t.add_row(str(name), *cells)
    console.print(t)


def _print_model_checks(console: object, result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from experiments.monitoring_eval import MonitoringEvalResult

    assert isinstance(console, Console) and isinstance(result, MonitoringEvalResult)
    v = result.view_rates
    if len(v):
        t = Table(title="Violative view rate per channel (95% PPI interval) against the truth")
        for col in ("policy", "channels x seeds", "covered", "median width", "median |error|"):
            t.add_column(col, justify="left" if col == "policy" else "right")
        for policy, g in [*v.groupby("policy"), ("all", v)]:
            err = (g["vvr"] - g["vvr_true"]).abs().median()
            width = (g["vvr_high"] - g["vvr_low"]).median()
            covered = f"{int(g['covered'].sum())}/{len(g)} ({g['covered'].mean():.0%})"
            t.add_row(str(policy), str(len(g)), covered, f"{width:.3f}", f"{err:.3f}")
        console.print(t)
        by_seed = v.groupby("seed")["covered"].agg(["sum", "size"])
        console.print(
            "covered by seed: "
            + ", ".join(f"{s}: {int(r['sum'])}/{int(r['size'])}" for s, r in by_seed.iterrows())
        )
    p = result.precisions.dropna(subset=["expected_precision", "precision_true"])
    if len(p):
        t = Table(
            title="Label-free precision (CBPE) at model probability >= "
            f"{result.config.precision_threshold:g} against the truth"
        )
        for col in ("entity", "policy", "flagged", "expected", "sd", "true", "|error|"):
            t.add_column(col, justify="left" if col in ("entity", "policy") else "right")
        for (entity, policy), g in p.groupby(["entity", "policy"]):
            t.add_row(
                str(entity),
                str(policy),
                f"{g['flagged'].mean():.0f}",
                f"{g['expected_precision'].mean():.3f}",
                f"{g['expected_precision_sd'].mean():.3f}",
                f"{g['precision_true'].mean():.3f}",
                f"{g['error'].mean():.3f}",
            )
        within = (p["error"] <= 0.05).mean()
        within_sd = (p["error"] <= 2 * p["expected_precision_sd"]).mean()
        console.print(t)
        console.print(
            f"label-free precision within 0.05 of the truth: {within:.0%} of {len(p)} "
            f"(model x seed); within two of its own sd: {within_sd:.0%}"
        )
        by_seed = p.assign(ok=p["error"] <= 0.05).groupby("seed")["ok"].agg(["sum", "size"])
        console.print(
            "within 0.05 by seed: "
            + ", ".join(f"{s}: {int(r['sum'])}/{int(r['size'])}" for s, r in by_seed.iterrows())
        )
        anyv = p[p["policy"] == "any"]
        console.print(
            f"any-violation models within 0.05: {int((anyv['error'] <= 0.05).sum())}/{len(anyv)}"
        )
        _print_labelled_check(console, p)
    _print_strategy_checks(console, result.strategy_precisions)


def _print_labelled_check(console: object, p: object) -> None:
    """How often the precision from the audit's labels covers each policy model's truth."""
    import pandas as pd
    from rich.console import Console

    from governance.monitoring.view import interval_level

    assert isinstance(console, Console) and isinstance(p, pd.DataFrame)
    if "labelled_low" not in p.columns:
        return
    checked = p.dropna(subset=["labelled_low", "labelled_high"])
    if not len(checked):
        return
    truth = checked["precision_true"]
    covered = (checked["labelled_low"] <= truth) & (truth <= checked["labelled_high"])
    width = (checked["labelled_high"] - checked["labelled_low"]).median()
    level = interval_level(checked["confidence"].iloc[0]) if "confidence" in checked else "–"
    console.print(
        f"precision from the audit's labels ({level} interval) covers the truth: "
        f"{int(covered.sum())}/{len(checked)} = {covered.mean():.0%} (median width {width:.3f})"
    )


def _print_strategy_checks(console: object, sp: object) -> None:
    """Label-free precision per strategy and week against the realised precision."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    assert isinstance(console, Console) and isinstance(sp, pd.DataFrame)
    s = sp.dropna(subset=["expected_precision", "precision_true"]) if len(sp) else sp
    if not len(s):
        return
    t = Table(title="Label-free strategy precision per week against the realised precision")
    cols = ("strategy", "weeks", "actioned / week", "expected", "true", "median |error|", "<= 0.05")
    for col in cols:
        t.add_column(col, justify="left" if col == "strategy" else "right")
    for strategy, g in [*s.groupby("strategy_id"), ("all", s)]:
        ok = g["error"] <= 0.05
        t.add_row(
            str(strategy),
            str(len(g)),
            f"{g['actioned'].mean():.0f}",
            f"{g['expected_precision'].mean():.3f}",
            f"{g['precision_true'].mean():.3f}",
            f"{g['error'].median():.3f}",
            f"{ok.mean():.0%}",
        )
    console.print(t)
    tight = s[s["expected_precision_sd"] <= 0.025]
    p_error = (s["expected_precision"] - s["precision_p_true"]).abs()
    oracle = (s["precision_p_true"] - s["precision_true"]).abs() <= 0.05
    console.print(
        f"weekly windows within 0.05 of the realised precision: {_share(s['error'] <= 0.05)} of "
        f"{len(s)} (strategy x week x seed); within two of its own sd: "
        f"{_share(s['error'] <= 2 * s['expected_precision_sd'])}"
    )
    console.print(
        f"windows whose sd is at most 0.025: {_share(tight['error'] <= 0.05)} of {len(tight)}; "
        f"within 0.05 of the items' true mean probability: {_share(p_error <= 0.05)}"
    )
    console.print(
        "an oracle that knows each item's true violation probability is within 0.05 of the "
        f"realised precision on {_share(oracle)} of the windows (the ceiling of any label-free "
        "estimate from the same information)"
    )


def _share(ok: object) -> str:
    """Share of true values as a percentage, `-` when there are none."""
    import pandas as pd

    assert isinstance(ok, pd.Series)
    return f"{ok.mean():.0%}" if len(ok) else "-"


def pd_isna(x: object) -> bool:
    """Whether `x` is a missing value."""
    import pandas as pd

    return x is None or bool(pd.isna(pd.Series([x])).iloc[0])


def register(app: typer.Typer) -> None:
    """Add `govrisk evaluate-monitoring` to the root app."""
    app.command("evaluate-monitoring")(evaluate_monitoring)
