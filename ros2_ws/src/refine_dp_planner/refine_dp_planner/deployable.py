"""Deployable planners: every trained or fine-tuned planner as the one module an engine runs.

    forward(obs_history [B, To, Do] raw, noise [B, Ta, Da] ~ N(0, I)) -> actions [B, Ta, Da] raw

Each kind is exactly its method's deterministic evaluation actor (`act_deterministic` in
refine_dp_training.finetune), so an exported engine runs what was evaluated:

  diffusion  a DiffusionPolicy: DDIM from `noise` (eta from its config; eta > 0 adds `step_noise`)
  dppo       DDIM (eta 0) from `noise`: the frozen pretrained denoiser for the first K - J steps, the
             fine-tuned one for the last J = ft_denoising_steps
  residual   the frozen base's chunk (a DP: DDIM eta 0 from `noise`; or an MLP), plus
             residual_scale * clip(mu(s, a_base), -1, 1) on its first act_steps actions, in the base's
             normalized action space, clipped to [-1, 1]
  dsrl       w = noise_bound * tanh(mu(s)) of the noise actor, fed to the DP's DDIM (eta 0) as x_K
  mlp        the deterministic MLP's chunk (pretrained, or fine-tuned by MLP-FT)
  gaussian   a Gaussian policy's mean (PPO-Gaussian): act_steps actions
Only `diffusion`, `dppo` and `residual` over a DP read `noise` (`uses_noise`).

A deployable file (DEPLOYABLE_FORMAT; `refine-dp finetune` writes one as policy.pt) holds {kind,
spec, contract, state_dict}: `spec` rebuilds the module without the training package (the DP's
config, head sizes, scales) and `contract` is contract.CONTRACT_FIELDS as fine-tuned (its act_steps
is the fine-tuning's: DPPO optimised the log-probability of exactly those actions).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.contract import CONTRACT_FIELDS, check_act_steps, contract_of
from refine_dp_planner.diffusion.sampler import _alpha_bars, denoise_step
from refine_dp_planner.models.mlp_head import MLPHead
from refine_dp_planner.models.mlp_policy import MLP_CHECKPOINT_FORMAT, MLPPolicy, MLPPolicyConfig
from refine_dp_planner.policy import CHECKPOINT_FORMAT as DP_CHECKPOINT_FORMAT
from refine_dp_planner.policy import DiffusionPolicy, make_denoiser
from refine_dp_planner.utils import atomic_torch_save, frozen_copy, git_revision

DEPLOYABLE_FORMAT = "refine_dp_planner.deployable/1"
KINDS = ("diffusion", "dppo", "residual", "dsrl", "mlp", "gaussian")


class UnrolledSampler(nn.Module):
    """normalize(obs) -> K denoising steps from `noise` -> clip to [-1, 1] -> unnormalize.

    late_denoiser (DPPO): used instead of the policy's denoiser for the last `late_steps` steps.
    The step constants (and, for the DiT, the per-step conditioning) are folded in at export.
    """

    def __init__(self, policy: DiffusionPolicy, ddim_steps: int | None = None, eta: float | None = None,
                 late_denoiser: nn.Module | None = None, late_steps: int = 0):
        super().__init__()
        policy = frozen_copy(policy)
        self.obs_normalizer, self.action_normalizer = policy.obs_normalizer, policy.action_normalizer
        self.denoiser = policy.denoiser
        self.late_denoiser = frozen_copy(late_denoiser) if late_denoiser is not None else None
        self.clip_x0 = policy.schedule.clip_x0
        self.timesteps = policy.timesteps(ddim_steps)
        self.alpha_bars = _alpha_bars(policy.schedule, self.timesteps)
        self.eta = float(policy.config.eta if eta is None else eta)
        K = len(self.timesteps)
        if late_denoiser is not None and not 1 <= late_steps <= K:
            raise ValueError(f"fine-tuned steps {late_steps} must be in [1, {K}] (the sampler's steps)")
        self.late_start = K - late_steps if late_denoiser is not None else K

    def forward(self, obs_history: torch.Tensor, noise: torch.Tensor, step_noise: torch.Tensor | None = None):
        obs = self.obs_normalizer.normalize(obs_history)
        ts, s = self.timesteps, self.late_start
        stages = [(self.denoiser, self._conditions(self.denoiser, ts[:s], obs), 0)]
        if self.late_denoiser is not None:
            stages.append((self.late_denoiser, self._conditions(self.late_denoiser, ts[s:], obs), s))
        x = noise
        for k, (t, (ab_t, ab_prev)) in enumerate(zip(ts, self.alpha_bars)):
            denoiser, conds, first = stages[0] if k < s else stages[1]
            if conds is None:
                eps = denoiser(x, torch.tensor([t], dtype=torch.long), obs)
            else:
                eps = denoiser.forward_conditioned(x, conds[k - first])
            mean, std, _ = denoise_step(x, eps, ab_t, ab_prev, self.eta, self.clip_x0)
            x = mean + std * step_noise[k] if (self.eta > 0 and ab_prev < 1.0) else mean
        return self.action_normalizer.unnormalize(x.clamp(-1.0, 1.0))

    @staticmethod
    def _conditions(denoiser: nn.Module, steps: list[int], obs: torch.Tensor):
        """Per-step conditioning of `steps` in one batched call (denoisers with `condition_steps`),
        indexed [step]; None for denoisers without it (the MLP)."""
        if not hasattr(denoiser, "condition_steps"):
            return None
        return denoiser.condition_steps(torch.tensor(steps, dtype=torch.long), obs) if steps else []


class Deployable(nn.Module):
    """Base: `kind`, `spec` (rebuilds it, see `build`), `contract` (CONTRACT_FIELDS), `uses_noise`.

    `diffusion` is the DiffusionPolicy whose schedule and normalizers the engine metadata describes
    (None for the MLP kinds); `sampler` its UnrolledSampler.
    """

    kind = "?"
    uses_noise = False

    def __init__(self, spec: dict, contract: dict):
        super().__init__()
        missing = set(CONTRACT_FIELDS) - set(contract)
        if missing:
            raise ValueError(f"{self.kind} planner contract lacks {sorted(missing)}")
        self.spec, self.contract = spec, dict(contract)
        self.contract["act_steps"] = check_act_steps(contract["act_steps"], contract["action_horizon"])
        self.diffusion_config: DiffusionPolicyConfig | None = None
        self.sampler: UnrolledSampler | None = None

    @property
    def eta(self) -> float:
        return self.sampler.eta if self.sampler is not None else 0.0

    def normalizers(self) -> dict | None:
        return None


def _dp_contract(config: DiffusionPolicyConfig, act_steps: int | None) -> dict:
    return contract_of(config) | {"act_steps": check_act_steps(act_steps or config.act_steps, config.action_horizon)}


class DiffusionDeployable(Deployable):
    """kind "diffusion" (a pretrained DP) or "dppo" (tuned_denoiser for the last ft_denoising_steps)."""

    def __init__(self, policy: DiffusionPolicy, ddim_steps: int | None = None, eta: float | None = None,
                 tuned_denoiser: nn.Module | None = None, ft_denoising_steps: int = 0, act_steps: int | None = None):
        self.kind = "dppo" if tuned_denoiser is not None else "diffusion"
        self.uses_noise = True
        K = int(ddim_steps or policy.config.ddim_steps)
        eta = 0.0 if tuned_denoiser is not None else float(policy.config.eta if eta is None else eta)
        spec = {"policy": policy.config.to_dict(), "ddim_steps": K, "eta": eta}
        if tuned_denoiser is not None:
            spec["ft_denoising_steps"] = int(ft_denoising_steps)
        super().__init__(spec, _dp_contract(policy.config, act_steps))
        self.diffusion_config = policy.config
        self.sampler = UnrolledSampler(policy, K, eta, tuned_denoiser, ft_denoising_steps)

    def forward(self, obs_history, noise, step_noise=None):
        return self.sampler(obs_history, noise, step_noise)

    def normalizers(self) -> dict:
        return {"obs": self.sampler.obs_normalizer.stats(), "action": self.sampler.action_normalizer.stats()}


class ResidualDeployable(Deployable):
    kind = "residual"

    def __init__(self, base: DiffusionPolicy | MLPPolicy, head: MLPHead, residual_scale: float, act_steps: int,
                 ddim_steps: int | None = None):
        is_dp = isinstance(base, DiffusionPolicy)
        K = int(ddim_steps or base.config.ddim_steps) if is_dp else None
        spec = {"base": {"kind": "diffusion" if is_dp else "mlp", "policy": _config_dict(base.config),
                         "ddim_steps": K},
                "head": head.spec, "residual_scale": float(residual_scale), "act_steps": int(act_steps)}
        super().__init__(spec, contract_of(base.config) | {"act_steps": int(act_steps)})
        self.uses_noise = is_dp
        if is_dp:
            self.diffusion_config = base.config
            self.sampler = UnrolledSampler(base, K, 0.0)
            self.action_normalizer = self.sampler.action_normalizer
        else:
            self.base = frozen_copy(base)
            self.action_normalizer = self.base.action_normalizer
        self.head = frozen_copy(head)
        self.scale, self.act_steps = float(residual_scale), int(act_steps)

    def forward(self, obs_history, noise):
        raw = self.sampler(obs_history, noise) if self.sampler is not None else self.base.chunk(obs_history)
        proposal = self.action_normalizer.normalize(raw)
        A = self.act_steps
        u = self.head(torch.cat([obs_history.flatten(1), proposal[:, :A].flatten(1)], -1))
        executed = proposal[:, :A] + self.scale * u.clamp(-1.0, 1.0).reshape(-1, A, proposal.shape[-1])
        return self.action_normalizer.unnormalize(torch.cat([executed.clamp(-1.0, 1.0), proposal[:, A:]], 1))

    def normalizers(self) -> dict:
        obs = self.sampler.obs_normalizer if self.sampler is not None else self.base.obs_normalizer
        return {"obs": obs.stats(), "action": self.action_normalizer.stats()}


class DSRLDeployable(Deployable):
    kind = "dsrl"

    def __init__(self, policy: DiffusionPolicy, actor: MLPHead, noise_bound: float, obs_clip: float,
                 act_steps: int, ddim_steps: int | None = None):
        K = int(ddim_steps or policy.config.ddim_steps)
        spec = {"policy": policy.config.to_dict(), "ddim_steps": K, "head": actor.spec,
                "noise_bound": float(noise_bound), "obs_clip": float(obs_clip), "act_steps": int(act_steps)}
        super().__init__(spec, _dp_contract(policy.config, act_steps))
        self.diffusion_config = policy.config
        self.sampler = UnrolledSampler(policy, K, 0.0)
        self.actor = frozen_copy(actor)
        self.bound, self.obs_clip = float(noise_bound), float(obs_clip)
        self.noise_shape = (policy.config.action_horizon, policy.config.action_dim)

    def forward(self, obs_history, noise):
        s = self.sampler.obs_normalizer.normalize(obs_history).clamp(-self.obs_clip, self.obs_clip).flatten(1)
        mu = self.actor(s)[:, :self.noise_shape[0] * self.noise_shape[1]]   # the actor outputs (mu, log_std)
        return self.sampler(obs_history, (self.bound * torch.tanh(mu)).reshape(-1, *self.noise_shape))

    def normalizers(self) -> dict:
        return {"obs": self.sampler.obs_normalizer.stats(), "action": self.sampler.action_normalizer.stats()}


class MLPDeployable(Deployable):
    kind = "mlp"

    def __init__(self, policy: MLPPolicy, act_steps: int | None = None):
        super().__init__({"policy": _config_dict(policy.config)},
                         contract_of(policy.config) | {"act_steps": act_steps or policy.config.act_steps})
        self.policy = frozen_copy(policy)

    def forward(self, obs_history, noise):
        return self.policy.chunk(obs_history)

    def normalizers(self) -> dict:
        return {"obs": self.policy.obs_normalizer.stats(), "action": self.policy.action_normalizer.stats()}


class GaussianDeployable(Deployable):
    """A Gaussian policy's mean over the flattened obs history; the chunk is its act_steps actions."""

    kind = "gaussian"

    def __init__(self, head: MLPHead, contract: dict):
        super().__init__({"head": head.spec}, contract)
        self.head = frozen_copy(head)
        self.chunk_shape = (contract["action_horizon"], contract["action_dim"])

    def forward(self, obs_history, noise):
        return self.head(obs_history.flatten(1)).reshape(-1, *self.chunk_shape)


