"""The T1 joint table: the single source of joint order, limits, default pose and PD gains.

Every map between policy order, model (MJCF/URDF) order and vendor-SDK order goes through
`JointTable`, so the simulator, the training envs and the hardware node cannot disagree.
Model order equals SDK order (JointIndexWith7DofArm) for the T1, so the SDK maps are
permutations that happen to be the identity; code should still call them, because they are
where a future reordering would live.

    from t1_description.joint_table import load_joint_table
    jt = load_joint_table()
    legs = jt.indices("left_leg", "right_leg")
    q_sdk = jt.model_to_sdk(q_model)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

NUM_JOINTS = 29
GROUPS = ("head", "left_arm", "right_arm", "waist", "left_leg", "right_leg")
LEG_GROUPS = ("left_leg", "right_leg")
ARM_GROUPS = ("left_arm", "right_arm")
DEFAULT_TABLE_PATH = Path(__file__).with_name("joint_table.yaml")

_FLOAT_FIELDS = ("lower", "upper", "effort", "velocity", "default", "kp", "kd", "armature")
_REQUIRED_FIELDS = ("name", "sdk_index", "group") + _FLOAT_FIELDS


# The T1 variants by motor count, as the vendor SDK numbers them. refine-dp supports the one its
# joint table describes (29); the others are refused by name (sim_t1, the hardware interface).
T1_VARIANTS = {
    29: "the 29-DoF T1 (7-joint arms; SDK JointIndexWith7DofArm, kJointCnt7DofArm = 29)",
    23: "the 23-DoF T1 (4-joint arms; SDK JointIndex, kJointCnt = 23, the SDK's default count)",
}


def describe_variant(num_motors: int) -> str:
    """Name the T1 variant that has `num_motors` motors (or say that none has)."""
    return T1_VARIANTS.get(int(num_motors), f"no T1 variant ({int(num_motors)} motors)")


def variant_mismatch_message(num_motors: int, table: "JointTable", what: str) -> str:
    """The error for a message of another variant than the joint table's, naming both and the fix."""
    return (f"{what} has {num_motors} motors: that is {describe_variant(num_motors)}, but refine-dp's "
            f"joint table {table.source} describes {describe_variant(len(table.names))}. Only the "
            f"{len(table.names)}-motor variant is supported; run a controller/robot of that variant.")


class JointTableError(ValueError):
    """The joint table file is malformed; the message names the file and the bad entry."""


