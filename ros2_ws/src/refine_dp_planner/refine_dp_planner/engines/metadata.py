"""metadata.json of an exported planner engine: what the graph expects and how it was made.

It carries the planner contract (contract.CONTRACT_FIELDS: obs/action layouts and sizes, horizons,
act_steps, rate_hz) that PlannerCore and the planner node build themselves from, the planner's kind
and which graphs exist (export.build_metadata writes it).

The engine loader compares it with the ONNX graph it sits beside and with what the caller (the
planner node) expects, and refuses any mismatch with a message naming the fields that differ.
"""
from __future__ import annotations

import json
from pathlib import Path

from refine_dp_planner.utils import atomic_write_json
from t1_description.contract import ContractMismatchError
from t1_description.contract import check_metadata as check_contract

METADATA_FORMAT = "refine_dp_planner.engine/2"   # /2: the planner contract (kind, act_steps, graphs)
METADATA_FILE = "metadata.json"


class MetadataMismatchError(ContractMismatchError):
    """An engine's metadata differs from what its graph or its caller expects."""


def write_metadata(metadata: dict, out_dir: str | Path) -> Path:
    """Write metadata.json atomically (temp file + rename)."""
    return atomic_write_json(Path(out_dir) / METADATA_FILE, metadata)


def load_metadata(path: str | Path) -> tuple[dict, Path]:
    """Read metadata.json from an export folder (or the file itself); returns (metadata, folder)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = folder / METADATA_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no {METADATA_FILE} in {folder}: export the planner with "
                                f"refine_dp_planner.export.export_policy (or `refine-dp export`) first")
    metadata = json.loads(file.read_text())
    if metadata.get("format") != METADATA_FORMAT:
        raise MetadataMismatchError(f"{file}: format {metadata.get('format')!r} is not {METADATA_FORMAT!r} (older "
                                    f"exports lack act_steps and the other contract fields); re-export the planner "
                                    f"with `refine-dp export planner --checkpoint policy.pt --out {folder}`")
    return metadata, folder


def check_metadata(metadata: dict, expected: dict | None, source: str = "engine") -> None:
    """Raise MetadataMismatchError naming every field of `expected` that the metadata contradicts, with both
    values (t1_description.contract.check_metadata, the one check the controller's policies use too).

    `expected` holds only the fields the caller cares about, e.g. {"obs_dim": 42, "obs_horizon": 8,
    "rate_hz": 10.0}; nested dicts and lists compare recursively, numbers within a relative 1e-6.
    """
    check_contract(metadata, expected, source, holder="engine", error=MetadataMismatchError)
