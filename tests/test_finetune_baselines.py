"""PPO baselines of the fine-tuning study: PPO-Gaussian (BC start), MLP-FT (mean-reverting noise),
residual RL (bounded residual on a frozen DP), and exact resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
from refine_dp_planner.models.mlp_policy import MLPPolicy, MLPPolicyConfig
from refine_dp_planner.policy import DiffusionPolicy
from refine_dp_training.envs.toy import PointMassVecEnv
from refine_dp_training.finetune import mlp_ft, ppo_gaussian, residual
from refine_dp_training.finetune.common import Pretrained, latest_checkpoint, load_checkpoint, run_finetune

To, Ta, ACT = 2, 4, 3
PPO_SMALL = dict(env="toy-pointmass", num_envs=4, steps_per_iter=8, epochs=2, minibatches=2, hidden_dim=16,
                 eval_episodes=2, eval_every_env_steps=0, tensorboard=False, progress=False, critic_warmup_iters=1)


def _fit(policy, seed=0):
    rng = np.random.default_rng(seed)
    policy.fit_normalizers(rng.uniform(-2, 2, (64, 3)), rng.uniform(-1, 1, (64, 2)))
    return policy.eval()


def tiny_dp() -> Pretrained:
    torch.manual_seed(0)
    cfg = DiffusionPolicyConfig(obs_dim=3, action_dim=2, obs_horizon=To, action_horizon=Ta, num_train_timesteps=20,
                                ddim_steps=3, backbone="mlp", mlp=MLPDenoiserConfig(hidden_dims=[32, 32], step_embed_dim=8))
    return Pretrained("diffusion", _fit(DiffusionPolicy(cfg)), To, Ta, ACT, None, Path("tiny-dp"), {})


def tiny_mlp() -> Pretrained:
    torch.manual_seed(0)
    cfg = MLPPolicyConfig(obs_dim=3, action_dim=2, obs_horizon=To, action_horizon=Ta, hidden_dims=[32, 32])
    return Pretrained("mlp", _fit(MLPPolicy(cfg)), To, Ta, ACT, None, Path("tiny-mlp"), {})


def pointmass_demos(n: int = 8) -> list[dict]:
    """Expert-ish demos on the point mass: velocity toward the origin."""
    env = PointMassVecEnv(num_envs=n, max_steps=20)
    obs = env.reset(seed=5)
    episodes, buf = [], [{"obs": [], "actions": []} for _ in range(n)]
    for _ in range(20):
        act = np.clip(-2.0 * obs[:, :2], -1, 1)
        for i in range(n):
            buf[i]["obs"].append(obs[i].copy())
            buf[i]["actions"].append(act[i].copy())
        obs, _, term, trunc, _ = env.step(act)
    return [{"obs": np.array(b["obs"], np.float32), "actions": np.array(b["actions"], np.float32)} for b in buf]


# ---- residual -------------------------------------------------------------------------------
def test_zero_residual_reproduces_the_frozen_dp_and_the_residual_is_bounded():
    pre = tiny_dp()
    method = residual.Residual(residual.ResidualConfig(**PPO_SMALL, residual_scale=0.1), pre)
    with torch.no_grad():
        method.policy.actor[-1].weight.zero_()
        method.policy.actor[-1].bias.zero_()
    obs = np.random.default_rng(0).uniform(-1.5, 1.5, (5, To, 3)).astype(np.float32)
    torch.manual_seed(7)
    got = method.act_deterministic(obs)
    torch.manual_seed(7)
    expected = pre.policy.sample(torch.as_tensor(obs), eta=0.0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the DP's weights are frozen
    assert not any(p.requires_grad for p in method.base.parameters())
    # huge residual requests move the executed actions by at most residual_scale (normalized units)
    proposal = method.propose(obs)
    for sign in (1.0, -1.0):
        chunk = torch.as_tensor(method.compose(proposal, torch.full((5, ACT * 2), sign * 100.0)).numpy())
        moved = pre.policy.action_normalizer.normalize(chunk) - proposal
        assert float(moved[:, :ACT].abs().max()) <= 0.1 + 1e-5
        assert float(moved[:, :ACT].abs().max()) > 0.05                 # and it does move
        assert float(moved[:, ACT:].abs().max()) < 1e-5                 # non-executed actions untouched


# ---- MLP-FT -----------------------------------------------------------------------------------
def test_mlp_ft_schedule_pull_linear_and_noise_decreasing():
    cfg = mlp_ft.MLPFTConfig(alpha_start=0.2, alpha_end=1.0, sigma_start=0.4, sigma_end=0.05)
    ps = np.linspace(0, 1, 11)
    alphas, sigmas = zip(*(mlp_ft.schedule(cfg, p) for p in ps))
    assert alphas[0] == pytest.approx(0.2) and alphas[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(alphas, 2), 0.0, atol=1e-12)          # linear
    assert sigmas[0] == pytest.approx(0.4) and sigmas[-1] == pytest.approx(0.05)
    assert np.all(np.diff(sigmas) < 0)                                         # strictly decreasing
    assert mlp_ft.schedule(cfg, 2.0) == mlp_ft.schedule(cfg, 1.0)              # clamped past the budget
    with pytest.raises(ValueError, match="decreasing"):
        mlp_ft.MLPFTConfig(sigma_start=0.1, sigma_end=0.2)


def test_mlp_ft_noise_is_mean_reverting_around_the_mlp_output():
    pre = tiny_mlp()
    pol = mlp_ft.MeanRevertingMLPPolicy(pre.policy, ACT, (8,), 5.0)
    alpha, sigma = 0.3, 0.05
    pol.set_schedule(alpha, sigma)
    n = 4000
    obs = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (1, To * 3)), dtype=torch.float32).repeat(n, 1)
    with torch.no_grad():
        mu = pol.mlp_mean(obs[:1])
        a = (mu + 0.8).repeat(n, 1)                                 # start far from the mean
        torch.manual_seed(0)
        for t in range(1, 9):
            dist = pol.distribution(torch.cat([obs, a], -1))
            torch.testing.assert_close(dist.mean, (1 - alpha) * a + alpha * mu)
            a = dist.sample()
            offset = float((a - mu).mean())
            assert offset == pytest.approx(0.8 * (1 - alpha) ** t, abs=0.01)   # pulled back geometrically
        for _ in range(40):                                                        # stationary spread
            a = pol.distribution(torch.cat([obs, a], -1)).sample()
    assert float((a - mu).std()) == pytest.approx(sigma / np.sqrt(alpha * (2 - alpha)), rel=0.06)


def test_mlp_ft_trains_with_scheduled_pull_and_noise():
    cfg = mlp_ft.MLPFTConfig(**PPO_SMALL, budget_env_steps=4 * 8 * ACT * 3, alpha_start=0.3, sigma_start=0.3,
                             sigma_end=0.05)
    method = mlp_ft.MLPFT(cfg, tiny_mlp())
    before = {k: v.clone() for k, v in method.mlp_policy.state_dict().items()}
    seen = []
    for _ in range(3):
        method.train_iteration()
        seen.append((float(method.policy.alpha), float(method.policy.sigma)))
    assert seen[0][0] < seen[1][0] < seen[2][0] and seen[0][1] > seen[1][1] > seen[2][1]
    assert seen[0] == pytest.approx((0.3, 0.3))
    changed = [k for k, v in method.mlp_policy.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("net.") for k in changed)                       # PPO reaches the MLP
    assert not any("normalizer" in k for k in changed)
    # deterministic evaluation is the MLP's own output
    obs = np.zeros((2, To, 3), np.float32)
    np.testing.assert_allclose(method.act_deterministic(obs), method.mlp_policy.sample(torch.as_tensor(obs)).numpy())


# ---- PPO-Gaussian ---------------------------------------------------------------------------------
def test_ppo_gaussian_starts_from_behaviour_cloning_and_learns():
    demos = pointmass_demos()
    cfg = ppo_gaussian.PPOGaussianConfig(**(PPO_SMALL | dict(steps_per_iter=20, epochs=4)), bc_epochs=100,
                                         bc_batch_size=32, bc_lr=3e-3)
    method = ppo_gaussian.PPOGaussian(cfg, episodes=demos)
    obs = np.concatenate([d["obs"] for d in demos])[:, None]
    act = np.concatenate([d["actions"] for d in demos])
    err = np.abs(method.act_deterministic(obs)[:, 0] - act).mean()
    assert err < 0.1, err                                     # the BC start imitates the demos
    stats = [method.train_iteration() for _ in range(3)]
    assert stats[0]["critic_warmup"] == 1.0 and stats[1]["critic_warmup"] == 0.0
    assert method.env_steps == 3 * 20 * 4                    # per-step PPO: one action per chunk step


# ---- resume ---------------------------------------------------------------------------------------
def test_residual_resume_continues_exactly(tmp_path):
    pre = tiny_dp()

    def cfg(out, budget):
        return residual.ResidualConfig(**(PPO_SMALL | dict(eval_every_env_steps=100)), out=str(out),
                                       budget_env_steps=budget, checkpoint_every=1, seed=2)

    full = residual.run(cfg(tmp_path / "full", 300), pre=pre)
    # a run killed after its second iteration (a lower budget would shorten that iteration: a budget is a budget)
    killed = residual.Residual(cfg(tmp_path / "part", 300), pre=pre)
    step, done = killed.train_iteration, []

    def train_iteration(*args):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(1)
        return step(*args)

    killed.train_iteration = train_iteration
    with pytest.raises(KeyboardInterrupt):
        run_finetune(killed, cfg(tmp_path / "part", 300), method_name="residual")
    resumed = residual.run(cfg(tmp_path / "part", 300), resume=True, pre=pre)
    assert 2 < full["iteration"]
    assert resumed["env_steps"] == full["env_steps"] and resumed["iteration"] == full["iteration"]
    a = load_checkpoint(latest_checkpoint(tmp_path / "full"))["method"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "part"))["method"]
    for key, value in a["alg"]["policy"].items():
        torch.testing.assert_close(b["alg"]["policy"][key], value, rtol=0, atol=0)
    assert a["alg"]["learning_rate"] == b["alg"]["learning_rate"]
    np.testing.assert_array_equal(a["obs"], b["obs"])


def test_mlp_ft_resumes_on_an_env_without_state_with_fresh_episodes(tmp_path, monkeypatch):
    """The T1 task envs cannot export their physics: checkpoints still work (learner, counters), and a
    resume starts fresh episodes (every env at an episode start for mlp-ft's first action) with a warning."""
    from refine_dp_training.finetune.common import ENV_FACTORIES

    class Stateless(PointMassVecEnv):
        def state_dict(self):
            return None

    monkeypatch.setitem(ENV_FACTORIES, "toy-stateless", lambda num_envs, **kw: Stateless(num_envs, **kw))
    pre = tiny_mlp()

    def cfg(budget):
        return mlp_ft.MLPFTConfig(**(PPO_SMALL | dict(env="toy-stateless")), out=str(tmp_path / "r"),
                                  budget_env_steps=budget, checkpoint_every=1, seed=1)

    first = mlp_ft.MLPFT(cfg(100), pre=pre)
    run_finetune(first, cfg(100), method_name="mlp-ft")  # a checkpoint per iteration: must not raise
    saved = load_checkpoint(latest_checkpoint(tmp_path / "r"))["method"]
    assert saved["env"] is None and saved["env_steps"] == first.env_steps
    resumed = mlp_ft.MLPFT(cfg(200), pre=pre)
    with pytest.warns(UserWarning, match="fresh episodes"):
        resumed.load_state_dict(saved)
    assert (resumed.iteration, resumed.env_steps) == (first.iteration, first.env_steps) and resumed.fresh.all()
    learned = dict(resumed.policy.named_parameters())  # (schedule buffers move on to the next iteration's)
    for key, value in first.policy.named_parameters():
        torch.testing.assert_close(learned[key], value, rtol=0, atol=0)
    with pytest.warns(UserWarning, match="fresh episodes"):
        run_finetune(resumed, cfg(200), resume=True, method_name="mlp-ft")
    assert resumed.env_steps >= 200 and resumed.iteration > first.iteration
