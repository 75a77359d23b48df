"""DSRL (latent-noise steering of a frozen DP) and its SAC: counting, determinism, the noise bound, resume."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
from refine_dp_planner.policy import DiffusionPolicy
from refine_dp_training.envs.chunked import ChunkedVecEnv
from refine_dp_training.envs.toy import BanditVecEnv, CounterVecEnv
from refine_dp_training.finetune import dsrl as dsrl_mod
from refine_dp_training.finetune.common import Pretrained, latest_checkpoint, load_checkpoint, make_vec_env
from refine_dp_training.finetune.dsrl import DSRL, DSRLConfig, NoiseDecoder
from refine_dp_training.finetune.sac import SAC, ReplayBuffer, SACConfig, polyak_update

DDIM = 3


def tiny_dp(obs_dim: int, act_dim: int, To: int = 2, Ta: int = 4, seed: int = 0) -> Pretrained:
    torch.manual_seed(seed)
    cfg = DiffusionPolicyConfig(obs_dim=obs_dim, action_dim=act_dim, obs_horizon=To, action_horizon=Ta,
                                num_train_timesteps=20, ddim_steps=DDIM, backbone="mlp",
                                mlp=MLPDenoiserConfig(hidden_dims=[32, 32], step_embed_dim=8))
    dp = DiffusionPolicy(cfg)
    rng = np.random.default_rng(seed)
    dp.fit_normalizers(rng.uniform(-2, 2, (64, obs_dim)), rng.uniform(-1, 1, (64, act_dim)))
    return Pretrained(kind="diffusion", policy=dp.eval(), obs_horizon=To, action_horizon=Ta, act_steps=Ta,
                      env=None, path=Path("tiny-dp"), checkpoint={})


def small_cfg(**kw) -> DSRLConfig:
    base = dict(num_envs=3, batch_size=8, learning_starts=0, utd=1.0, hidden_dim=16, hidden_layers=2,
                replay_capacity=1000, eval_episodes=2, eval_every_env_steps=0, checkpoint_every=5,
                tensorboard=False, progress=False, act_steps=3)
    return DSRLConfig(**(base | kw))


class DenoiserCounter:
    def __init__(self, dp):
        self.calls = 0
        dp.denoiser.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self.calls += 1


@pytest.mark.parametrize("variant", ["sac", "na"])
def test_one_denoising_pass_per_chunk_step_and_env_steps_count_executed_actions(variant):
    pre = tiny_dp(obs_dim=2, act_dim=1)
    counter = DenoiserCounter(pre.policy)
    lengths = [5, 7, 50]  # two envs end mid-chunk: chunks stop early there
    env = ChunkedVecEnv(CounterVecEnv(lengths), obs_horizon=2, act_steps=3, discount=0.99)
    method = DSRL(small_cfg(variant=variant), pre, env)
    iters = 12
    for _ in range(iters):
        method.train_iteration()
    executed = sum(len(x) for x in env.env.executed)
    assert method.env_steps == executed
    assert executed > iters * 3          # counted per action, not per chunk call (12 chunk calls)
    assert executed < iters * 3 * 3      # and only actions actually executed (early stops)
    assert method.num_updates > 0
    assert method.decoder.passes == iters + (2 * method.num_updates if variant == "na" else 0)
    # acting: exactly one DDIM pass (DDIM denoiser calls) per chunk step; NA's updates add 2 per update
    assert counter.calls == DDIM * method.decoder.passes


def test_same_noise_same_chunk_deterministic_ddim():
    pre = tiny_dp(obs_dim=3, act_dim=2)
    dec = NoiseDecoder(pre.policy, bound=1.5)
    obs = torch.randn(5, 2, 3)
    w = torch.randn(5, 8).clamp(-1.5, 1.5)
    a1, a2 = dec(obs, w), dec(obs, w.clone())
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)
    torch.testing.assert_close(a1, pre.policy.sample(obs, noise=w.reshape(5, 4, 2), eta=0.0))
    assert not torch.allclose(a1, dec(obs, -w))           # the noise does steer the chunk
    with pytest.raises(ValueError, match="noise_bound"):
        dec(obs, torch.full((5, 8), 1.6))


def test_noise_aliasing_actor_and_distillation_respect_the_bound():
    pre = tiny_dp(obs_dim=3, act_dim=2)
    seen = []
    original = NoiseDecoder.__call__

    def spy(self, obs, w):
        seen.append(float(w.abs().max()))
        return original(self, obs, w)

    env = ChunkedVecEnv(make_vec_env("toy-pointmass", 3), 2, 3, 0.99)
    method = DSRL(small_cfg(variant="na", noise_bound=1.5), pre, env)
    with torch.no_grad():  # push the actor's pre-tanh mean far out: the squash must still bound it
        method.sac.actor.net[-1].bias[: method.noise_dim] = 50.0
    NoiseDecoder.__call__ = spy
    try:
        for _ in range(8):
            method.train_iteration()
    finally:
        NoiseDecoder.__call__ = original
    assert method.num_updates > 0 and len(seen) == method.decoder.passes
    assert max(seen) <= 1.5 + 1e-6                               # acting, TD targets and distillation
    assert np.abs(method.replay.data["noise"][: len(method.replay)]).max() <= 1.5 + 1e-6
    obs = torch.randn(256, method.obs_feat) * 10
    with torch.no_grad():
        w, _ = method.sac.actor.sample(obs)
    assert float(w.abs().max()) <= 1.5 and float(method.sac.actor.deterministic(obs).detach().abs().max()) <= 1.5
    assert float(w.abs().max()) > 1.4                            # the box is used, not shrunk


def test_sac_improves_a_one_step_bandit_and_tunes_its_temperature():
    torch.manual_seed(0)
    env = BanditVecEnv(num_envs=16, obs_dim=2, act_dim=2, target=0.5)
    sac = SAC(2, 2, bound=1.0, cfg=SACConfig(hidden=(32, 32), actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3,
                                             init_alpha=0.2, target_entropy=-4.0))
    replay = ReplayBuffer(5000, {"obs": ((2,), np.float32), "action": ((2,), np.float32), "reward": ((), np.float32),
                                 "next_obs": ((2,), np.float32), "terminated": ((), np.float32),
                                 "discount": ((), np.float32)})
    obs = env.reset(seed=0)
    probe = torch.as_tensor(np.random.default_rng(1).uniform(-1, 1, (64, 2)), dtype=torch.float32)

    def score():
        a = sac.actor.deterministic(probe).detach().numpy()
        return float((1 - ((a - 0.5) ** 2).mean(-1)).mean())

    before, alpha0 = score(), sac.temperature.alpha.item()
    for _ in range(150):
        with torch.no_grad():
            a, _ = sac.actor.sample(torch.as_tensor(obs))
        nxt, r, term, _, info = env.step(a.numpy())
        replay.add(obs=obs, action=a.numpy(), reward=r.astype(np.float32), next_obs=info["final_obs"],
                   terminated=term.astype(np.float32), discount=np.full(16, 0.99, np.float32))
        obs = nxt
        for _ in range(2):
            sac.update(replay.sample(64))
    after = score()
    assert after > 0.97 and after > before + 0.05, (before, after)
    # entropy above the (low) target -> the temperature must have gone down
    assert sac.temperature.alpha.item() < alpha0 * 0.8
    # and the target network trails the critic by polyak averaging, exactly
    tgt, src = copy.deepcopy(sac.critic_target), sac.critic
    polyak_update(tgt, src, 0.25)
    for pt, p0, ps in zip(tgt.parameters(), sac.critic_target.parameters(), src.parameters()):
        torch.testing.assert_close(pt, 0.75 * p0 + 0.25 * ps)


def test_temperature_rises_when_entropy_is_below_target():
    sac = SAC(2, 2, bound=1.0, cfg=SACConfig(hidden=(8,), alpha_lr=1e-2, init_alpha=0.1, target_entropy=10.0))
    a0 = sac.temperature.alpha.item()
    for _ in range(20):
        sac.update_actor_and_alpha(torch.randn(32, 2))
    assert sac.temperature.alpha.item() > a0 * 1.1


def test_replay_buffer_wraps_and_resumes_sampling():
    buf = ReplayBuffer(5, {"x": ((2,), np.float32)}, seed=3)
    buf.add(x=np.arange(14, dtype=np.float32).reshape(7, 2))
    assert len(buf) == 5 and buf.pos == 2
    assert buf.data["x"][0].tolist() == [10, 11]               # oldest rows overwritten
    state = copy.deepcopy(buf.state_dict())
    a = buf.sample(4)["x"]
    buf2 = ReplayBuffer(5, {"x": ((2,), np.float32)}, seed=99)
    buf2.load_state_dict(state)
    torch.testing.assert_close(buf2.sample(4)["x"], a)


def test_resume_continues_exactly(tmp_path):
    pre = tiny_dp(obs_dim=3, act_dim=2)

    def cfg(out, budget):
        return small_cfg(env="toy-pointmass", out=str(out), budget_env_steps=budget, checkpoint_every=4,
                         eval_every_env_steps=45, seed=3)

    full = dsrl_mod.run(cfg(tmp_path / "full", 180), pre=pre)
    dsrl_mod.run(cfg(tmp_path / "part", 90), pre=pre)
    resumed = dsrl_mod.run(cfg(tmp_path / "part", 180), resume=True, pre=pre)
    assert resumed["env_steps"] == full["env_steps"] >= 180
    a = load_checkpoint(latest_checkpoint(tmp_path / "full"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "part"))
    for key, value in a["method"]["sac"]["actor"].items():
        torch.testing.assert_close(b["method"]["sac"]["actor"][key], value, rtol=0, atol=0)
    assert a["method"]["num_updates"] == b["method"]["num_updates"] > 0
    curve_a = {r["env_steps"]: r["return_mean"] for r in a["curve"]}
    curve_b = {r["env_steps"]: r["return_mean"] for r in b["curve"]}
    common = set(curve_a) & set(curve_b)
    assert len(common) >= 3 and all(curve_a[k] == curve_b[k] for k in common)


# ---- defaults that hold on sparse rewards ---------------------------------------------------------
def test_defaults_scale_rewards_learn_the_plain_return_and_set_the_entropy_target_for_the_box():
    import math

    from scipy.stats import truncnorm

    cfg = DSRLConfig()
    assert cfg.reward_scale and cfg.bound_targets and cfg.critic_layer_norm and not cfg.backup_entropy
    method = DSRL(small_cfg(), tiny_dp(obs_dim=4, act_dim=2), ChunkedVecEnv(make_vec_env("toy-sparse-reach", 3), 2, 3))
    # one nat per dimension below the DP's own noise N(0, I) truncated to the box; w is 4 x 2
    assert dsrl_mod.truncated_normal_entropy(1.5) == pytest.approx(float(truncnorm(-1.5, 1.5).entropy()))
    assert method.sac.temperature.target_entropy == pytest.approx(8 * (float(truncnorm(-1.5, 1.5).entropy()) - 1.0))
    assert not method.sac.cfg.backup_entropy and isinstance(method.sac.critic.q1[1], torch.nn.LayerNorm)
    assert not math.isnan(method.sac.temperature.target_entropy)


def test_td_targets_cannot_exceed_the_returns_seen():
    method = DSRL(small_cfg(), tiny_dp(obs_dim=4, act_dim=2), ChunkedVecEnv(make_vec_env("toy-sparse-reach", 3), 2, 3))
    # sparse returns seen: a success (reward 1) after two empty chunk steps, for env 0
    for r, d in (([0, 0, 0], [0, 0, 0]), ([0, 0, 0], [0, 0, 0]), ([1, 0, 0], [1, 0, 0])):
        method.scaler.update(np.array(r, float), np.array(d, bool))
    lo, hi = method.value_bounds()
    assert lo == 0.0 and hi == pytest.approx(method.scaler.scale)         # return 1, in scaled units
    with torch.no_grad():                                                 # a critic that overestimates wildly
        for q in (method.sac.critic_target.q1, method.sac.critic_target.q2):
            q[-1].bias.fill_(50.0)
    b = {"next_obs": torch.randn(32, method.obs_feat), "reward": torch.ones(32) * hi,
         "discount": torch.full((32,), 0.97), "terminated": torch.zeros(32)}
    assert float(method.sac.td_target(b, method.value_bounds()).max()) == pytest.approx(hi)
    assert float(method.sac.td_target(b).max()) > 40                      # unclipped, bootstrapping inflates


def _critic_values_after_training(cfg_overrides: dict) -> tuple[float, float]:
    """(largest noise-critic value on the replay's states, the largest RAW return seen) after a short
    DSRL-SAC run on the sparse toy task, the critic's values converted back to raw reward units."""
    torch.set_num_threads(1)   # tiny networks: a second thread only adds contention
    pre = tiny_dp(obs_dim=4, act_dim=2)
    env = ChunkedVecEnv(make_vec_env("toy-sparse-reach", 4), 2, 3, discount=0.99)
    # tau 0.2: values propagate through the target network in tens of updates, not thousands
    method = DSRL(small_cfg(num_envs=4, batch_size=32, hidden_dim=16, utd=2.0, tau=0.2, seed=0, **cfg_overrides),
                  pre, env)
    for _ in range(50):
        method.train_iteration()
    n = len(method.replay)
    obs = method.encode(torch.as_tensor(method.replay.data["obs"][:n]))
    with torch.no_grad():
        q = method.sac.critic.min_q(obs, method.sac.actor.deterministic(obs))
    scale = method.scaler.scale if method.cfg.reward_scale else 1.0
    return float(q.max()) / scale, method.scaler.ret_max


def test_sparse_reward_values_stay_within_the_return_with_the_defaults_and_not_with_the_old_ones():
    q_max, ret_max = _critic_values_after_training({})
    assert ret_max == pytest.approx(1.0) and q_max <= 1.0 + 1e-4
    old = {"init_alpha": 0.1, "backup_entropy": True, "reward_scale": False, "bound_targets": False,
           "target_entropy": -8.0}   # the first defaults: soft-Q targets, unscaled, unclipped
    q_old, _ = _critic_values_after_training(old)
    assert q_old > 1.5   # the entropy bonus alone is worth more than any return of the task
