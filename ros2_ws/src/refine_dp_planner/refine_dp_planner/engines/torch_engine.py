"""Torch backend: the policy itself (eager), the reference the exported engines are checked against."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from refine_dp_planner.deployable import Deployable, DiffusionDeployable, load_planner
from refine_dp_planner.engines.base import Engine
from refine_dp_planner.export import build_metadata
from refine_dp_planner.policy import DiffusionPolicy


class TorchEngine(Engine):
    """A DiffusionPolicy sampled by its own `sample` (any eta, noise from the engine's generator), or
    any other planner (a Deployable, or a policy.pt of any kind) run as the module it exports."""

    backend = "torch"

    def __init__(self, policy: DiffusionPolicy | Deployable | str | Path, *, ddim_steps: int | None = None,
                 eta: float | None = None, use_ema: bool = True, device: str = "cpu", seed: int | None = None):
        if isinstance(policy, (str, Path)):
            policy, _ = load_planner(policy, use_ema=use_ema, ddim_steps=ddim_steps, eta=eta)
            ddim_steps = eta = None   # applied by load_planner
        if isinstance(policy, DiffusionDeployable) and policy.kind == "diffusion":
            # a plain DP: sample with the policy itself (its generator draws the step noise when eta > 0)
            ddim_steps, eta = ddim_steps or policy.spec["ddim_steps"], policy.eta if eta is None else eta
            policy = _policy_of(policy)
        self.generator = torch.Generator(device=device)
        if seed is not None:
            self.generator.manual_seed(seed)
        if isinstance(policy, DiffusionPolicy):
            self.policy = policy.to(device).eval()
            self.ddim_steps = int(ddim_steps or policy.config.ddim_steps)
            self.eta = float(policy.config.eta if eta is None else eta)
            metadata = build_metadata(DiffusionDeployable(self.policy, self.ddim_steps, self.eta), opset=0,
                                      graphs=("sampler", "denoiser"))
        else:
            if ddim_steps is not None or eta is not None:
                raise ValueError(f"a {policy.kind} planner runs as it was evaluated: no ddim_steps/eta")
            self.policy = policy.to(device).eval()
            metadata = build_metadata(self.policy, opset=0)
        super().__init__(metadata, seed)

    def _sample(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            if isinstance(self.policy, DiffusionPolicy):
                out = self.policy.sample(torch.from_numpy(obs), torch.from_numpy(noise), eta=self.eta,
                                         ddim_steps=self.ddim_steps, generator=self.generator)
            else:
                out = self.policy(torch.from_numpy(obs), torch.from_numpy(noise))
        return out.cpu().numpy()


def _policy_of(planner: DiffusionDeployable) -> DiffusionPolicy:
    """The DiffusionPolicy inside a plain-DP deployable (same weights, for `DiffusionPolicy.sample`)."""
    policy = DiffusionPolicy(planner.diffusion_config)
    s = planner.sampler
    policy.denoiser.load_state_dict(s.denoiser.state_dict())
    policy.obs_normalizer.load_state_dict(s.obs_normalizer.state_dict())
    policy.action_normalizer.load_state_dict(s.action_normalizer.state_dict())
    return policy.eval()
