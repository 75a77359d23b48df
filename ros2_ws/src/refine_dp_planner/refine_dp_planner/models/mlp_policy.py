"""The paper's deterministic MLP baseline: obs history -> action chunk, trained by MSE.

It cannot represent multi-modal demonstrations (it regresses to their mean), which is the point of
the ablation. Normalizers live inside, as in DiffusionPolicy; `sample(obs, noise=None)` ignores the
noise so it can stand in wherever a planner is called. MLP-FT's exploration noise is the fine-tuner's.
Its config carries the same planner contract as DiffusionPolicyConfig (config.CONTRACT_FIELDS), and
`save`/`load` write and read the checkpoint `refine-dp pretrain --model mlp` leaves (policy.pt), so
`refine-dp export planner` takes it like any other planner.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refine_dp_planner.contract import check_act_steps, with_act_steps
from refine_dp_planner.ema import EMA
from refine_dp_planner.normalizer import Normalizer
from refine_dp_planner.utils import atomic_torch_save, git_revision

# The format string predates the class's move here from refine_dp_training; kept so old files load.
MLP_CHECKPOINT_FORMAT = "refine_dp_training.mlp_policy/1"


@dataclass
class MLPPolicyConfig:
    obs_dim: int
    action_dim: int
    obs_horizon: int = 8
    action_horizon: int = 12
    rate_hz: float = 10.0
    hidden_dims: list[int] = field(default_factory=lambda: [512, 512, 512])
    dropout: float = 0.0
    normalizer: str = "min_max"
    act_steps: int | None = None         # None: action_horizon (as DiffusionPolicyConfig)
    obs_fields: list[tuple[str, int]] | None = None
    action_fields: list[tuple[str, int]] | None = None

    def __post_init__(self):
        self.act_steps = check_act_steps(self.act_steps, self.action_horizon)
        for key in ("obs_fields", "action_fields"):
            if getattr(self, key) is not None:
                setattr(self, key, [(str(n), int(s)) for n, s in getattr(self, key)])


class MLPPolicy(nn.Module):
    def __init__(self, config: MLPPolicyConfig):
        super().__init__()
        self.config = cfg = config
        self.obs_normalizer = Normalizer(cfg.obs_dim, cfg.normalizer)
        self.action_normalizer = Normalizer(cfg.action_dim, cfg.normalizer)
        dims = [cfg.obs_dim * cfg.obs_horizon, *cfg.hidden_dims]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Mish(), nn.Dropout(cfg.dropout)]
        layers.append(nn.Linear(dims[-1], cfg.action_dim * cfg.action_horizon))
        self.net = nn.Sequential(*layers)

    def fit_normalizers(self, obs, actions) -> None:
        self.obs_normalizer.fit(obs)
        self.action_normalizer.fit(actions)

    def forward(self, obs_normalized: torch.Tensor) -> torch.Tensor:
        """Normalized obs [B, To, Do] -> normalized action chunk [B, Ta, Da]."""
        B = obs_normalized.shape[0]
        return self.net(obs_normalized.flatten(1)).reshape(B, self.config.action_horizon, self.config.action_dim)

    def compute_loss(self, batch: dict) -> torch.Tensor:
        """MSE in the normalized action space; batch {'obs': [B,To,Do], 'action': [B,Ta,Da]} raw units."""
        pred = self(self.obs_normalizer.normalize(batch["obs"]))
        return F.mse_loss(pred, self.action_normalizer.normalize(batch["action"]))

    def chunk(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw obs history [B, To, Do] -> raw action chunk [B, Ta, Da] (with grad; export traces this)."""
        return self.action_normalizer.unnormalize(self(self.obs_normalizer.normalize(obs)).clamp(-1.0, 1.0))

    @torch.no_grad()
    def sample(self, obs, noise=None) -> torch.Tensor:
        """Raw obs history -> raw action chunk (deterministic; `noise` is accepted and ignored)."""
        return self.chunk(torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs, dtype=torch.float32))

    # ---- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path, ema: EMA | None = None, extra: dict | None = None) -> None:
        """Write {format, config, state_dict, ema, git_revision, extra} atomically (DiffusionPolicy's layout)."""
        atomic_torch_save({"format": MLP_CHECKPOINT_FORMAT, "config": dataclasses.asdict(self.config),
                           "state_dict": self.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                           "git_revision": git_revision(), "extra": extra or {}}, path)

    @classmethod
    def load(cls, path: str | Path, *, use_ema: bool = False) -> tuple["MLPPolicy", dict]:
        """Rebuild from a checkpoint written by `save`; returns (policy, checkpoint dict)."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("format") != MLP_CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a {MLP_CHECKPOINT_FORMAT} checkpoint")
        ckpt["config"] = with_act_steps(ckpt["config"], ckpt.get("extra"))
        policy = cls(MLPPolicyConfig(**ckpt["config"]))
        if use_ema and ckpt.get("ema") is None:
            raise ValueError(f"checkpoint {path} has no EMA weights: load with use_ema=False")
        policy.load_state_dict(ckpt["ema"]["model"] if use_ema else ckpt["state_dict"])
        return policy, ckpt
