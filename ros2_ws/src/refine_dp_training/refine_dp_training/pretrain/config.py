"""Typed configuration of `refine-dp pretrain`, saved as config.json beside the checkpoints.

Defaults are the T1 planner's (obs horizon 8, chunk 12, DiT, 100-step DDPM / 10-step DDIM).
`PRESETS["hopper"]` is the Hopper-v5 benchmark setting, chosen after the DPPO reference's gym
configs (cond_steps 1, horizon_steps 4, act_steps 4, 20 DDPM steps, MLP denoiser 3x512):
- obs_horizon 2: Hopper's state is Markov, but velocities from one frame are noisy under the demos'
  action noise; two frames cost nothing and match the planner's use of a history.
- action chunk 4, all 4 executed (act_steps 4): 32 ms at 125 Hz, short enough to stay reactive in a
  hopping gait (longer open-loop chunks fall more), while 4x fewer planner calls than per-step control
  keeps DP inference and DPPO's denoising-chain storage affordable on a CPU.
- 20 diffusion steps, evaluated with 20-step DDIM at eta 0 and fine-tuned as 20-step DDPM (eta 1),
  the last 10 steps trained by DPPO: DPPO's gym setting.
- MLP denoiser (the planner's `mlp` backbone, residual 3x512): what DPPO uses on gym; the DiT is the
  T1 choice and works here too (`--backbone dit`), only slower per step on a CPU.
A preset sets model and optimizer sizes only, never the evaluation env: that is the dataset's (the env
its metadata records) or `--env`, and its sizes are checked against the dataset's before training.
`PRESETS["reach"]` is the sparse-reward benchmark's (benchmarks/reach): the Hopper setting with a
3x256 denoiser, 10 DDIM steps from 20 (DSRL-NA denoises two batches per update) and 2 of the 4
actions of a chunk executed: the reacher's PD demonstrator, held open-loop for 4 steps (80 ms),
succeeds in 17 % of the episodes against 100 % when it replans every 1 or 2 steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class PretrainConfig:
    data: str = ""                       # dataset folder (refine_dp.episodes/1: metadata.json + shards)
    out: str = "runs/pretrain"
    model: str = "diffusion"             # "diffusion" (DiffusionPolicy) or "mlp" (deterministic MLP baseline)
    backbone: str = "dit"                # diffusion denoiser: "dit" or "mlp"
    obs_horizon: int = 8
    action_horizon: int = 12
    act_steps: int = 8                   # actions executed per chunk: rollouts, fine-tuning, the robot (planner contract)
    rate_hz: float | None = None         # actions per second; None: the dataset's control_rate_hz (must agree if both)
    num_train_timesteps: int = 100
    ddim_steps: int = 10                 # evaluation sampler: DDIM with eta 0 over this many steps
    dit_width: int = 128                 # planner.models.dit.DiTConfig: the shipped (latency-bound) size
    dit_depth: int = 4
    dit_heads: int = 4
    hidden_dims: list[int] = field(default_factory=lambda: [512, 512, 512])  # MLP denoiser / MLP policy
    normalizer: str = "min_max"
    normalizer_outlier_ratio: float | None = 10.0  # refuse to fit min-max on a dimension whose full range is this many
                                         # times its 1-99 % range (outlier frames: clean the data); None: fit anyway
    max_action_pad: int | None = None    # None: Ta - 1 (Diffusion Policy padding)
    steps: int = 50_000                  # gradient steps
    batch_size: int = 256
    lr: float = 1e-4
    min_lr_ratio: float = 0.0            # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 500
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    ema_power: float = 0.75
    val_fraction: float = 0.1            # episodes held out (split by episode)
    val_every: int = 1000
    val_batches: int = 8
    env: str | None = None               # rollout evaluation of the EMA policy in this env; None: the env the
                                         # dataset records (metadata info.env_id), if any; --eval-episodes 0: none
    env_kwargs: dict | None = None       # its keyword arguments (JSON); None: the dataset's info.env_kwargs
    eval_every: int = 5000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    seed: int = 0
    torch_threads: int = 1               # measured: 2 threads on the shared 2-core VM ran 12x SLOWER (545 vs 43 ms/step)
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.model not in ("diffusion", "mlp"):
            raise ValueError(f"model must be 'diffusion' or 'mlp', got {self.model!r}")
        if not 1 <= self.act_steps <= self.action_horizon:
            raise ValueError(f"act_steps {self.act_steps} must be in [1, action_horizon={self.action_horizon}]")
        self.torch_threads = min(max(1, self.torch_threads), 2)  # a shared 2-core machine: never more

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict] = {
    "t1": {},
    "hopper": {"obs_horizon": 2, "action_horizon": 4, "act_steps": 4, "backbone": "mlp",
               "num_train_timesteps": 20, "ddim_steps": 20, "lr": 1e-3, "min_lr_ratio": 0.1, "eval_every": 5000},
    "reach": {"obs_horizon": 2, "action_horizon": 4, "act_steps": 2, "backbone": "mlp", "hidden_dims": [256, 256, 256],
              "num_train_timesteps": 20, "ddim_steps": 10, "lr": 1e-3, "min_lr_ratio": 0.1, "steps": 8000,
              "eval_every": 2000, "eval_episodes": 50},
}
