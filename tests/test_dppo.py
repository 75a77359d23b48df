"""DPPO (finetune/dppo.py) on a tiny diffusion policy and the toy point-mass env: the chain log-prob,
ratio 1 before any update, the clip schedule, which steps learn, chunked GAE, exact resume."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.diffusion import sampler as diffusion_sampler
from refine_dp_planner.diffusion.sampler import step_distributions
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
from refine_dp_planner.policy import DiffusionPolicy
from refine_dp_training.finetune import dppo
from refine_dp_training.envs.toy import PointMassVecEnv
from refine_dp_training.finetune.common import ENV_FACTORIES, load_pretrained, next_start_level, run_finetune
from refine_dp_training.pretrain.artifacts import save_policy_file
from refine_dp_training.rl.storage import compute_gae

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> str:
    """A tiny DP for PointMassVecEnv (obs 3, act 2): T = 10 steps, To 2, Ta 4, MLP denoiser 32x32."""
    torch.manual_seed(0)
    cfg = DiffusionPolicyConfig(obs_dim=3, action_dim=2, obs_horizon=2, action_horizon=4, num_train_timesteps=10,
                                ddim_steps=10, backbone="mlp", mlp=MLPDenoiserConfig(hidden_dims=[32, 32]))
    policy = DiffusionPolicy(cfg)
    policy.fit_normalizers(np.random.default_rng(0).uniform(-2, 2, (100, 3)),
                           np.random.default_rng(1).uniform(-1, 1, (100, 2)))
    with torch.no_grad():  # nonzero last layer: a denoiser that predicts something
        policy.denoiser.net[-1].weight.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("dp") / "policy.pt"
    save_policy_file(path, policy, None, {"act_steps": 4, "env": "toy-pointmass"})
    return str(path)


def make_cfg(pretrained: str, out, **kw) -> dppo.Config:
    base = dict(pretrained=pretrained, env="toy-pointmass", out=str(out), num_envs=3, n_steps=6,
                ft_denoising_steps=4, batch_size=20, update_epochs=2, critic_warmup_iterations=1,
                critic_hidden=[16, 16], eval_episodes=2, eval_every_env_steps=0, checkpoint_every=1,
                tensorboard=False, progress=False, target_kl=None, budget_env_steps=10**9)
    return dppo.Config(**(base | kw))


def test_chain_log_prob_is_sum_of_per_step_gaussians(pretrained, tmp_path):
    m = dppo.Method(make_cfg(pretrained, tmp_path, logprob_min=-1e9, logprob_max=1e9))
    actor = m.actor
    obs_n = actor.normalize_obs(torch.as_tensor(m.obs, dtype=torch.float32))
    _, chain = actor.sample(obs_n)
    assert chain.shape == (3, actor.J + 1, 4, 2)
    per_step = actor.chain_log_probs(obs_n, chain)
    # Independent path: the sampler's batched step re-evaluation + torch.distributions.Normal.
    full_idx = list(range(actor.ft_start, actor.K))
    full_chain = torch.cat([torch.zeros(3, actor.ft_start, 4, 2), chain], 1)
    with torch.no_grad():
        means, stds = step_distributions(actor.policy.denoiser, actor.policy.schedule, obs_n, full_chain,
                                         actor.timesteps, eta=actor.eta, std_floor=actor.min_logprob_std,
                                         step_indices=full_idx)
    ref = torch.distributions.Normal(means, stds).log_prob(chain[:, 1:])[:, :, :m.act_steps].mean(dim=(-2, -1))
    torch.testing.assert_close(per_step.detach(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_step.detach().sum(-1), ref.sum(-1), rtol=1e-5, atol=1e-5)


def _perturb_finetuned_denoiser(actor, seed: int = 5, std: float = 0.05) -> None:
    """Move the trainable denoiser away from the frozen base (as an update would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in actor.policy.denoiser.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))