@dataclass(frozen=True, eq=False)
class JointTable:
    """Per-joint data in model order (arrays are read-only float64 / int64 of length NUM_JOINTS)."""

    names: tuple[str, ...]
    groups: tuple[str, ...]
    sdk_index: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    effort_limit: np.ndarray
    velocity_limit: np.ndarray
    default_q: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    armature: np.ndarray
    source: Path = DEFAULT_TABLE_PATH

    LEG_GROUPS = LEG_GROUPS
    ARM_GROUPS = ARM_GROUPS

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Model index of a joint name; KeyError lists the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"unknown T1 joint {name!r}; valid names (from {self.source}): {', '.join(self.names)}"
            ) from None

    def indices(self, *groups_or_names: str) -> np.ndarray:
        """Model indices of the given groups and/or joint names, in model order, without repeats."""
        if not groups_or_names:
            raise ValueError(f"indices() needs at least one group {GROUPS} or joint name")
        selected: set[int] = set()
        for key in groups_or_names:
            if key in GROUPS:
                selected.update(i for i, g in enumerate(self.groups) if g == key)
            else:
                try:
                    selected.add(self.index(key))
                except KeyError:
                    raise KeyError(
                        f"{key!r} is neither a joint group {GROUPS} nor a joint name of {self.source}"
                    ) from None
        return np.array(sorted(selected), dtype=np.int64)

    def model_to_sdk(self, x: Any) -> np.ndarray:
        """Reorder an array whose last axis is in model order into SDK order."""
        x = self._check_last_axis(x, "model_to_sdk")
        out = np.empty_like(x)
        out[..., self.sdk_index] = x
        return out

    def sdk_to_model(self, x: Any) -> np.ndarray:
        """Reorder an array whose last axis is in SDK order into model order."""
        x = self._check_last_axis(x, "sdk_to_model")
        return x[..., self.sdk_index]

    def clip_position(self, q: Any) -> np.ndarray:
        """Clip joint positions (last axis in model order) to the table's limits."""
        q = self._check_last_axis(q, "clip_position")
        return np.clip(q, self.lower, self.upper)

    def _check_last_axis(self, x: Any, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[-1] != len(self.names):
            raise ValueError(
                f"{what}: expected the last axis to have {len(self.names)} joints, got shape {x.shape}"
            )
        return x


def _parse_entry(entry: Any, row: int, path: Path) -> dict[str, Any]:
    where = f"{path}: joints[{row}]"
    if not isinstance(entry, dict):
        raise JointTableError(f"{where} must be a mapping with keys {_REQUIRED_FIELDS}, got {entry!r}")
    if "name" in entry:
        where += f" ({entry['name']})"
    missing = [k for k in _REQUIRED_FIELDS if k not in entry]
    unknown = sorted(set(entry) - set(_REQUIRED_FIELDS))
    if missing or unknown:
        raise JointTableError(f"{where}: missing keys {missing}, unknown keys {unknown}")
    if not isinstance(entry["name"], str) or not entry["name"]:
        raise JointTableError(f"{where}: name must be a non-empty string")
    if entry["group"] not in GROUPS:
        raise JointTableError(f"{where}: group {entry['group']!r} is not one of {GROUPS}")
    if isinstance(entry["sdk_index"], bool) or not isinstance(entry["sdk_index"], int):
        raise JointTableError(f"{where}: sdk_index must be an integer, got {entry['sdk_index']!r}")
    out = dict(entry)
    for key in _FLOAT_FIELDS:
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise JointTableError(f"{where}: {key} must be a finite number, got {value!r}")
        out[key] = float(value)
    if not out["lower"] < out["upper"]:
        raise JointTableError(f"{where}: lower {out['lower']} must be below upper {out['upper']}")
    if not out["lower"] <= out["default"] <= out["upper"]:
        raise JointTableError(
            f"{where}: default {out['default']} is outside [{out['lower']}, {out['upper']}]"
        )
    for key in ("effort", "velocity", "kp"):
        if out[key] <= 0:
            raise JointTableError(f"{where}: {key} must be positive, got {out[key]}")
    for key in ("kd", "armature"):
        if out[key] < 0:
            raise JointTableError(f"{where}: {key} must be >= 0, got {out[key]}")
    return out


def _readonly(values: list, dtype: type) -> np.ndarray:
    arr = np.array(values, dtype=dtype)
    arr.setflags(write=False)
    return arr


def parse_joint_table(path: Path | str) -> JointTable:
    """Read and validate a joint table file (uncached; use load_joint_table() for the project's)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"joint table {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise JointTableError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("joints"), list):
        raise JointTableError(f"{path}: expected a mapping with a 'joints' list")
    rows = [_parse_entry(e, i, path) for i, e in enumerate(doc["joints"])]
    if len(rows) != NUM_JOINTS:
        raise JointTableError(f"{path}: expected {NUM_JOINTS} joints, found {len(rows)}")
    names = [r["name"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise JointTableError(f"{path}: duplicate joint names {dupes}")
    sdk = [r["sdk_index"] for r in rows]
    if sorted(sdk) != list(range(NUM_JOINTS)):
        bad = [f"{r['name']}={r['sdk_index']}" for r in rows if sdk.count(r["sdk_index"]) > 1
               or not 0 <= r["sdk_index"] < NUM_JOINTS]
        raise JointTableError(
            f"{path}: sdk_index must be a permutation of 0..{NUM_JOINTS - 1}; bad entries: {bad}"
        )

    def col(key: str) -> np.ndarray:
        return _readonly([r[key] for r in rows], np.float64)

    return JointTable(
        names=tuple(names),
        groups=tuple(r["group"] for r in rows),
        sdk_index=_readonly(sdk, np.int64),
        lower=col("lower"),
        upper=col("upper"),
        effort_limit=col("effort"),
        velocity_limit=col("velocity"),
        default_q=col("default"),
        kp=col("kp"),
        kd=col("kd"),
        armature=col("armature"),
        source=path,
    )


@functools.lru_cache(maxsize=None)
def load_joint_table(path: Path | str | None = None) -> JointTable:
    """The project's joint table (cached). Pass a path only to load a different table file."""
    return parse_joint_table(DEFAULT_TABLE_PATH if path is None else path)
