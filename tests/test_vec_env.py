"""VecEnv contract: auto-reset with final observations, episode stats, action chunks, gymnasium adapter."""
from __future__ import annotations

import numpy as np
import pytest

from refine_dp_training.envs.chunked import ChunkedVecEnv
from refine_dp_training.envs.toy import CounterVecEnv, PointMassVecEnv


def chunk(n, ta, value=0.0):
    """Chunk whose action k of env i is 100 i + k (+ value), so executed actions are traceable."""
    return (100 * np.arange(n)[:, None, None] + np.arange(ta)[None, :, None] + value).astype(np.float64)


def test_chunked_counts_env_steps_and_stops_each_env_at_its_episode_end():
    inner = CounterVecEnv(lengths=[5, 7])
    env = ChunkedVecEnv(inner, obs_horizon=3, act_steps=4)
    hist = env.reset()
    # history at the episode start: the first observation repeated To times
    assert hist.shape == (2, 3, 2) and (hist == hist[:, :1]).all() and (hist[:, :, 0] == 0).all()

    hist, r, term, trunc, info = env.step(chunk(2, 6))
    assert env.env_steps == 8 and info["executed_steps"].tolist() == [4, 4]
    assert r.tolist() == [4, 4] and not trunc.any()
    assert hist[0, :, 0].tolist() == [2, 3, 4]  # the last To observations, oldest first

    hist, r, term, trunc, info = env.step(chunk(2, 6, value=0.5))
    # env 0 ends after 1 more step (t=5), env 1 after 3 (t=7): each stops at its own end
    assert info["executed_steps"].tolist() == [1, 3] and env.env_steps == 8 + 4
    assert r.tolist() == [1, 3] and trunc.tolist() == [True, True]
    assert [len(x) for x in inner.executed] == [5, 7]  # nothing executed in the next episode
    assert inner.executed[0][-1][0] == 0.5 and inner.executed[1][-1][0] == 102.5
    # final history ends at the last observation of the finished episode ...
    assert info["final_obs"][0, :, 0].tolist() == [3, 4, 5] and info["final_obs"][1, :, 0].tolist() == [5, 6, 7]
    # ... and the returned history is the new episode's first observation, repeated
    assert hist[0].tolist() == [[0, 1]] * 3 and hist[1].tolist() == [[0, 1]] * 3
    assert info["episode"]["length"].tolist() == [5, 7]  # episode lengths in env steps, not chunks
    assert inner.episode_stats.total_env_steps == env.env_steps


def test_chunked_discounted_reward_and_discount_factor():
    env = ChunkedVecEnv(CounterVecEnv(lengths=[10, 2]), obs_horizon=1, act_steps=4, discount=0.5)
    env.reset()
    _, r, _, _, info = env.step(chunk(2, 4))
    assert r.tolist() == [1 + 0.5 + 0.25 + 0.125, 1 + 0.5]
    assert info["chunk_discount"].tolist() == [0.5 ** 4, 0.5 ** 2]


def test_chunked_refuses_env_without_active_mask():
    inner = CounterVecEnv(lengths=[3])
    inner.supports_active_mask = False
    with pytest.raises(ValueError, match="active"):
        ChunkedVecEnv(inner, obs_horizon=2, act_steps=2)
    ChunkedVecEnv(inner, obs_horizon=2, act_steps=1)  # single steps never need a mask


def test_auto_reset_final_obs_and_episode_stats():
    env = PointMassVecEnv(2, max_steps=3)
    obs = env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(np.zeros((2, 2)))
    obs2, r, term, trunc, info = env.step(np.zeros((2, 2)))
    assert trunc.all() and not term.any()
    np.testing.assert_allclose(info["final_obs"][:, 2], 1.0)  # t / max_steps of the finished episode
    np.testing.assert_allclose(obs2[:, 2], 0.0)               # already the next episode
    assert info["episode"]["length"].tolist() == [3, 3]
    np.testing.assert_allclose(info["episode"]["return"], 3 * r, rtol=1e-6)
    assert env.episode_stats.drain()["length"] == [3, 3] and env.episode_stats.drain()["length"] == []
    with pytest.raises(ValueError, match="act_dim"):
        env.step(np.zeros((2, 3)))


def test_gym_adapter_hopper_autoreset_and_exact_state_restore():
    from refine_dp_training.envs.gym_adapter import GymVecEnv

    env = GymVecEnv(env_id="Hopper-v5", num_envs=2, env_kwargs={"max_episode_steps": 5},
                    success_fn=lambda info, te, tr: tr and not te)
    obs = env.reset(seed=3)
    assert obs.shape == (2, 11) and env.act_dim == 3 and (env.action_high == 1).all()
    for _ in range(4):
        env.step(np.zeros((2, 3)))
    state = env.state_dict()
    acts = np.random.default_rng(0).uniform(-1, 1, (6, 2, 3))
    run = [env.step(a) for a in acts]
    assert run[0][3].all() and "episode" in run[0][4] and run[0][4]["episode"]["length"].tolist() == [5, 5]
    assert run[0][4]["episode"]["success"].all()
    assert not np.allclose(run[0][4]["final_obs"], run[0][0])  # final obs kept apart from the reset obs
    env.load_state_dict(state)
    again = [env.step(a) for a in acts]
    for a, b in zip(run, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # an inactive env is not stepped
    before = env.step(np.zeros((2, 3)))[0]
    after = env.step(np.ones((2, 3)), active=np.array([True, False]))[0]
    np.testing.assert_array_equal(after[1], before[1])
    env.close()
