"""The Hopper benchmark's sweep bookkeeping: the table and plot from run curves, and the skip/resume plan."""
import json

import pytest

from refine_dp_training.benchmarks.hopper import sweep


def _curve(path, returns, steps_per_eval=1000, wall_per_eval=10.0):
    path.mkdir(parents=True)
    rows = [{"env_steps": i * steps_per_eval, "wall_s": i * wall_per_eval, "return_mean": r, "success_mean": 0.0}
            for i, r in enumerate(returns)]
    (path / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_table_means_over_seeds(tmp_path):
    _curve(tmp_path / "dppo" / "seed0", [1000, 2000, 3000])
    _curve(tmp_path / "dppo" / "seed1", [1200, 1800, 2000])
    _curve(tmp_path / "dsrl-sac" / "seed0", [1100, 2500])
    out = sweep.report(type("A", (), {"root": str(tmp_path)})())
    rows = {r["method"]: r for r in out["rows"]}
    assert rows["dppo"]["seeds"] == 2 and rows["dppo"]["end"] == [3000, 2000]
    assert rows["dppo"]["best"] == [3000, 2000] and rows["dsrl-sac"]["env_steps"] == 1000
    table = (tmp_path / "table.md").read_text()
    assert "| dppo | 2 | 2,000 |" in table and "2500 +- 500" in table  # end return mean +- std over seeds
    assert rows["dppo"]["last3"] == [2000, 1666.6666666666667]
    assert "| pretrained DP (eta 0; dppo's step-0 evals) | - | 0 | - | 1100 +- 100 |" in table
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    sweep.report(type("A", (), {"root": str(tmp_path), "copy_to": str(tmp_path / "results")})())
    assert (tmp_path / "results" / "table.md").read_text() == table
    assert (tmp_path / "results" / "curves.png").stat().st_size > 10_000


def test_report_without_runs_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="hopper-sweep run"):
        sweep.report(type("A", (), {"root": str(tmp_path)})())


def test_run_skips_finished_and_resumes_started(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_run", lambda cmd, log: calls.append(cmd) or 0)
    monkeypatch.setattr(sweep, "PLAN", {"dppo": (100, [], "dp"), "residual": (100, [], "dp")})
    done = tmp_path / "dppo" / "seed0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"env_steps": 100}))
    started = tmp_path / "residual" / "seed0" / "checkpoints"
    started.mkdir(parents=True)
    (started / "ckpt_000001.pt").write_bytes(b"x")
    args = type("A", (), {"root": str(tmp_path), "seeds": [0], "methods": ["dppo", "residual"], "dp": "dp.pt",
                          "demos": "d", "mlp_steps": 1, "eval_episodes": 2})()
    sweep.run(args)
    assert len(calls) == 1 and "--resume" in calls[0] and "residual" in calls[0]


def test_run_extends_a_finished_run_whose_budget_was_raised(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_run", lambda cmd, log: calls.append(cmd) or 0)
    monkeypatch.setattr(sweep, "PLAN", {"dppo": (400, [], "dp")})
    out = tmp_path / "dppo" / "seed0"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "ckpt_000009.pt").write_bytes(b"x")
    (out / "summary.json").write_text(json.dumps({"env_steps": 120}))
    args = type("A", (), {"root": str(tmp_path), "seeds": [0], "methods": ["dppo"], "dp": "dp.pt",
                          "demos": "d", "mlp_steps": 1, "eval_episodes": 2})()
    sweep.run(args)
    (cmd,) = calls
    assert "--resume" in cmd and cmd[cmd.index("--budget-env-steps") + 1] == "400"


def test_final_eval_reevaluates_each_runs_last_checkpoint_and_caches_it(tmp_path):
    from types import SimpleNamespace

    from refine_dp_training.finetune import dsrl as dsrl_mod
    from refine_dp_training.finetune.common import (evaluate, latest_checkpoint, load_checkpoint,
                                                    make_chunked_env)
    from refine_dp_training.pretrain.artifacts import save_policy_file
    from test_dsrl import small_cfg, tiny_dp

    pre = tiny_dp(obs_dim=3, act_dim=2)
    dp_path = tmp_path / "dp" / "policy.pt"
    dp_path.parent.mkdir()
    pre.policy.config.act_steps = 3  # the planner contract: executed actions per chunk live in the config
    save_policy_file(dp_path, pre.policy, None, {"env": "toy-pointmass"})
    out = tmp_path / "bench" / "dsrl-sac" / "seed0"
    dsrl_mod.run(small_cfg(env="toy-pointmass", out=str(out), pretrained=str(dp_path), budget_env_steps=60,
                           eval_episodes=0, seed=1))
    args = SimpleNamespace(root=str(tmp_path / "bench"), dp=str(dp_path), episodes=4, seed=77)
    pretrained = sweep.final_eval(args)
    res = json.loads((out / "final_eval.json").read_text())
    assert res["episodes"] == 4 and res["seed"] == 77 and res["checkpoint"] == latest_checkpoint(out).name
    assert res["env_steps"] >= 60 and pretrained["dp"]["episodes"] == 4
    # the same figure as evaluating the trained actor by hand on the same new start states
    method = dsrl_mod.DSRL(small_cfg(env="toy-pointmass", pretrained=str(dp_path), seed=1))
    method.load_state_dict(load_checkpoint(latest_checkpoint(out))["method"])
    again = evaluate(method.act_deterministic, make_chunked_env("toy-pointmass", 4, 2, 3), 77)
    assert again["return_mean"] == pytest.approx(res["return_mean"])
    mtime = (out / "final_eval.json").stat().st_mtime_ns
    sweep.final_eval(args)  # cached: same checkpoint, episodes and seed
    assert (out / "final_eval.json").stat().st_mtime_ns == mtime
    _curve(out.parent / "seed9", [1, 2])  # a run without checkpoints is left out, not an error
    sweep.final_eval(args)
    assert not (out.parent / "seed9" / "final_eval.json").exists()
