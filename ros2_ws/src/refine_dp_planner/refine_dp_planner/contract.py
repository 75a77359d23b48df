"""The planner contract: what decides how a trained planner must be run, in one place.

A policy config (DiffusionPolicyConfig, MLPPolicyConfig) carries CONTRACT_FIELDS; pretraining fills
them from the dataset (layouts, control rate) and its options (horizons, act_steps); checkpoints keep
the config; `refine-dp export planner` copies them into the engine's metadata.json; PlannerCore and
the planner node read them from the engine and refuse a parameter that contradicts them.
No imports from the rest of the package, so every config module can use it.
"""
from __future__ import annotations

# What decides how a trained planner must be run; written into checkpoints and engine metadata.
CONTRACT_FIELDS = ("obs_dim", "action_dim", "obs_horizon", "action_horizon", "act_steps", "rate_hz",
                   "obs_fields", "action_fields")


def check_act_steps(act_steps: int | None, action_horizon: int) -> int:
    """act_steps None -> the whole chunk; anything outside [1, action_horizon] is refused."""
    n = action_horizon if act_steps is None else int(act_steps)
    if not 1 <= n <= action_horizon:
        raise ValueError(f"act_steps {n} must be in [1, action_horizon={action_horizon}]")
    return n


def with_act_steps(config: dict, extra: dict | None = None) -> dict:
    """A checkpoint's config dict with act_steps, for checkpoints written before it joined the config.

    The one place of that fallback: such checkpoints kept it in their untyped `extra` (pretraining
    wrote extra["act_steps"]) or nowhere (then the whole chunk was executed).
    """
    if config.get("act_steps") is not None:
        return dict(config)
    return dict(config, act_steps=int((extra or {}).get("act_steps", config["action_horizon"])))


def contract_of(config) -> dict:
    """The CONTRACT_FIELDS of a policy config (DiffusionPolicyConfig or MLPPolicyConfig), JSON-ready."""
    out = {k: getattr(config, k) for k in CONTRACT_FIELDS}
    for key in ("obs_fields", "action_fields"):
        if out[key] is not None:
            out[key] = [[str(n), int(s)] for n, s in out[key]]
    return out