def test_step_log_prob_uses_logprob_std_floor_not_sampling_floor(pretrained, tmp_path):
    """The log-prob std floor (min_logprob_std) is not the exploration floor (min_sampling_std)."""
    m = dppo.Method(make_cfg(pretrained, tmp_path, min_logprob_std=0.3, min_sampling_std=0.05,
                             logprob_min=-1e9, logprob_max=1e9))
    actor = m.actor
    obs_n = actor.normalize_obs(torch.as_tensor(m.obs, dtype=torch.float32))
    torch.manual_seed(1)
    _, chain = actor.sample(obs_n)
    per_step = actor.chain_log_probs(obs_n, chain).detach()
    full_idx = list(range(actor.ft_start, actor.K))
    full_chain = torch.cat([torch.zeros(3, actor.ft_start, 4, 2), chain], 1)

    def ref(floor):
        with torch.no_grad():
            means, stds = step_distributions(actor.policy.denoiser, actor.policy.schedule, obs_n, full_chain,
                                             actor.timesteps, eta=actor.eta, std_floor=floor, step_indices=full_idx)
        return torch.distributions.Normal(means, stds).log_prob(chain[:, 1:])[:, :, :m.act_steps].mean(dim=(-2, -1))

    torch.testing.assert_close(per_step, ref(0.3), rtol=1e-5, atol=1e-5)
    # The two floors give clearly different log-probs here (the late steps' sigma < 0.3), so the
    # comparison above does tell the floors apart.
    assert (ref(0.05) - ref(0.3)).abs().max() > 0.1


def test_rollout_chain_is_drawn_from_the_scored_step_gaussians(pretrained, tmp_path):
    """Each fine-tuned step of a sampled chain is x_{j+1} = mean_j + std_j * z, z ~ N(0, 1) clipped at
    +-noise_clip, with mean_j/std_j the Gaussian that the log-probs score (actor.eta, sampling floor)."""
    m = dppo.Method(make_cfg(pretrained, tmp_path, min_sampling_std=0.2, min_logprob_std=0.1))
    actor = m.actor
    obs_n = actor.normalize_obs(torch.as_tensor(m.obs, dtype=torch.float32)).repeat(300, 1, 1)  # 900 chains
    torch.manual_seed(2)
    _, chain = actor.sample(obs_n)
    full_idx = list(range(actor.ft_start, actor.K))
    full_chain = torch.cat([torch.zeros(len(obs_n), actor.ft_start, 4, 2), chain], 1)
    with torch.no_grad():
        means, stds = step_distributions(actor.policy.denoiser, actor.policy.schedule, obs_n, full_chain,
                                         actor.timesteps, eta=1.0, std_floor=0.2, step_indices=full_idx)
    z = (chain[:, 1:] - means) / stds                       # [900, J, Ta, Da]
    assert z.abs().max() <= 3.0 + 1e-4                     # noise_clip (3 sigma)
    z_std, z_mean = z.transpose(0, 1).flatten(1).std(-1), z.transpose(0, 1).flatten(1).mean(-1)
    # N(0, 1) clamped at +-3 has std 0.9975; 7200 draws per step: standard error ~0.008.
    assert torch.all((z_std > 0.96) & (z_std < 1.04)), z_std
    assert torch.all(z_mean.abs() < 0.05), z_mean


def test_ratio_is_one_before_first_update(pretrained, tmp_path):
    m = dppo.Method(make_cfg(pretrained, tmp_path))
    b = m.rollout()
    out = m.pair_losses(b, torch.randperm(b["old_logp"].numel())[:25])
    assert torch.allclose(out["ratio"], torch.ones_like(out["ratio"]), atol=1e-5), out["ratio"]
    assert float(out["approx_kl"]) < 1e-8


def test_clip_schedule_monotone_from_noisiest_to_last():
    c = dppo.clip_schedule(10, 1e-3, 1e-2, 3.0)
    assert c[0].item() == pytest.approx(1e-3) and c[-1].item() == pytest.approx(1e-2)
    assert bool((c[1:] > c[:-1]).all())


