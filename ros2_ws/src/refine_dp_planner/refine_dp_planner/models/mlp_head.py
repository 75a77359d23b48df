"""The small MLPs of the fine-tuning methods (residual policy, DSRL noise actor, PPO-Gaussian), one definition.

`mlp` builds Linear -> activation -> ... -> Linear as an nn.Sequential; refine_dp_training's
actor-critics and SAC build theirs with it, so a trained head's state_dict loads into `MLPHead.net`
as is. `MLPHead` puts the running mean/std input normalizer of rl.normalizer.RunningNormalizer in
front, as frozen buffers: x_n = clip((x - mean) / (sqrt(var) + eps), -clip, clip).
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
    layers, d = [], in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), ACTIVATIONS[activation]()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class MLPHead(nn.Module):
    """`mlp` behind an optional frozen running-statistics normalizer (input_norm={"eps", "clip"})."""

    def __init__(self, in_dim: int, hidden, out_dim: int, activation: str = "elu", input_norm: dict | None = None):
        super().__init__()
        self.spec = {"in_dim": int(in_dim), "hidden": [int(h) for h in hidden], "out_dim": int(out_dim),
                     "activation": activation, "input_norm": dict(input_norm) if input_norm else None}
        self.net = mlp(in_dim, tuple(hidden), out_dim, activation)
        if input_norm:
            self.eps, self.clip = float(input_norm["eps"]), float(input_norm["clip"])
            self.register_buffer("mean", torch.zeros(in_dim))
            self.register_buffer("var", torch.ones(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec["input_norm"]:
            x = ((x - self.mean) / (self.var.sqrt() + self.eps)).clamp(-self.clip, self.clip)
        return self.net(x)
