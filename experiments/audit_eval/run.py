"""The whole evaluation over several worlds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from experiments.audit_eval.config import (
    DEVELOPMENT_SEEDS,
    AuditEvalConfig,
    AuditEvalResult,
    ProgressFn,
    WorldEval,
)
from experiments.audit_eval.fraud import evaluate_fraud_data, fraud_summary
from experiments.audit_eval.tables import per_world_table, per_world_values, summary_table
from experiments.audit_eval.worlds import evaluate_world, rescore_world


def run_audit_eval(cfg: AuditEvalConfig, *, progress: ProgressFn | None = None) -> AuditEvalResult:
    """Evaluate the audit on every seed (and the fraud data when `fraud_base_dir` is set) and
    build the summary table; every table is also written into `cfg.work_dir`."""
    say = progress or (lambda _m: None)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    run = {
        "seeds": list(cfg.seeds),
        "fresh": cfg.fresh,
        "development_seeds": sorted(DEVELOPMENT_SEEDS),
        "n_listings": cfg.n_listings,
        "days": cfg.days,
        "label_budget": cfg.label_budget,
        "rescore": cfg.rescore,
    }
    run_path = cfg.work_dir / "run.json"
    run_path.write_text(json.dumps(run, indent=2), encoding="utf-8")
    step = rescore_world if cfg.rescore else evaluate_world
    worlds = [step(seed, cfg, say) for seed in cfg.seeds]
    table = summary_table(worlds, k=cfg.top_k, label_budget=cfg.label_budget)
    paths = {"run": run_path, "table": cfg.work_dir / "audit_eval.csv"}
    if cfg.fraud_base_dir is not None:
        say("fraud data: auditing four rules with a small label budget")
        fraud = evaluate_fraud_data(
            cfg.fraud_base_dir, budget=cfg.fraud_budget, reps=cfg.fraud_reps, top_k=cfg.top_k
        )
        paths["fraud"] = cfg.work_dir / "fraud.csv"
        fraud.to_csv(paths["fraud"], index=False)
        table = pd.concat([table, fraud_summary(fraud)], ignore_index=True)
    table.to_csv(paths["table"], index=False)
    for name in ("estimates", "defects", "deltas", "labels_needed"):
        frames = [getattr(w, name) for w in worlds if len(getattr(w, name))]
        if frames:
            path = cfg.work_dir / f"{name}.csv"
            pd.concat(frames, ignore_index=True).to_csv(path, index=False)
            paths[name] = path
    values = pd.DataFrame([{"seed": w.seed, **w.values} for w in worlds])
    paths["values"] = cfg.work_dir / "values.csv"
    values.to_csv(paths["values"], index=False)
    long = per_world_values(worlds, k=cfg.top_k, label_budget=cfg.label_budget)
    per_world = per_world_table(long)
    paths["per_world"] = cfg.work_dir / "audit_eval_per_world.csv"
    per_world.to_csv(paths["per_world"], index=False)
    paths["per_world_values"] = cfg.work_dir / "per_world_values.csv"
    long.drop(columns="fmt").to_csv(paths["per_world_values"], index=False)
    return AuditEvalResult(worlds=worlds, table=table, paths=paths, per_world=per_world)


def load_worlds(work_dirs: Sequence[Path]) -> list[WorldEval]:
    """WorldEval objects back from the CSV files `run_audit_eval` wrote into each directory."""
    worlds: list[WorldEval] = []
    for d in work_dirs:
        values = pd.read_csv(d / "values.csv")

        def part(name: str, seed: int, _d: Path = d) -> pd.DataFrame:
            path = _d / f"{name}.csv"
            if not path.exists():
                return pd.DataFrame()
            df = pd.read_csv(path)
            return df[df["seed"] == seed].reset_index(drop=True) if "seed" in df else df

        for row in values.to_dict("records"):
            seed = int(row.pop("seed"))
            worlds.append(
                WorldEval(
                    seed=seed,
                    values={str(k): float(v) for k, v in row.items()},
                    estimates=part("estimates", seed),
                    defects=part("defects", seed),
                    deltas=part("deltas", seed),
                    labels_needed=part("labels_needed", seed),
                )
            )
    return worlds
