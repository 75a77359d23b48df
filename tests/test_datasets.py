"""Demonstration dataset format (npz shards) and diffusion-policy windowing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refine_dp_training.data.episodes import EpisodeDataset, EpisodeWriter
from refine_dp_training.data.windows import WindowDataset, compute_stats


def make_episode(i: int, T: int, obs_dim=3, act_dim=2):
    """Episode whose every value encodes (episode i, step t): obs[t] = 1000 i + t."""
    t = np.arange(T, dtype=np.float32)
    obs = (1000 * i + t)[:, None].repeat(obs_dim, 1)
    actions = (1000 * i + 100 + t)[:, None].repeat(act_dim, 1)
    return obs, actions, t * 0.1


def write(root, n=7, per_shard=3, **kw):
    with EpisodeWriter(root, 3, 2, obs_fields=[("pos", 2), ("t", 1)], action_fields=[("vel", 2)],
                       control_rate_hz=10.0, source="test", episodes_per_shard=per_shard, **kw) as w:
        for i in range(n):
            obs, act, rew = make_episode(i, 4 + i)
            w.add_episode(obs, act, rew, success=i % 2 == 0, terminated=np.eye(4 + i)[-1].astype(bool))


def test_shards_round_trip(tmp_path):
    write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json", "shard_00000.npz", "shard_00001.npz",
                                                          "shard_00002.npz"]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["num_episodes"] == 7 and meta["num_steps"] == sum(4 + i for i in range(7))
    assert meta["obs_fields"][1] == {"name": "t", "start": 2, "size": 1} and meta["control_rate_hz"] == 10.0
    ds = EpisodeDataset(tmp_path)
    assert len(ds) == 7 and ds.field_slice("t") == slice(2, 3)
    for i, ep in enumerate(ds.episodes):
        obs, act, rew = make_episode(i, 4 + i)
        np.testing.assert_array_equal(ep["obs"], obs)
        np.testing.assert_array_equal(ep["actions"], act)
        np.testing.assert_allclose(ep["rewards"], rew)
        assert ep["success"] == (i % 2 == 0) and ep["terminated"][-1] and not ep["terminated"][:-1].any()


def test_unflushed_episodes_are_not_visible_and_no_tmp_files(tmp_path):
    w = EpisodeWriter(tmp_path, 3, 2, episodes_per_shard=2)
    for i in range(3):
        w.add_episode(*make_episode(i, 5), success=True)
    # "killed" here: the third episode is still buffered; the dataset on disk is complete and consistent
    ds = EpisodeDataset(tmp_path)
    assert len(ds) == 2 and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileExistsError):
        EpisodeWriter(tmp_path, 3, 2)


def test_bad_episode_is_rejected_with_a_clear_error(tmp_path):
    w = EpisodeWriter(tmp_path, 3, 2)
    obs, act, rew = make_episode(0, 5)
    with pytest.raises(ValueError, match="obs \\[T, 3\\]"):
        w.add_episode(obs[:, :2], act, rew, success=True)
    obs[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        w.add_episode(obs, act, rew, success=True)


def test_split_is_by_episode_and_seeded(tmp_path):
    write(tmp_path, n=10, per_shard=4)
    ds = EpisodeDataset(tmp_path)
    train, val = ds.split(0.2, seed=1)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert ds.split(0.2, seed=1) == (train, val)
    assert any(ds.split(0.2, seed=s)[1] != val for s in range(2, 6))
    windows = WindowDataset([ds[i] for i in train], obs_horizon=2, action_horizon=3)
    episodes_seen = set((windows.obs[windows.obs_idx.flatten()][:, 0] // 1000).long().tolist())
    assert episodes_seen == set(train)  # no window of a validation episode


def test_windows_pad_both_edges_on_a_five_step_episode():
    ep = {"obs": np.arange(5, dtype=np.float32)[:, None], "actions": (10 + np.arange(5, dtype=np.float32))[:, None]}
    ds = WindowDataset([ep], obs_horizon=3, action_horizon=4)
    assert len(ds) == 5
    expected = {  # t: (obs history, action chunk)
        0: ([0, 0, 0], [10, 11, 12, 13]),   # first obs repeated before the start
        1: ([0, 0, 1], [11, 12, 13, 14]),
        2: ([0, 1, 2], [12, 13, 14, 14]),   # last action repeated past the end
        3: ([1, 2, 3], [13, 14, 14, 14]),
        4: ([2, 3, 4], [14, 14, 14, 14]),
    }
    for t, (o, a) in expected.items():
        item = ds[t]
        assert item["obs"].shape == (3, 1) and item["action"].shape == (4, 1)
        assert item["obs"][:, 0].tolist() == o, t
        assert item["action"][:, 0].tolist() == a, t
    inside = WindowDataset([ep], obs_horizon=3, action_horizon=4, max_action_pad=0)
    assert len(inside) == 2 and inside[1]["action"][:, 0].tolist() == [11, 12, 13, 14]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["obs"].shape == (5, 3, 1) and batch["action"].shape == (5, 4, 1)


def test_stats_over_all_steps():
    eps = [{"obs": np.array([[0.0, 1], [2, 1]]), "actions": np.array([[1.0], [3]])},
           {"obs": np.array([[4.0, 1]]), "actions": np.array([[-1.0]])}]
    s = compute_stats(eps)
    np.testing.assert_allclose(s["obs"]["min"], [0, 1]) and np.testing.assert_allclose(s["obs"]["max"], [4, 1])
    np.testing.assert_allclose(s["obs"]["mean"], [2, 1])
    np.testing.assert_allclose(s["action"]["std"], [np.std([1, 3, -1])], rtol=1e-6)


def test_medium_checkpoint_is_closest_to_fraction_of_best(tmp_path):
    from refine_dp_training.benchmarks.hopper.collect_demos import choose_medium

    rows = []
    for it, ret in [(0, 100.0), (10, 900.0), (20, 1300.0), (30, 3000.0), (40, 1250.0)]:
        ck = tmp_path / f"model_{it}.pt"
        ck.write_bytes(b"x")
        rows.append({"iteration": it, "env_steps": it * 100, "return": ret, "checkpoint": str(ck)})
    rows.append({"iteration": 50, "env_steps": 5000, "return": 1200.0, "checkpoint": str(tmp_path / "gone.pt")})
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    chosen = choose_medium(tmp_path, 0.4)
    # target 0.4 x 3000 = 1200, searched on the rising part (before the first return >= 0.8 x 3000,
    # iteration 30): 1300 at iteration 20, not the later dip to 1250 nor the missing file's 1200
    assert chosen["iteration"] == 20 and chosen["best_return"] == 3000.0 and chosen["target_return"] == 1200.0
    assert choose_medium(tmp_path, 0.4, rising_until=1.01)["iteration"] == 40  # whole curve: closest is the dip