def _config_dict(config) -> dict:
    import dataclasses
    return config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)


def _head(spec: dict) -> MLPHead:
    return MLPHead(spec["in_dim"], spec["hidden"], spec["out_dim"], spec["activation"], spec["input_norm"])


def build(kind: str, spec: dict, contract: dict) -> Deployable:
    """An untrained module of `kind` shaped by `spec` (load a state_dict into it)."""
    dp = lambda cfg: DiffusionPolicy(DiffusionPolicyConfig.from_dict(cfg))  # noqa: E731
    if kind == "diffusion":
        return DiffusionDeployable(dp(spec["policy"]), spec["ddim_steps"], spec["eta"])
    if kind == "dppo":
        policy = dp(spec["policy"])
        return DiffusionDeployable(policy, spec["ddim_steps"], 0.0, make_denoiser(policy.config),
                                   spec["ft_denoising_steps"], contract["act_steps"])
    if kind == "residual":
        b = spec["base"]
        base = dp(b["policy"]) if b["kind"] == "diffusion" else MLPPolicy(MLPPolicyConfig(**b["policy"]))
        return ResidualDeployable(base, _head(spec["head"]), spec["residual_scale"], spec["act_steps"], b["ddim_steps"])
    if kind == "dsrl":
        return DSRLDeployable(dp(spec["policy"]), _head(spec["head"]), spec["noise_bound"], spec["obs_clip"],
                              spec["act_steps"], spec["ddim_steps"])
    if kind == "mlp":
        return MLPDeployable(MLPPolicy(MLPPolicyConfig(**spec["policy"])), contract["act_steps"])
    if kind == "gaussian":
        return GaussianDeployable(_head(spec["head"]), contract)
    raise ValueError(f"unknown deployable planner kind {kind!r}: one of {KINDS}")


