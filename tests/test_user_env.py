"""A user's own task through the public surface: env kwargs and the module:Id route, Dict observations,
sizes checked before anything trains, datasets validated on read, `refine-dp eval policy`, success rates
said, a budget that is a budget, and finetune's policy.pt through `refine-dp export planner`."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from refine_dp_training.data.episodes import DatasetError, EpisodeDataset, EpisodeWriter
from refine_dp_training.evalstats import describe, wilson_interval
from refine_dp_training.finetune.common import make_vec_env
from refine_dp_training.pretrain.artifacts import save_policy_file
from test_dsrl import tiny_dp

REACH_MODULE_ID = "refine_dp_training.benchmarks.reach.env:SparseReach-v0"


def sparse_demos(root, episodes=6, obs_dim=4, act_dim=2, env_id="toy-sparse-reach", **kw):
    """Demonstrations of the toy sparse reach task (the goal-seeking controller), in the documented format."""
    env = make_vec_env("toy-sparse-reach", 1)
    with EpisodeWriter(root, obs_dim, act_dim, control_rate_hz=10.0, source="test",
                       info={"env_id": env_id} if env_id else {}, episodes_per_shard=3, **kw) as w:
        for e in range(episodes):
            obs, rows = env.reset(seed=e), {"obs": [], "actions": [], "rewards": []}
            while True:
                a = np.clip((obs[:, 2:] - obs[:, :2]) * 3, -1, 1)
                rows["obs"].append(obs[0][:obs_dim]), rows["actions"].append(a[0][:act_dim])
                obs, r, term, trunc, info = env.step(a)
                rows["rewards"].append(r[0])
                if term[0] or trunc[0]:
                    break
            w.add_episode(np.array(rows["obs"]), np.array(rows["actions"]), np.array(rows["rewards"]), bool(term[0]))
    return root


def tiny_dp_file(path, obs_dim=4, act_dim=2, env="toy-sparse-reach"):
    pre = tiny_dp(obs_dim=obs_dim, act_dim=act_dim)
    pre.policy.config.act_steps = 3
    path.parent.mkdir(parents=True, exist_ok=True)
    save_policy_file(path, pre.policy, None, {"env": env})
    return path


# ---- bringing an env ------------------------------------------------------------------------------
def test_env_kwargs_reach_the_env_from_the_command_line():
    from refine_dp_training.finetune.cli import json_object
    from refine_dp_training.finetune.dsrl import DSRLConfig

    env = make_vec_env("toy-sparse-reach", 2, json_object('{"max_steps": 7, "radius": 0.3}'))
    assert (env.max_steps, env.radius) == (7, 0.3)
    gym_env = make_vec_env(REACH_MODULE_ID, 1, {"threshold": 0.05})   # the module:Id route, kwargs to the wrapper
    assert gym_env.envs[0].get_wrapper_attr("threshold") == 0.05
    assert "env_kwargs" in DSRLConfig().to_dict()
    with pytest.raises(Exception, match="JSON"):
        json_object("{threshold: 1}")


def test_unknown_env_and_module_errors_say_what_to_do():
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.tasks'"):
        make_vec_env("no_such_pkg.tasks:Task-v0", 1)
    with pytest.raises(ValueError, match="did not register 'Nope-v0'"):
        make_vec_env("refine_dp_training.benchmarks.reach.env:Nope-v0", 1)
    with pytest.raises(ValueError, match="unknown env 'NoSuchTask-v3'"):
        make_vec_env("NoSuchTask-v3", 1)


def test_dict_observations_flatten_in_the_dicts_key_order_and_success_comes_from_is_success():
    env = make_vec_env("SparseReach-v0", 2, {"threshold": 1.0, "max_speed": 100.0})  # every step a success
    assert env.obs_fields == [("achieved_goal", 2), ("desired_goal", 2), ("observation", 6)] and env.obs_dim == 10
    obs = env.reset(seed=3)
    inner = env.envs[0].unwrapped
    np.testing.assert_allclose(obs[0, :2], inner.get_body_com("fingertip")[:2], atol=1e-6)
    np.testing.assert_allclose(obs[0, 2:4], inner.get_body_com("target")[:2], atol=1e-6)
    _, reward, terminated, _, info = env.step(np.zeros((2, 2)))
    assert info["success"].all() and terminated.all() and (reward == 1).all()
    assert info["episode"]["success"].all()


# ---- sizes up front ---------------------------------------------------------------------------------
def test_pretrain_refuses_a_dataset_of_another_env_before_training(tmp_path, capsys):
    from refine_dp_training.pretrain import cli
    from refine_dp_training.pretrain.config import PRESETS

    assert all("env" not in p for p in PRESETS.values())          # a preset never picks the evaluation env
    data = sparse_demos(tmp_path / "demos")
    with pytest.raises(ValueError, match=r"env 'Hopper-v5' has observation size 11 and action size 3, but dataset"):
        cli.main(["--preset", "hopper", "--data", str(data), "--out", str(tmp_path / "dp"), "--env", "Hopper-v5"])
    assert not (tmp_path / "dp" / "checkpoints").exists()
    # without --env: the dataset's own env, said aloud; its success rate is printed at the end
    cli.main(["--preset", "hopper", "--data", str(data), "--out", str(tmp_path / "dp2"), "--steps", "20",
              "--eval-every", "20", "--eval-episodes", "4", "--val-every", "20", "--no-progress", "--no-tensorboard"])
    out = capsys.readouterr().out
    assert "evaluating in toy-sparse-reach (recorded in the dataset's metadata.json)" in out
    assert re.search(r"success \S+ \[\S+, \S+\] \(\d/4\)", out)


@pytest.mark.parametrize("method", ["dppo", "residual", "dsrl-sac", "ppo-gaussian"])
def test_finetune_refuses_a_policy_for_another_env_before_training(tmp_path, method):
    from refine_dp_training.finetune import cli

    dp = tiny_dp_file(tmp_path / "dp" / "policy.pt", obs_dim=3)       # a policy for another env (obs 3)
    extra = ["--dataset", str(sparse_demos(tmp_path / "d", obs_dim=3))] if method == "ppo-gaussian" else []
    with pytest.raises(ValueError, match="env 'toy-sparse-reach' has observation size 4 and action size 2, but"):
        cli.main(["--method", method, "--pretrained", str(dp), "--env", "toy-sparse-reach", "--out",
                  str(tmp_path / "ft"), "--no-progress", "--no-tensorboard", *extra])
    assert not (tmp_path / "ft" / "checkpoints").exists()


# ---- bad datasets -------------------------------------------------------------------------------
def _rewrite_shard(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    np.savez(path, **arrays)


def test_reader_names_the_shard_and_field_of_a_bad_dataset(tmp_path):
    root = sparse_demos(tmp_path / "d")
    shard = root / "shard_00001.npz"
    EpisodeDataset(root)  # the good one reads
    with np.load(shard) as z:
        obs, actions = z["obs"].copy(), z["actions"].copy()
    bad = obs.copy()
    bad[5, 1] = np.nan
    _rewrite_shard(shard, obs=bad)
    with pytest.raises(DatasetError, match=r"shard_00001.npz: field 'obs' has NaN/inf in 1 rows, the first at row 5"):
        EpisodeDataset(root)
    _rewrite_shard(shard, obs=obs, actions=None, action=actions)    # a misnamed key
    with pytest.raises(DatasetError, match=r"shard_00001.npz: no field 'actions' \(is 'action' meant to be it\?\)"):
        EpisodeDataset(root)
    _rewrite_shard(shard, action=None, actions=actions[:, :1])       # sizes that contradict metadata.json
    with pytest.raises(DatasetError, match=r"shard_00001.npz: field 'actions' has shape \(\d+, 1\), metadata.json"):
        EpisodeDataset(root)
    _rewrite_shard(shard, actions=actions)
    meta = json.loads((root / "metadata.json").read_text())
    meta["shards"][1]["num_steps"] += 1
    (root / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"shard_00001.npz: metadata.json lists \d+ episodes / \d+ steps"):
        EpisodeDataset(root)
    shard.unlink()
    with pytest.raises(DatasetError, match="shard_00001.npz: listed in metadata.json but missing"):
        EpisodeDataset(root)


# ---- evaluation and how it is said ------------------------------------------------------------------
def test_wilson_interval_and_the_success_line():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] == pytest.approx(0.8389, abs=1e-4)
    line = describe({"episodes": 10, "successes": 6, "success_mean": 0.6, "success_defined": True,
                     "return_mean": 0.6, "return_std": 0.49, "length_mean": 12.3})
    assert line == "success 0.60 [0.31, 0.83] (6/10), return 0.6 +- 0.49, length 12.3"
    assert "success" not in describe({"episodes": 3, "success_mean": 0.0, "success_defined": False,
                                      "return_mean": 2037.4, "return_std": 754.2})


def test_finetune_policy_evaluates_and_exports_through_the_cli(tmp_path, capsys):
    """`refine-dp finetune` -> policy.pt -> `eval policy` (torch) and `export planner` -> `eval policy` (ONNX)."""
    from refine_dp.cli import main as refine_dp

    dp = tiny_dp_file(tmp_path / "dp" / "policy.pt")
    ft = tmp_path / "ft"
    assert refine_dp(["finetune", "--method", "dsrl-sac", "--pretrained", str(dp), "--env", "toy-sparse-reach",
                      "--env-kwargs", '{"max_steps": 12}', "--out", str(ft), "--budget-env-steps", "100",
                      "--num-envs", "3", "--learning-starts", "30", "--batch-size", "16", "--hidden-dim", "16",
                      "--eval-episodes", "4", "--eval-every-env-steps", "0", "--no-progress", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"last evaluation: +success \S+ \[\S+, \S+\] \(\d/4\)", out) and "eval policy --policy" in out
    assert refine_dp(["eval", "policy", "--policy", str(ft / "policy.pt"), "--episodes", "7", "--num-envs", "3",
                      "--out", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert res["env"] == "toy-sparse-reach" and res["env_kwargs"] == {"max_steps": 12}   # recorded by finetune
    assert res["episodes"] == 7 and len(res["per_episode"]["success"]) == 7 and res["kind"] == "dsrl"
    assert max(res["per_episode"]["length"]) <= 12
    assert res["success_ci95"] == pytest.approx(list(wilson_interval(res["successes"], 7)))
    assert refine_dp(["export", "planner", "--checkpoint", str(ft / "policy.pt"), "--out", str(tmp_path / "eng")]) == 0
    assert refine_dp(["eval", "policy", "--policy", str(tmp_path / "eng"), "--env", "toy-sparse-reach",
                      "--env-kwargs", '{"max_steps": 12}', "--episodes", "7", "--num-envs", "3",
                      "--out", str(tmp_path / "ev_onnx")]) == 0
    onnx = json.loads((tmp_path / "ev_onnx" / "summary.json").read_text())
    assert onnx["backend"] == "onnxruntime" and onnx["per_episode"]["length"] == res["per_episode"]["length"]
    with pytest.raises(ValueError, match="observation size 3 and action size 2, but the policy .* has 4 and 2"):
        refine_dp(["eval", "policy", "--policy", str(ft / "policy.pt"), "--env", "toy-pointmass", "--episodes", "2",
                   "--out", str(tmp_path / "bad")])


# ---- a budget is a budget -------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["dppo", "residual"])
def test_budget_stops_within_one_chunk_step_of_all_envs(tmp_path, method):
    from refine_dp_training.finetune import cli

    dp = tiny_dp_file(tmp_path / "dp" / "policy.pt")
    per_iter = ["--n-steps", "50", "--ft-denoising-steps", "3"] if method == "dppo" else ["--steps-per-iter", "50"]
    cli.main(["--method", method, "--pretrained", str(dp), "--out", str(tmp_path / "ft"),   # no --env: the DP's
              "--num-envs", "4", "--budget-env-steps", "130", "--eval-episodes", "0", "--no-progress",
              "--no-tensorboard", *per_iter])   # one iteration would be 50 x 4 envs x 3 actions = 600 env steps
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert 130 <= summary["env_steps"] < 130 + 4 * 3
    assert summary["env"] == "toy-sparse-reach"   # recorded in the pretrained policy.pt
