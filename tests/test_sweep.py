"""The benchmark sweeps' bookkeeping (Hopper and SparseReach through one module): the table and plot
from run curves, the skip/resume plan, and final-eval through `refine-dp eval policy`'s code."""
import dataclasses
import json

import pytest

from refine_dp_training.benchmarks import sweep
from refine_dp_training.benchmarks.hopper.sweep import BENCHMARK as HOPPER
from refine_dp_training.benchmarks.reach.sweep import BENCHMARK as REACH


def _curve(path, values, key="return_mean", steps_per_eval=1000, wall_per_eval=10.0):
    path.mkdir(parents=True)
    rows = [{"env_steps": i * steps_per_eval, "wall_s": i * wall_per_eval, "return_mean": 0.0, "success_mean": 0.0,
             "length_mean": 10.0} | {key: v} for i, v in enumerate(values)]
    (path / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _args(**kw):
    return type("A", (), kw)()


def test_report_table_means_over_seeds(tmp_path):
    _curve(tmp_path / "dppo" / "seed0", [1000, 2000, 3000])
    _curve(tmp_path / "dppo" / "seed1", [1200, 1800, 2000])
    _curve(tmp_path / "dsrl-sac" / "seed0", [1100, 2500])
    out = sweep.report(HOPPER, _args(root=str(tmp_path)))
    rows = {r["method"]: r for r in out["rows"]}
    assert rows["dppo"]["seeds"] == 2 and rows["dppo"]["end"] == [3000, 2000]
    assert rows["dppo"]["best"] == [3000, 2000] and rows["dsrl-sac"]["env_steps"] == 1000
    table = (tmp_path / "table.md").read_text()
    assert "| dppo | 2 | 2,000 |" in table and "2500 +- 500" in table  # end return mean +- std over seeds
    assert rows["dppo"]["last3"] == [2000, 1666.6666666666667]
    assert "| pretrained DP (eta 0; dppo's step-0 evals) | - | 0 | - | 1100 +- 100 |" in table
    assert rows["dppo"]["at_compare"] == [3000, 2000]   # the last evaluation at or before 20k env steps
    assert rows["dppo"]["steps_to_reach"] == [2000, None]   # 2800 first reached at the third evaluation
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    sweep.report(HOPPER, _args(root=str(tmp_path), copy_to=str(tmp_path / "results")))
    assert (tmp_path / "results" / "table.md").read_text() == table
    assert (tmp_path / "results" / "curves.png").stat().st_size > 10_000


def test_success_benchmark_reads_success_and_steps_to_90_percent(tmp_path):
    _curve(tmp_path / "dsrl-sac" / "seed0", [0.4, 0.85, 0.95, 0.9], key="success_mean", steps_per_eval=500)
    _curve(tmp_path / "dppo" / "seed0", [0.4, 0.6, 0.7], key="success_mean", steps_per_eval=5000)
    rows = {r["method"]: r for r in sweep.report(REACH, _args(root=str(tmp_path)))["rows"]}
    assert rows["dsrl-sac"]["steps_to_reach"] == [1000] and rows["dppo"]["steps_to_reach"] == [None]
    table = (tmp_path / "table.md").read_text()
    assert "env steps to 90% success" in table and "| 1.0k |" in table and "| never |" in table
    assert "start success" in table and "| 0.40 |" in table


def test_report_without_runs_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="sweep run --benchmark hopper"):
        sweep.report(HOPPER, _args(root=str(tmp_path)))


def _plan(**plan):
    return dataclasses.replace(HOPPER, plan=plan)


def _run_args(tmp_path, methods):
    return _args(root=str(tmp_path), seeds=[0], methods=methods, dp="dp.pt", demos="d", mlp_steps=1, eval_episodes=2)