def save_deployable(module: Deployable, path: str | Path, extra: dict | None = None) -> Path:
    """Write the deployable file atomically (what `refine-dp export planner --checkpoint` takes)."""
    return atomic_torch_save({"format": DEPLOYABLE_FORMAT, "kind": module.kind, "spec": module.spec,
                              "contract": module.contract, "state_dict": module.state_dict(),
                              "git_revision": git_revision(), "extra": extra or {}}, path)


def load_planner(path: str | Path, use_ema: bool = True, ddim_steps: int | None = None,
                 eta: float | None = None) -> tuple[Deployable, dict]:
    """Any planner file -> (Deployable in eval mode, checkpoint dict): a fine-tuned policy.pt
    (DEPLOYABLE_FORMAT), or a pretrained DiffusionPolicy (ddim_steps/eta: its sampler, default its
    config) or MLP policy.pt, with the EMA weights when present and use_ema."""
    path = Path(path)
    if path.is_dir():
        path = path / "policy.pt"
    if not path.is_file():
        raise FileNotFoundError(f"planner checkpoint {path} not found: pass the policy.pt that `refine-dp pretrain` "
                                f"or `refine-dp finetune` wrote")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt != DP_CHECKPOINT_FORMAT and (ddim_steps is not None or eta is not None):
        raise ValueError(f"{path}: ddim_steps/eta apply to a pretrained diffusion policy only; other planners are "
                         f"exported exactly as they were evaluated")
    if fmt == DEPLOYABLE_FORMAT:
        module = build(ckpt["kind"], ckpt["spec"], ckpt["contract"])
        module.load_state_dict(ckpt["state_dict"])
        return module.eval(), ckpt
    ema = use_ema and ckpt.get("ema") is not None
    if fmt == DP_CHECKPOINT_FORMAT:
        policy, ckpt = DiffusionPolicy.load(path, use_ema=ema)
        return DiffusionDeployable(policy.eval(), ddim_steps, eta).eval(), ckpt
    if fmt == MLP_CHECKPOINT_FORMAT:
        policy, ckpt = MLPPolicy.load(path, use_ema=ema)
        return MLPDeployable(policy.eval()).eval(), ckpt
    raise ValueError(f"{path} is not a planner checkpoint (format {fmt!r}; expected one of {DEPLOYABLE_FORMAT}, "
                     f"{DP_CHECKPOINT_FORMAT}, {MLP_CHECKPOINT_FORMAT})")
