"""Reports a node leaves for `refine-dp bringup`: $REFINE_DP_RUN_DIR/reports/<node>.json."""
from __future__ import annotations

import json
import os
from pathlib import Path


def run_dir() -> Path | None:
    value = os.environ.get("REFINE_DP_RUN_DIR")
    return Path(value) if value else None


def write_node_report(node_name: str, report: dict) -> Path | None:
    """Write atomically (a kill leaves the old file or the new one); no-op outside a bringup run."""
    base = run_dir()
    if base is None:
        return None
    path = base / "reports" / f"{node_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=float))
    os.replace(tmp, path)
    return path
