"""Fine-tuned planners are deployable: every `refine-dp finetune` method writes a policy.pt that
`refine-dp export planner` turns into an ONNX engine whose chunk equals the method's own
`act_deterministic` (the evaluation actor) within 1e-4, given the same initial noise.

Each method fine-tunes a tiny planner for a couple of iterations on the toy point mass first, so the
exported weights are trained ones (normalizer statistics, moved heads), not initial ones."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refine_dp_planner import export
from refine_dp_planner.deployable import DiffusionDeployable, load_planner
from refine_dp_planner.engines import MetadataMismatchError, make_engine
from refine_dp_training.data.episodes import EpisodeWriter
from refine_dp_training.finetune import dppo, dsrl, mlp_ft, ppo_gaussian, residual
from refine_dp_training.finetune.common import run_finetune
from refine_dp_training.pretrain.artifacts import save_policy_file
from test_finetune_baselines import PPO_SMALL, pointmass_demos, tiny_dp, tiny_mlp

torch.set_num_threads(1)
B = 5


def _obs(To: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.5, 1.5, (B, To, 3)).astype(np.float32)


def _export_and_compare(method, out, expected_kind: str) -> tuple[np.ndarray, object]:
    """Export out/policy.pt; the ORT engine's chunk vs method.act_deterministic under the same noise."""
    assert export.main(["--checkpoint", str(out / "policy.pt"), "--out", str(out / "engine")]) == 0
    engine = make_engine("onnxruntime", out / "engine")
    meta = engine.metadata
    assert meta["kind"] == expected_kind and meta["act_steps"] == method.act_steps and meta["graphs"] == ["sampler"]
    with pytest.raises(MetadataMismatchError, match=f"{expected_kind} planner, which has no denoiser graph"):
        make_engine("onnxruntime", out / "engine", variant="denoiser")
    obs = _obs(meta["obs_horizon"])
    torch.manual_seed(7)
    want = method.act_deterministic(obs)          # draws its initial noise (if any) from the global RNG
    torch.manual_seed(7)
    noise = torch.randn(B, *engine.action_shape).numpy()
    got = engine.sample(obs, noise)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4, np.abs(got - want).max()
    # the torch engine runs the same file as the same module
    assert np.abs(make_engine("torch", out / "policy.pt").sample(obs, noise) - got).max() < 1e-4
    return got, engine


def test_dppo_exports_frozen_base_early_steps_and_tuned_late_steps(tmp_path):
    pre = tiny_dp()  # obs 3, act 2, To 2, Ta 4, 3 DDIM steps
    with torch.no_grad():
        pre.policy.denoiser.net[-1].weight.normal_(0, 0.1)
    pre.policy.config.act_steps = 3
    save_policy_file(tmp_path / "dp.pt", pre.policy, None, {"env": "toy-pointmass"})
    out = tmp_path / "dppo"
    cfg = dppo.Config(pretrained=str(tmp_path / "dp.pt"), env="toy-pointmass", out=str(out), num_envs=3, n_steps=4,
                      ft_denoising_steps=2, batch_size=12, update_epochs=2, critic_warmup_iterations=0,
                      critic_hidden=[16], actor_lr=3e-2, eval_episodes=0, checkpoint_every=1, tensorboard=False,
                      progress=False, target_kl=None, budget_env_steps=2 * 3 * 4 * 3)
    method = dppo.Method(cfg)
    run_finetune(method, cfg, method_name="dppo")
    assert method.iteration >= 2 and json.loads((out / "summary.json").read_text())["policy"].endswith("policy.pt")
    got, engine = _export_and_compare(method, out, "dppo")
    assert engine.metadata["ft_denoising_steps"] == 2 and engine.metadata["ddim_steps"] == 3
    # the split matters: all steps by the frozen base, or all by the tuned denoiser, give other chunks
    obs = _obs(2)
    torch.manual_seed(7)
    noise = torch.randn(B, 4, 2).numpy()
    for whole in (method.actor.base, method.actor.policy.denoiser):
        dp = method.actor.policy.frozen_copy()
        dp.denoiser = whole
        other = DiffusionDeployable(dp, 3, 0.0)(torch.from_numpy(obs), torch.from_numpy(noise)).detach().numpy()
        assert np.abs(other - got).max() > 1e-3