def test_pair_losses_apply_clip_coef_of_each_pairs_own_step(pretrained, tmp_path):
    """pair_losses clips the ratio of pair (s, j) with clip_coefs[j] (index 0 = noisiest step)."""
    m = dppo.Method(make_cfg(pretrained, tmp_path))
    b = m.rollout()
    _perturb_finetuned_denoiser(m.actor)   # ratios != 1
    J = m.actor.J
    m.clip_coefs = torch.tensor([0.0, 0.0, 1e3, 1e3])   # noisy half always clipped, late half never
    S = b["old_logp"].shape[0] * b["old_logp"].shape[1]
    with torch.no_grad():
        ratio_all = (m.actor.chain_log_probs(b["obs_n"].flatten(0, 1), b["chain"].flatten(0, 1))
                     - b["old_logp"].flatten(0, 1)).exp()   # [S, J]
    adv = b["advantages"].flatten()
    for j in range(J):
        idx = torch.arange(S) * J + j
        with torch.no_grad():
            out = m.pair_losses(b, idx)
        r = ratio_all[:, j]
        torch.testing.assert_close(out["ratio"], r, rtol=1e-5, atol=1e-6)
        c = float(m.clip_coefs[j])
        a = adv * m.cfg.gamma_denoising ** (J - 1 - j)
        pg = torch.max(-a * r, -a * torch.clamp(r, 1 - c, 1 + c)).mean()
        assert float(out["clipfrac"]) == pytest.approx(float(((r - 1).abs() > c).float().mean())), j
        assert float(out["pg_loss"]) == pytest.approx(float(pg), rel=1e-5, abs=1e-7), j
        if j < 2:
            assert float(out["clipfrac"]) > 0.9, j   # clip 0: (almost) every ratio != 1 is clipped
        else:
            assert float(out["clipfrac"]) == 0.0, j
    # A mixed minibatch, as update() draws it: same per-pair clip coefficients.
    idx = torch.randperm(S * J, generator=torch.Generator().manual_seed(0))[:40]
    s, j = idx // J, idx % J
    with torch.no_grad():
        out = m.pair_losses(b, idx)
    r, c = ratio_all[s, j], m.clip_coefs[j]
    a = adv[s] * m.cfg.gamma_denoising ** (J - 1 - j).float()
    pg = torch.max(-a * r, -a * torch.minimum(torch.maximum(r, 1 - c), 1 + c)).mean()
    assert float(out["pg_loss"]) == pytest.approx(float(pg), rel=1e-5, abs=1e-7)
    assert float(out["clipfrac"]) == pytest.approx(float(((r - 1).abs() > c).float().mean()))


def test_deterministic_eval_is_plain_ddim_eta0(pretrained, tmp_path):
    """sample(deterministic=True) = the eta-0, floor-free DDIM sampler from the same initial noise
    (fine-tuned denoiser on the last J steps, frozen base before), clamped and unnormalized."""
    m = dppo.Method(make_cfg(pretrained, tmp_path))
    actor = m.actor
    _perturb_finetuned_denoiser(actor)   # so the per-step denoiser dispatch matters
    obs_n = actor.normalize_obs(torch.as_tensor(m.obs, dtype=torch.float32))
    late = set(actor.timesteps[-actor.J:])

    def denoiser(x, t, o):
        return (actor.policy.denoiser if int(t[0]) in late else actor.base)(x, t, o)

    torch.manual_seed(3)
    actions, chain = actor.sample(obs_n, deterministic=True)
    assert chain is None
    torch.manual_seed(3)
    noise = torch.randn(3, 4, 2)
    with torch.no_grad():
        x0 = diffusion_sampler.sample(denoiser, actor.policy.schedule, obs_n, actor.timesteps, noise=noise,
                                      eta=0.0).actions
    assert torch.equal(actions, actor.policy.action_normalizer.unnormalize(x0.clamp(-1.0, 1.0)))
    # The evaluation path (act_deterministic) is the same function of the seeded initial noise.
    torch.manual_seed(3)
    torch.testing.assert_close(torch.as_tensor(m.act_deterministic(m.obs)), actions, rtol=0, atol=0)