def test_run_skips_finished_and_resumes_started(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_run", lambda cmd, log: calls.append(cmd) or 0)
    done = tmp_path / "dppo" / "seed0"
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"env_steps": 100}))
    started = tmp_path / "residual" / "seed0" / "checkpoints"
    started.mkdir(parents=True)
    (started / "ckpt_000001.pt").write_bytes(b"x")
    sweep.run(_plan(dppo=(100, [], "dp"), residual=(100, [], "dp")), _run_args(tmp_path, ["dppo", "residual"]))
    assert len(calls) == 1 and "--resume" in calls[0] and "residual" in calls[0]


def test_run_starts_with_the_benchmarks_env_and_kwargs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_run", lambda cmd, log: calls.append(cmd) or 0)
    bench = dataclasses.replace(REACH, plan={"dsrl-sac": (400, ["--num-envs", "4"], "dp")},
                                env_kwargs={"threshold": 0.02})
    sweep.run(bench, _run_args(tmp_path, ["dsrl-sac"]))
    (cmd,) = calls
    assert cmd[cmd.index("--env") + 1] == "SparseReach-v0"
    assert json.loads(cmd[cmd.index("--env-kwargs") + 1]) == {"threshold": 0.02}
    assert cmd[cmd.index("--eval-every-env-steps") + 1] == "20"   # budget / 20 evaluation points


def test_run_extends_a_finished_run_whose_budget_was_raised(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "_run", lambda cmd, log: calls.append(cmd) or 0)
    out = tmp_path / "dppo" / "seed0"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "ckpt_000009.pt").write_bytes(b"x")
    (out / "summary.json").write_text(json.dumps({"env_steps": 120}))
    sweep.run(_plan(dppo=(400, [], "dp")), _run_args(tmp_path, ["dppo"]))
    (cmd,) = calls
    assert "--resume" in cmd and cmd[cmd.index("--budget-env-steps") + 1] == "400"


def test_final_eval_evaluates_each_runs_policy_and_caches_it(tmp_path):
    from types import SimpleNamespace

    from refine_dp_training.finetune import dsrl as dsrl_mod
    from refine_dp_training.policy_eval import evaluate_policy
    from refine_dp_training.pretrain.artifacts import save_policy_file
    from test_dsrl import small_cfg, tiny_dp

    pre = tiny_dp(obs_dim=4, act_dim=2)
    dp_path = tmp_path / "dp" / "policy.pt"
    dp_path.parent.mkdir()
    pre.policy.config.act_steps = 3  # the planner contract: executed actions per chunk live in the config
    save_policy_file(dp_path, pre.policy, None, {"env": "toy-sparse-reach"})
    out = tmp_path / "bench" / "dsrl-sac" / "seed0"
    dsrl_mod.run(small_cfg(env="toy-sparse-reach", out=str(out), pretrained=str(dp_path), budget_env_steps=60,
                           eval_episodes=0, seed=1))
    bench = dataclasses.replace(REACH, env="toy-sparse-reach")
    args = SimpleNamespace(root=str(tmp_path / "bench"), dp=str(dp_path), episodes=4, seed=77)
    pretrained = sweep.final_eval(bench, args)
    res = json.loads((out / "final_eval.json").read_text())
    assert res["episodes"] == 4 and res["seed"] == 77 and res["env_steps"] >= 60 and res["kind"] == "dsrl"
    assert pretrained["dp"]["episodes"] == 4 and res["success_defined"]
    again = evaluate_policy(out / "policy.pt", "toy-sparse-reach", None, 4, 77)  # the same figure by hand
    assert again["return_mean"] == pytest.approx(res["return_mean"])
    mtime = (out / "final_eval.json").stat().st_mtime_ns
    sweep.final_eval(bench, args)  # cached: same policy (env steps), episodes and seed
    assert (out / "final_eval.json").stat().st_mtime_ns == mtime
    _curve(out.parent / "seed9", [1, 2])  # a run without a policy is left out, not an error
    sweep.final_eval(bench, args)
    assert not (out.parent / "seed9" / "final_eval.json").exists()
