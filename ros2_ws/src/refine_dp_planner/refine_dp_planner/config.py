"""Typed configuration of the diffusion planner, saved in every checkpoint and exported engine."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from refine_dp_planner.contract import check_act_steps
from refine_dp_planner.models.dit import DiTConfig
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig

BACKBONES = ("dit", "mlp")


@dataclass
class DiffusionPolicyConfig:
    """Diffusion planner: p(action chunk | obs history), epsilon prediction, cosine schedule.

    Defaults follow the paper: observation horizon 8, action chunk 12, 0.1 s between steps (10 Hz),
    100-step DDPM training and 10-step DDIM (eta 0) at deployment.
    obs_fields/action_fields optionally name the layout of the flat vectors, e.g.
    [("base_vel", 3), ("left_hand_pos", 3), ...]; their sizes must sum to obs_dim/action_dim.

    The planner contract (CONTRACT_FIELDS) is part of the config, so it travels config -> checkpoint ->
    engine metadata -> node with nobody retyping it: the layouts, the horizons, `act_steps` (actions
    executed per chunk before the next one is sampled: what rollouts, DPPO's log-probabilities and the
    node's replanning all use; None means the whole chunk) and `rate_hz` (steps per second of the
    actions, the dataset's control rate).
    """

    obs_dim: int
    action_dim: int
    obs_horizon: int = 8
    action_horizon: int = 12
    act_steps: int | None = None         # None: action_horizon (set in __post_init__)
    rate_hz: float = 10.0
    num_train_timesteps: int = 100
    ddim_steps: int = 10
    eta: float = 0.0
    timestep_spacing: str = "trailing"
    clip_x0: float | None = 1.0
    backbone: str = "dit"
    dit: DiTConfig = field(default_factory=DiTConfig)
    mlp: MLPDenoiserConfig = field(default_factory=MLPDenoiserConfig)
    normalizer: str = "min_max"
    obs_fields: list[tuple[str, int]] | None = None
    action_fields: list[tuple[str, int]] | None = None

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}: use one of {BACKBONES}")
        if not 1 <= self.ddim_steps <= self.num_train_timesteps:
            raise ValueError(f"ddim_steps {self.ddim_steps} must be in [1, num_train_timesteps={self.num_train_timesteps}]")
        self.act_steps = check_act_steps(self.act_steps, self.action_horizon)
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0 (the dataset's control rate), got {self.rate_hz}")
        for name, fields, dim in (("obs_fields", self.obs_fields, self.obs_dim),
                                  ("action_fields", self.action_fields, self.action_dim)):
            if fields is not None and sum(int(size) for _, size in fields) != dim:
                raise ValueError(f"{name} sizes sum to {sum(int(s) for _, s in fields)}, expected {dim}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DiffusionPolicyConfig":
        data = dict(data)
        if "act_steps" not in data:
            raise ValueError("DiffusionPolicyConfig without act_steps (a checkpoint from before the planner "
                             "contract): read it through with_act_steps(config, extra) first")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown DiffusionPolicyConfig fields {sorted(unknown)} (checkpoint from a newer version?)")
        data["dit"] = DiTConfig(**data.get("dit", {}))
        data["mlp"] = MLPDenoiserConfig(**data.get("mlp", {}))
        for key in ("obs_fields", "action_fields"):
            if data.get(key) is not None:
                data[key] = [(str(n), int(s)) for n, s in data[key]]
        return cls(**data)