def test_only_last_steps_learn_and_frozen_copy_unchanged(pretrained, tmp_path):
    m = dppo.Method(make_cfg(pretrained, tmp_path, critic_warmup_iterations=0))
    base0 = {k: v.clone() for k, v in m.actor.base.state_dict().items()}
    ft0 = {k: v.clone() for k, v in m.actor.policy.denoiser.state_dict().items()}
    assert all(not p.requires_grad for p in m.actor.base.parameters())
    b = m.rollout()
    out = m.pair_losses(b, torch.arange(b["old_logp"].numel()))
    m.actor_opt.zero_grad()
    (out["pg_loss"] + out["v_loss"]).backward()
    assert all(p.grad is None for p in m.actor.base.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.actor.policy.denoiser.parameters())
    m.update(b)
    assert all(torch.equal(base0[k], v) for k, v in m.actor.base.state_dict().items())
    assert any(not torch.equal(ft0[k], v) for k, v in m.actor.policy.denoiser.state_dict().items())
    # The rollout uses the fine-tuned denoiser exactly on the last J timesteps.
    assert m.actor.ft_t == set(m.actor.timesteps[-m.actor.J:])


def test_a_batch_without_reward_trains_only_the_critic(pretrained, tmp_path):
    """Sparse tasks: rollouts with no success carry no advantage signal; the actor must not step on noise."""
    m = dppo.Method(make_cfg(pretrained, tmp_path, critic_warmup_iterations=0))
    b = m.rollout()
    assert b["reward"].abs().sum() > 0   # the toy env's reward is dense: the batch below is made reward-free
    b["reward"] = torch.zeros_like(b["reward"])
    ft0 = {k: v.clone() for k, v in m.actor.policy.denoiser.state_dict().items()}
    critic0 = {k: v.clone() for k, v in m.critic.state_dict().items()}
    stats = m.update(b)
    assert stats["actor_trained"] == 0.0 and stats["reward_in_batch"] == 0.0
    assert all(torch.equal(ft0[k], v) for k, v in m.actor.policy.denoiser.state_dict().items())
    assert any(not torch.equal(critic0[k], v) for k, v in m.critic.state_dict().items())


def test_actor_kl_stop_ends_the_actors_steps_once_a_minibatch_has_moved_that_far(pretrained, tmp_path):
    """actor_kl_stop: after the first actor step (approx-KL 0 on the first minibatch) a tiny threshold stops
    the actor for the rest of the update while the critic goes on; without it every minibatch steps."""
    def actor_steps(stop):
        torch.manual_seed(0)
        m = dppo.Method(make_cfg(pretrained, tmp_path, critic_warmup_iterations=0, actor_kl_stop=stop))
        b = m.rollout()
        seen, n = [p.detach().clone() for p in m.actor.policy.denoiser.parameters()], [0]
        step = m.actor_opt.step

        def counting_step(*a, **k):
            out = step(*a, **k)
            now = [p.detach().clone() for p in m.actor.policy.denoiser.parameters()]
            n[0] += not all(torch.equal(x, y) for x, y in zip(seen, now))
            seen[:] = now
            return out
        m.actor_opt.step = counting_step
        critic0 = [p.detach().clone() for p in m.critic.parameters()]
        stats = m.update(b)
        assert not all(torch.equal(a, c) for a, c in zip(critic0, m.critic.parameters()))
        return n[0], stats, -(-b["old_logp"].numel() // 20) * 2  # minibatches of 20 pairs x 2 epochs

    stopped, stats, _ = actor_steps(1e-30)
    assert stopped == 1 and stats["actor_kl_stopped"] == 1.0 and stats["actor_trained"] == 1.0
    free, stats, minibatches = actor_steps(None)
    assert free == minibatches and stats["actor_kl_stopped"] == 0.0


def test_gae_over_chunks_discounts_by_executed_steps():
    gamma, lam = 0.9, 0.95
    rewards = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[0.5], [0.7]])
    next_values = torch.tensor([[0.7], [1.3]])
    executed = torch.tensor([[4.0], [2.0]])
    zeros = torch.zeros(2, 1)
    adv, _ = compute_gae(rewards, values, next_values, zeros, zeros, gamma ** executed, lam)
    d1 = 2.0 + gamma**2 * 1.3 - 0.7
    d0 = 1.0 + gamma**4 * 0.7 - 0.5
    assert adv[1, 0].item() == pytest.approx(d1, rel=1e-6)
    assert adv[0, 0].item() == pytest.approx(d0 + gamma**4 * lam * d1, rel=1e-6)


