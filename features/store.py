"""Writing feature builds: frames, snapshot and a manifest, all or nothing.

Layout of an output directory:
- `<entity>.parquet`: the scoring frame of each target entity (`item_id`, then features);
- `snapshot/`: the aggregate tables online lookups read (`snapshot.json` describes them);
- `manifest.json`: cutoff, feature-set versions, row counts, columns and the data digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.build import INPUT_TABLES, FeatureBuild
from features.byo import ByoDataset, SpecError, feature_set, parse_spec
from features.catalog import feature_set_versions, frame_features
from features.loader import table_path
from features.tables import TABLES
from features.vocabulary import Entity

MANIFEST = "manifest.json"
SNAPSHOT_DIR = "snapshot"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_digest(data_dir: Path, names: Iterable[str] = INPUT_TABLES) -> dict[str, object]:
    """sha256 of each input table file and one digest over all of them (in name order)."""
    tables = {name: file_sha256(table_path(data_dir, name)) for name in sorted(names)}
    combined = hashlib.sha256("".join(f"{k}={v}\n" for k, v in tables.items()).encode())
    return {"sha256": combined.hexdigest(), "tables": tables}


def default_as_of(tables: Mapping[str, pd.DataFrame]) -> datetime:
    """Midnight after the latest timestamp in the input tables: the end of the data."""
    latest = np.datetime64("NaT")
    for name in INPUT_TABLES:
        column = TABLES[name].time_column
        if name not in tables or column is None or tables[name].empty:
            continue
        value = tables[name][column].max()
        if pd.notna(value) and (np.isnat(latest) or np.datetime64(value) > latest):
            latest = np.datetime64(value, "us")
    if np.isnat(latest):
        raise ValueError("the input tables hold no timestamps; pass --as-of")
    midnight = latest.astype("datetime64[D]") + np.timedelta64(1, "D")
    return pd.Timestamp(midnight).to_pydatetime()  # type: ignore[no-any-return]


def write_build(
    build: FeatureBuild,
    out_dir: Path,
    *,
    digest: Mapping[str, object] | None = None,
    texts: Mapping[Entity, pd.DataFrame] | None = None,
) -> list[Path]:
    """Write frames, snapshot and manifest into `out_dir`; returns the paths written.

    `texts` (entity -> raw text fields indexed by item id, `features.text_source`) are
    appended to the written frames after the features, so `govrisk score` can run a model's
    text models on them; the manifest lists them as `text_fields`.

    Everything is written to a temporary folder next to `out_dir` first and moved into place
    at the end, so a failure leaves `out_dir` as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        frames = {}
        for entity, frame in build.frames.items():
            path = staging / f"{entity.value}.parquet"
            text = (texts or {}).get(entity)
            fields = [] if text is None else list(text.columns)
            if text is not None:
                raw = text.reindex(frame["item_id"].astype(str).to_numpy())
                columns = {c: raw[c].to_numpy(dtype=object) for c in fields}
                frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
            frame.to_parquet(path, index=False)
            frames[entity.value] = {
                "path": path.name,
                "rows": len(frame),
                "columns": list(frame.columns),
                "features": {f.name: f.kind for f in frame_features(entity)},
                "text_fields": fields,
            }
        build.snapshot.write(staging / SNAPSHOT_DIR)
        manifest = {
            "as_of": str(build.as_of),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "feature_sets": feature_set_versions(),
            "frames": frames,
            "snapshot": {
                "path": SNAPSHOT_DIR,
                "tables": {
                    name: pq.read_metadata(staging / SNAPSHOT_DIR / f"{name}.parquet").num_rows
                    for name in build.snapshot.table_names
                },
            },
            "data": dict(digest or {}),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        if (out_dir / SNAPSHOT_DIR).exists():
            shutil.rmtree(out_dir / SNAPSHOT_DIR)
        written = []
        for entry in sorted(staging.iterdir()):
            target = out_dir / entry.name
            os.replace(entry, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_manifest(out_dir: Path) -> dict[str, object]:
    """The manifest of a feature build output directory."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {out_dir}; run `govrisk features build`")
    manifest: dict[str, object] = json.loads(path.read_text())
    return manifest


def write_dataset(dataset: ByoDataset, out_dir: Path) -> list[Path]:
    """Write a bring-your-own dataset as `<entity>.parquet` plus `manifest.json`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame_path = out_dir / f"{dataset.spec.entity}.parquet"
    dataset.frame.to_parquet(frame_path, index=False)
    fs = dataset.feature_set
    manifest = {
        "spec": dataset.spec.name,
        "dataset_spec": dataset.spec.model_dump(mode="json"),
        "entity": dataset.spec.entity,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "feature_sets": {fs.name: fs.version},
        "frames": {
            dataset.spec.entity: {
                "path": frame_path.name,
                "rows": len(dataset.frame),
                "columns": list(dataset.frame.columns),
                "features": {f.name: f.kind for f in fs.features},
                "label": "label" if "label" in dataset.frame.columns else None,
                "time": "event_time",
            }
        },
        "data": {
            "sha256": hashlib.sha256(
                "".join(f"{k}={v}\n" for k, v in sorted(dataset.digests.items())).encode()
            ).hexdigest(),
            "tables": dict(sorted(dataset.digests.items())),
        },
    }
    manifest_path = out_dir / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return [frame_path, manifest_path]


def read_dataset(out_dir: Path) -> ByoDataset:
    """A bring-your-own feature build written by `write_dataset`: its spec (from the
    manifest), declared features and frame."""
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST).exists():
        raise SpecError(
            [
                f"{out_dir}: no {MANIFEST}; build it with `govrisk features byo --spec SPEC "
                f"--out {out_dir}`"
            ]
        )
    manifest = read_manifest(out_dir)
    raw = manifest.get("dataset_spec")
    if not isinstance(raw, dict):
        raise SpecError(
            [
                f"{out_dir}: not a bring-your-own feature build (no dataset spec in its "
                f"{MANIFEST}); write it with `govrisk features byo --spec SPEC --out {out_dir}`"
            ]
        )
    spec = parse_spec(raw, source=str(out_dir / MANIFEST))
    frame = pd.read_parquet(out_dir / f"{spec.entity}.parquet")
    data = manifest.get("data")
    tables = data.get("tables", {}) if isinstance(data, dict) else {}
    return ByoDataset(
        spec=spec, feature_set=feature_set(spec), frame=frame, inputs={}, digests=dict(tables)
    )
