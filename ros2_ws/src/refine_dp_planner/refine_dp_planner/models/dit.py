"""DiT denoiser: a transformer over the action-chunk tokens, conditioned with adaLN-Zero.

Conditioning choice: adaLN-Zero (Peebles & Xie 2023), not cross-attention. The observation history
here is low-dimensional state (poses, gripper, object), so flattening it through an MLP into one
conditioning vector c = emb(t) + emb(o) loses nothing that 8 extra attention tokens would keep, and
it keeps the token count at Ta (12): every block is self-attention over 12 tokens plus a per-block
(shift, scale, gate) regression from c. That is the cheaper graph on the planner's CPU/TensorRT
latency budget (10 Hz, 10 DDIM steps per chunk), and the zero-initialised gates make every block
start as the identity, which DiT found trains best of the conditioning variants it compared.

The MLP uses exact (erf) GELU rather than DiT's tanh approximation: ONNX Runtime fuses it with the
bias into one BiasGelu kernel, where the tanh form stays ~8 elementwise nodes per block and step.

Interface (shared by all denoisers): forward(x_t [B, Ta, Da], t [B], obs [B, To, Do]) -> eps [B, Ta, Da].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from refine_dp_planner.models.embeddings import step_mlp


@dataclass
class DiTConfig:
    """Defaults = the shipped planner: 4 layers of width 128 with 10 DDIM steps runs in 5-6 ms per
    chunk (p99 < 10 ms) with ONNX Runtime on one core of the 2-core VM; the 4 x 256 DiT of the
    hardware reference (FACTS) takes 12-19 ms there (`refine-dp bench planner --dit-width 256`)."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    step_freq_dim: int = 128


Modulation = tuple[torch.Tensor, ...]


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale_1p: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift, with (1 + scale) precomputed; shift/scale_1p are [B, 1, W]."""
    return x * scale_1p + shift


class DiTBlock(nn.Module):
    """Pre-norm self-attention + MLP, each modulated by (shift, scale) and gated by c (adaLN-Zero).

    Written for a lean exported graph at batch 1 (where ONNX Runtime's per-node overhead, not FLOPs,
    dominates): static reshapes (tokens and widths known at construction, batch as -1), one Split
    for q/k/v, explicit attention, and modulations handed in already split and offset.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float, tokens: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"DiT width {width} must be divisible by heads {heads}")
        self.width, self.heads, self.tokens = width, heads, tokens
        self.head_dim = width // heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        # +1 on the two scale slots of (shift1, scale1, gate1, shift2, scale2, gate2): x * (1 + scale).
        self.register_buffer("scale_offset", torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]).reshape(6, 1), persistent=False)

    def modulations(self, c: torch.Tensor) -> torch.Tensor:
        """c [..., W] -> [..., 6, W]: (shift1, 1 + scale1, gate1, shift2, 1 + scale2, gate2)."""
        return self.ada(c).reshape(*c.shape[:-1], 6, self.width) + self.scale_offset

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        N, H, d = self.tokens, self.heads, self.head_dim
        q, k, v = self.qkv(x).reshape(-1, N, 3 * H, d).transpose(1, 2).split(H, dim=1)  # [B, H, N, d] each
        att = torch.softmax((q @ k.transpose(-1, -2)) * (d ** -0.5), dim=-1)
        if self.training and self.dropout > 0:
            att = torch.nn.functional.dropout(att, self.dropout)
        return self.proj((att @ v).transpose(1, 2).reshape(-1, N, self.width))

    def forward(self, x: torch.Tensor, mod: Modulation) -> torch.Tensor:
        """x [B, Ta, W]; mod = 6 tensors [B, 1, W] from `modulations` (split apart so a sampler can
        compute them for all its steps at once)."""
        shift1, scale1p, gate1, shift2, scale2p, gate2 = mod
        x = x + gate1 * self.attention(_modulate(self.norm1(x), shift1, scale1p))
        return x + gate2 * self.mlp(_modulate(self.norm2(x), shift2, scale2p))


class DiTDenoiser(nn.Module):
    def __init__(self, action_dim: int, action_horizon: int, obs_dim: int, obs_horizon: int,
                 config: DiTConfig | None = None):
        super().__init__()
        cfg = config or DiTConfig()
        self.config = cfg
        self.action_dim, self.action_horizon = action_dim, action_horizon
        self.obs_dim, self.obs_horizon = obs_dim, obs_horizon
        W = cfg.width
        self.x_embed = nn.Linear(action_dim, W)
        self.pos = nn.Parameter(torch.randn(1, action_horizon, W) * 0.02)
        self.t_embed = step_mlp(cfg.step_freq_dim, W)
        self.obs_embed = nn.Sequential(nn.Linear(obs_dim * obs_horizon, W), nn.SiLU(), nn.Linear(W, W))
        self.blocks = nn.ModuleList(DiTBlock(W, cfg.heads, cfg.mlp_ratio, cfg.dropout, action_horizon)
                                    for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(W, 2 * W))
        self.out = nn.Linear(W, action_dim)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.register_buffer("final_offset", torch.tensor([0.0, 1.0]).reshape(2, 1), persistent=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.forward_conditioned(x_t, self.condition(t, obs))

    def _embed_condition(self, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.t_embed(t) + self.obs_embed(obs.reshape(-1, self.obs_horizon * self.obs_dim))

    def _all_modulations(self, c: torch.Tensor) -> list[torch.Tensor]:
        """c [..., W] -> per block [..., 6, W] and final [..., 2, W]."""
        final = self.final_ada(c).reshape(*c.shape[:-1], 2, self.config.width) + self.final_offset
        return [block.modulations(c) for block in self.blocks] + [final]

    def condition(self, t: torch.Tensor, obs: torch.Tensor) -> list[Modulation]:
        """Everything that depends on (t, obs) only: c = emb(t) + emb(o) -> each block's adaLN modulation."""
        c = self._embed_condition(t, obs)
        return [tuple(m.unsqueeze(2).unbind(1)) for m in self._all_modulations(c)]

    def condition_steps(self, steps: torch.Tensor, obs: torch.Tensor) -> list[list[Modulation]]:
        """`condition` for all K steps of a sampler at once: steps [K], obs [B, To, Do] -> [step][block].

        The obs embedding runs once per chunk and the modulation GEMMs read their weights once
        instead of once per denoising step (same values as `condition` step by step); each block's
        K x 6 pieces come out of one Split.
        """
        K, W = steps.shape[0], self.config.width
        c = self.t_embed(steps).unsqueeze(0) + self.obs_embed(obs.reshape(-1, self.obs_horizon * self.obs_dim)).unsqueeze(1)
        per_block = []
        for m in self._all_modulations(c):  # [B, K, n, W]
            n = m.shape[-2]
            pieces = m.reshape(-1, 1, K * n * W).split(W, dim=-1)  # K*n tensors [B, 1, W], step-major
            per_block.append([tuple(pieces[k * n:(k + 1) * n]) for k in range(K)])
        return [[blk[k] for blk in per_block] for k in range(K)]

    def forward_conditioned(self, x_t: torch.Tensor, cond: list[Modulation]) -> torch.Tensor:
        h = self.x_embed(x_t) + self.pos
        for block, mod in zip(self.blocks, cond[:-1]):
            h = block(h, mod)
        shift, scale_1p = cond[-1]
        return self.out(_modulate(self.final_norm(h), shift, scale_1p))