def test_rollout_uses_gamma_power_executed(pretrained, tmp_path, monkeypatch):
    """The method feeds gamma^executed (per env, per chunk) to GAE."""
    m = dppo.Method(make_cfg(pretrained, tmp_path, gamma=0.9))
    seen = {}
    real = dppo.compute_gae

    def spy(rewards, values, next_values, terminated, dones, gamma, lam):
        seen["gamma"] = gamma
        return real(rewards, values, next_values, terminated, dones, gamma, lam)

    monkeypatch.setattr(dppo, "compute_gae", spy)
    m.rollout()
    g = seen["gamma"]
    assert g.shape == (6, 3)
    executed = torch.log(g) / np.log(0.9)
    assert torch.allclose(executed, executed.round(), atol=1e-4)
    assert executed.max().item() == pytest.approx(4) and executed.min().item() >= 1


def test_resume_continues_exactly(pretrained, tmp_path):
    """2 iterations + checkpoint + resume + 1 == 3 straight (run_finetune, checkpoint files)."""
    per_iter = 3 * 6 * 4  # upper bound of env steps per iteration; budgets in between cut by iteration
    a = make_cfg(pretrained, tmp_path / "a", budget_env_steps=2 * per_iter - 10)
    run_finetune(dppo.Method(a), a, method_name="dppo")
    a3 = dataclasses.replace(a, budget_env_steps=3 * per_iter - 10)
    resumed = dppo.Method(a3)
    run_finetune(resumed, a3, resume=True, method_name="dppo")
    c = make_cfg(pretrained, tmp_path / "c", budget_env_steps=3 * per_iter - 10)
    straight = dppo.Method(c)
    run_finetune(straight, c, method_name="dppo")
    assert resumed.iteration == straight.iteration == 3
    for (k, v1), v2 in zip(resumed.actor.state_dict().items(), straight.actor.state_dict().values()):
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6, msg=k)
    for v1, v2 in zip(resumed.critic.state_dict().values(), straight.critic.state_dict().values()):
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    assert resumed.env_steps == straight.env_steps
    # and something was learned at all (the comparison is not between two untouched copies)
    pre = load_pretrained(pretrained).policy.denoiser.state_dict()
    assert any(not torch.equal(pre[k], v) for k, v in straight.actor.policy.denoiser.state_dict().items())


# ---- the OOD curriculum (FinetuneConfig.curriculum) ----------------------------------------------
class LevelledPointMass(PointMassVecEnv):
    """PointMass with start levels: every episode succeeds at a level below `fail_from` and fails at or
    above it (1-step episodes); records every level it is set to."""

    levels_set: list = []

    def __init__(self, num_envs: int = 8, fail_from: float = 0.75):
        super().__init__(num_envs)
        self.level, self.fail_from = 0.0, fail_from

    def set_start_range(self, level: float) -> None:
        self.level = level
        LevelledPointMass.levels_set.append(level)

    def step(self, actions, active=None):
        active = self._move(actions, active)
        ok = np.full(self.num_envs, self.level < self.fail_from)
        return self._finish(self._obs(), ok.astype(np.float64), np.ones(self.num_envs, bool),
                            np.zeros(self.num_envs, bool), active, ok)


def test_next_start_level_widens_by_a_step_on_success_and_stops_at_the_ood_range():
    assert next_start_level(0.0, 0.79, 0.25, 0.8) == 0.0
    assert next_start_level(0.0, 0.8, 0.25, 0.8) == 0.25
    assert next_start_level(0.9, 1.0, 0.25, 0.8) == 1.0
    assert next_start_level(1.0, 1.0, 0.25, 0.8) == 1.0


