"""The low-level policies' contract: what a legs/arms policy file decides about how it must be run.

Besides the observation and action layout and the joints (policy_runtime checks those against
this code and the joint table), an exported policy's metadata carries the settings it was trained
under that the robot side must reproduce:

  control_hz          both parts: the rate the policy was stepped at (training physics_dt x decimation)
  footstep_planner    legs: FootstepPlannerConfig the training env planned its footsteps with
  reference_motion    legs: ReferenceMotionConfig of the reference the residual legs add to
                      (ik_iterations included: the shipped legs trained with 0 Newton steps)

Training writes them from its EnvConfig (lowlevel/train.py export, `refine-dp ship controller`);
LowLevelController, the controller node and the footstep planner node build themselves from them,
and a parameter that contradicts one is refused with both values named (`check_overrides`).
"""
from __future__ import annotations

from dataclasses import asdict, fields

from t1_description.contract import ContractMismatchError, check_metadata

from .footstep_planner import FootstepPlannerConfig
from .reference_motion import ReferenceMotionConfig

CONTRACT_FIELDS = {"legs": ("control_hz", "footstep_planner", "reference_motion"), "arms": ("control_hz",)}
FIX = ("fill the shipped files from their recorded training config with `refine-dp ship controller "
       "--fill-contract`, or re-export the run with `refine-dp train-lowlevel --part PART --out RUN --export-only`")


class PolicyMetadataError(ContractMismatchError):
    """The exported policy's metadata does not match this robot, this code or a node parameter."""


def contract_of(part: str, control_hz: float, footstep_planner: FootstepPlannerConfig | None = None,
                reference_motion: ReferenceMotionConfig | None = None) -> dict:
    """The contract fields of a `part` policy trained at `control_hz` with these configs (JSON-ready)."""
    out = {"control_hz": float(control_hz)}
    if part == "legs":
        if footstep_planner is None or reference_motion is None:
            raise ValueError("a legs policy's contract needs the footstep_planner and reference_motion configs "
                             "it was trained with")
        out |= {"footstep_planner": asdict(footstep_planner), "reference_motion": asdict(reference_motion)}
    return out


def require_contract(meta: dict, source: str) -> None:
    """Raise PolicyMetadataError naming the contract fields `meta` lacks, and how to add them."""
    part = meta.get("part")
    missing = [k for k in CONTRACT_FIELDS.get(part, ()) if k not in meta]
    if missing:
        raise PolicyMetadataError(f"{source}: the {part} policy's metadata has no {', '.join(missing)} (exported "
                                  f"before policies carried their contract); {FIX.replace('PART', str(part))}")


# Fields added to a contract config after policies were shipped with it: a file without them was trained
# with their default, which reproduces the behaviour from before the field existed (so the file runs as it did).
ADDED_LATER = {
    "FootstepPlannerConfig": {"catch_up", "catch_up_yaw", "path_reset_distance", "max_step_height"},
}


def without_defaulted_later_fields(wanted: dict, meta: dict) -> dict:
    """`wanted` (contract fields) less the ADDED_LATER fields that `meta` lacks and `wanted` sets to their
    default: a file from before such a field agrees with a config that leaves it at the default."""
    out = dict(wanted)
    for key, cls in (("footstep_planner", FootstepPlannerConfig), ("reference_motion", ReferenceMotionConfig)):
        if isinstance(out.get(key), dict) and isinstance(meta.get(key), dict):
            default = asdict(cls())
            out[key] = {k: v for k, v in out[key].items()
                        if not (k in ADDED_LATER.get(cls.__name__, ()) and k not in meta[key] and v == default[k])}
    return out


def _typed(cls, meta: dict, key: str, source: str):
    values = meta.get(key)
    if not isinstance(values, dict):
        raise PolicyMetadataError(f"{source}: metadata {key} is {values!r}, expected the {cls.__name__} fields; {FIX}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    missing = sorted(names - set(values) - ADDED_LATER.get(cls.__name__, set()))
    if unknown or missing:
        raise PolicyMetadataError(f"{source}: metadata {key} does not match this code's {cls.__name__} (unknown "
                                  f"fields {unknown}, missing fields {missing}): re-export the policy with this code")
    return cls(**values)


def footstep_config(meta: dict, source: str = "legs policy") -> FootstepPlannerConfig:
    """The FootstepPlannerConfig a legs policy was trained with (validated)."""
    require_contract(meta, source)
    config = _typed(FootstepPlannerConfig, meta, "footstep_planner", source)
    config.validate()
    return config


def reference_config(meta: dict, source: str = "legs policy") -> ReferenceMotionConfig:
    """The ReferenceMotionConfig of the reference a legs policy was trained on."""
    require_contract(meta, source)
    return _typed(ReferenceMotionConfig, meta, "reference_motion", source)


def check_overrides(meta: dict, overrides: dict, source: str = "policy", what: str = "parameter") -> None:
    """Refuse `overrides` (e.g. {"control_hz": 100.0, "footstep_planner": {"step_period": 0.6}}; None values
    are left out: not set) that contradict the policy's metadata, naming each field and both values."""
    wanted = _set_only(overrides)
    check_metadata(meta, wanted, source, holder="policy", error=PolicyMetadataError,
                   fix=f"the policy's contract decides these: leave the {what} unset, or retrain the policy with the "
                       "value you want")


def _set_only(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = _set_only(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out


def footstep_planner_config(meta: dict | None, overrides: dict, source: str = "legs policy") -> FootstepPlannerConfig:
    """The footstep planner config to run: the legs policy's, which `overrides` (the explicitly set fields; None =
    not set) may not contradict; without a legs policy (meta None), the defaults with the overrides applied."""
    if meta is None:
        config = FootstepPlannerConfig(**{k: v for k, v in overrides.items() if v is not None})
        config.validate()
        return config
    check_overrides(meta, {"footstep_planner": overrides}, source, "footstep planner parameters")
    return footstep_config(meta, source)