def test_residual_exports_dp_chunk_plus_residual_mean(tmp_path):
    pre = tiny_dp()
    out = tmp_path / "residual"
    cfg = residual.ResidualConfig(**PPO_SMALL | {"out": str(out), "checkpoint_every": 1,
                                                 "budget_env_steps": 2 * 4 * 8 * 3}, residual_scale=0.3)
    method = residual.Residual(cfg, pre)
    with torch.no_grad():  # a residual that is not ~0 from the start, so the export has one to get right
        method.policy.actor[-1].weight.normal_(0, 0.5)
    run_finetune(method, cfg, method_name="residual")
    got, engine = _export_and_compare(method, out, "residual")
    assert engine.metadata["uses_noise"]
    torch.manual_seed(7)
    noise = torch.randn(B, 4, 2)
    dp_only = pre.policy.sample(torch.from_numpy(_obs(2)), noise, eta=0.0).numpy()
    assert np.abs(dp_only[:, :method.act_steps] - got[:, :method.act_steps]).max() > 1e-3
    np.testing.assert_allclose(dp_only[:, method.act_steps:], got[:, method.act_steps:], atol=1e-4)


@pytest.mark.parametrize("variant", ["sac", "na"])
def test_dsrl_exports_the_noise_actor_feeding_the_dp(tmp_path, variant):
    pre = tiny_dp()
    out = tmp_path / f"dsrl_{variant}"
    cfg = dsrl.DSRLConfig(env="toy-pointmass", out=str(out), variant=variant, num_envs=3, batch_size=8,
                          learning_starts=0, utd=1.0, hidden_dim=16, replay_capacity=500, eval_episodes=0,
                          checkpoint_every=2, tensorboard=False, progress=False, act_steps=3, budget_env_steps=27)
    method = dsrl.DSRL(cfg, pre)
    run_finetune(method, cfg, method_name=f"dsrl-{variant}")
    got, engine = _export_and_compare(method, out, "dsrl")
    assert not engine.metadata["uses_noise"] and "noise" not in engine.input_names
    assert np.abs(engine.sample(_obs(2), np.zeros((B, 4, 2), np.float32)) - got).max() == 0  # noise is the actor's


def test_mlp_ft_exports_the_fine_tuned_mlp(tmp_path):
    out = tmp_path / "mlp_ft"
    cfg = mlp_ft.MLPFTConfig(**PPO_SMALL | {"out": str(out), "checkpoint_every": 1, "budget_env_steps": 2 * 4 * 8 * 3},
                             learning_rate=1e-2)
    pre = tiny_mlp()
    before = [p.clone() for p in pre.policy.parameters()]
    method = mlp_ft.MLPFT(cfg, pre)
    run_finetune(method, cfg, method_name="mlp-ft")
    assert any(not torch.equal(a, b) for a, b in zip(before, method.mlp_policy.parameters()))  # it did move
    _export_and_compare(method, out, "mlp")


def test_ppo_gaussian_exports_its_mean(tmp_path):
    data = tmp_path / "demos"
    with EpisodeWriter(data, 3, 2, control_rate_hz=10.0) as w:
        for ep in pointmass_demos(4):
            w.add_episode(ep["obs"], ep["actions"], np.zeros(len(ep["obs"])), True)
    out = tmp_path / "ppo_gaussian"
    cfg = ppo_gaussian.PPOGaussianConfig(**PPO_SMALL | {"out": str(out), "checkpoint_every": 1,
                                                        "budget_env_steps": 2 * 8 * 4},
                                         dataset=str(data), obs_horizon=2, act_steps=2, bc_epochs=2)
    method = ppo_gaussian.PPOGaussian(cfg)
    run_finetune(method, cfg, method_name="ppo-gaussian")
    _, engine = _export_and_compare(method, out, "gaussian")
    assert engine.action_shape == (2, 2) and engine.rate_hz == 10.0


def test_export_refuses_sampler_overrides_for_fine_tuned_planners(tmp_path):
    pre = tiny_mlp()
    save_policy_file(tmp_path / "mlp.pt", pre.policy, None, {})
    planner, _ = load_planner(tmp_path / "mlp.pt")
    assert planner.kind == "mlp" and planner.contract["act_steps"] == pre.policy.config.act_steps
    with pytest.raises(ValueError, match="ddim_steps/eta apply to a pretrained diffusion policy only"):
        export.main(["--checkpoint", str(tmp_path / "mlp.pt"), "--out", str(tmp_path / "e"), "--eta", "0.5"])