def test_curriculum_widens_the_start_range_of_training_and_evaluation_envs(pretrained, tmp_path, monkeypatch):
    monkeypatch.setitem(ENV_FACTORIES, "toy-levels", lambda num_envs, **kw: LevelledPointMass(num_envs, **kw))
    LevelledPointMass.levels_set = []
    cfg = make_cfg(pretrained, tmp_path / "a", env="toy-levels", curriculum=True, curriculum_start=0.0,
                   curriculum_step=0.5, curriculum_threshold=0.8, eval_every_env_steps=1, budget_env_steps=3 * 72)  # 72 env steps an iteration
    method = dppo.Method(cfg)
    summary = run_finetune(method, cfg, method_name="dppo")
    curve = [r["start_level"] for r in summary_rows(tmp_path / "a")]
    # evaluations at 0 and 0.5 succeed (level widens), at 1.0 they fail (it stays: capped at the OOD range)
    assert curve[:3] == [0.0, 0.5, 1.0] and set(curve[3:]) <= {1.0}
    assert summary["start_level"] == 1.0
    assert method.env.env.level == 1.0  # the training env was moved too, not only the evaluation env
    assert LevelledPointMass.levels_set.count(0.5) == 2  # training and evaluation env, once each
    # resume keeps the level reached (not curriculum_start)
    resumed = dppo.Method(dataclasses.replace(cfg, budget_env_steps=4 * 72))
    run_finetune(resumed, dataclasses.replace(cfg, budget_env_steps=4 * 72), resume=True, method_name="dppo")
    assert resumed.env.env.level == 1.0


def test_curriculum_on_an_env_without_start_levels_is_refused(pretrained, tmp_path):
    cfg = make_cfg(pretrained, tmp_path / "b", curriculum=True, budget_env_steps=24)
    with pytest.raises(ValueError, match="set_start_range"):
        run_finetune(dppo.Method(cfg), cfg, method_name="dppo")


def summary_rows(out) -> list[dict]:
    import csv
    with open(out / "curve.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


class StatelessPointMass(PointMassVecEnv):
    """PointMass that cannot export its state (as the T1 task envs cannot export their physics)."""

    def state_dict(self):
        return None


def test_resume_on_an_env_without_state_starts_fresh_episodes_and_keeps_the_learner(pretrained, tmp_path, monkeypatch):
    monkeypatch.setitem(ENV_FACTORIES, "toy-stateless", lambda num_envs, **kw: StatelessPointMass(num_envs, **kw))
    cfg = make_cfg(pretrained, tmp_path / "s", env="toy-stateless", budget_env_steps=2 * 72)
    first = dppo.Method(cfg)
    run_finetune(first, cfg, method_name="dppo")  # checkpoints every iteration: must not raise
    more = dataclasses.replace(cfg, budget_env_steps=first.env_steps + 72)
    resumed = dppo.Method(more)
    with pytest.warns(UserWarning, match="fresh episodes"):
        resumed.load_state_dict(torch.load(sorted((tmp_path / "s" / "checkpoints").glob("*.pt"))[-1],
                                           weights_only=False)["method"])
    assert (resumed.iteration, resumed.env_steps) == (first.iteration, first.env_steps)
    for p_first, p_loaded in zip(first.actor.parameters(), resumed.actor.parameters()):
        assert torch.equal(p_first, p_loaded)  # the learner is the checkpoint's, the episodes are new
    resumed = dppo.Method(more)
    with pytest.warns(UserWarning, match="fresh episodes"):
        run_finetune(resumed, more, resume=True, method_name="dppo")
    assert resumed.iteration > first.iteration and resumed.env_steps >= more.budget_env_steps


def test_logprob_clamp_below_the_mode_density_is_refused(pretrained, tmp_path):
    """A log-prob floor of 0.02 has mode density 2.99: the default clamp max 2 would flatten every sample
    near its mean (zero gradient), so it is refused with the shifted bounds to pass."""
    with pytest.raises(ValueError, match=r"--logprob-min -3\.39 --logprob-max 3\.61"):
        dppo.Method(make_cfg(pretrained, tmp_path, min_sampling_std=0.02, min_logprob_std=0.02))
    dppo.Method(make_cfg(pretrained, tmp_path / "ok", min_sampling_std=0.02, min_logprob_std=0.02,
                         logprob_min=-3.39, logprob_max=3.61))


def test_logprob_floor_wider_than_the_sampling_floor_warns(pretrained, tmp_path):
    with pytest.warns(UserWarning, match="5.0x wider than the one sampled"):
        dppo.Method(make_cfg(pretrained, tmp_path, min_sampling_std=0.02, min_logprob_std=0.1))
