"""policy.pt: the file `refine-dp pretrain` leaves for fine-tuning, evaluation and export, and `Pretrained`.

- Diffusion policies: exactly `DiffusionPolicy.save`'s format (refine_dp_planner.diffusion_policy/1),
  the deterministic MLP baseline `MLPPolicy.save`'s (refine_dp_training.mlp_policy/1): config (with
  the planner contract: layouts, horizons, act_steps, rate_hz), raw and EMA weights, normalizer
  statistics, git revision, so `refine-dp export planner` reads it as is. `extra` carries provenance:
  {"kind", "env", "dataset", "step", "pretrain_config"}.
- `Pretrained` lives here (not in finetune/common.py, which imports this module), so pretraining
  and fine-tuning do not import each other at load time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from refine_dp_planner.ema import EMA
from refine_dp_planner.models.mlp_policy import MLP_CHECKPOINT_FORMAT as MLP_FORMAT
from refine_dp_planner.models.mlp_policy import MLPPolicy
from refine_dp_planner.policy import CHECKPOINT_FORMAT as DP_FORMAT
from refine_dp_planner.policy import DiffusionPolicy

POLICY_FILE = "policy.pt"


@dataclass
class Pretrained:
    """A pretrained planner: the policy (raw units in and out, normalizers inside) and its horizons."""

    kind: str                 # "diffusion" (DiffusionPolicy) or "mlp" (MLPPolicy)
    policy: torch.nn.Module
    obs_horizon: int
    action_horizon: int
    act_steps: int            # executed actions per chunk it was pretrained/evaluated with (its config's)
    env: str | None           # env it was pretrained for (None: unknown)
    path: Path
    checkpoint: dict


def save_policy_file(path: str | Path, policy: torch.nn.Module, ema: EMA | None, extra: dict) -> None:
    """Write policy.pt atomically for a DiffusionPolicy or an MLPPolicy.

    act_steps belongs to the policy's config (the planner contract); an `extra["act_steps"]` (the
    old place) is accepted only when it agrees, and not stored twice.
    """
    extra = dict(extra)
    if "act_steps" in extra:
        if int(extra["act_steps"]) != policy.config.act_steps:
            raise ValueError(f"extra act_steps {extra['act_steps']} contradicts the policy config's act_steps "
                             f"{policy.config.act_steps}: set it in the config (DiffusionPolicyConfig(act_steps=...))")
        del extra["act_steps"]
    kind = "diffusion" if isinstance(policy, DiffusionPolicy) else "mlp"
    policy.save(path, ema=ema, extra={"kind": kind} | extra)


def load_policy_file(path: str | Path, use_ema: bool = True) -> Pretrained:
    """-> Pretrained (policy in eval mode, EMA weights when present and use_ema)."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"pretrained policy {path} not found: run `refine-dp pretrain --out DIR` first "
                                f"and pass DIR/{POLICY_FILE}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    use = use_ema and ckpt.get("ema") is not None
    if fmt == DP_FORMAT:
        policy, ckpt = DiffusionPolicy.load(path, use_ema=use)
        kind = "diffusion"
    elif fmt == MLP_FORMAT:
        policy, ckpt = MLPPolicy.load(path, use_ema=use)
        kind = "mlp"
    else:
        raise ValueError(f"{path} is neither a diffusion policy ({DP_FORMAT}) nor an MLP policy ({MLP_FORMAT}) "
                         f"checkpoint (format={fmt!r}): pass the policy.pt that `refine-dp pretrain` wrote")
    cfg = policy.config
    return Pretrained(kind=kind, policy=policy.eval(), obs_horizon=cfg.obs_horizon, action_horizon=cfg.action_horizon,
                      act_steps=cfg.act_steps, env=(ckpt.get("extra") or {}).get("env"), path=path, checkpoint=ckpt)
