"""`refine-dp report t1-tasks` on a tiny fake runs tree: table rows, the verdict rule, a study not run yet,
errors on malformed inputs, and the committed manifest's consistency."""
import json

import pytest

from refine_dp_training.benchmarks.t1_tasks import report as t1


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


def _eval(runs, name, k, n, task="door", completion=30.0, rot=10.0):
    _write(runs / name / "summary.json", {"task": task, "start": "pretrain", "episodes": n, "successes": k,
                                          "success_rate": k / n, "completion_time_s": {"median": completion},
                                          "hand_rot_error_deg": {"median": rot}, "hand_speed_m_s": {"median": 0.2}})


def _finetune(runs, name, successes, n=16, method="dppo", task="door", threads=1, wall_per_eval=360.0):
    _write(runs / name / "config.json", {"method": method, "env": f"t1-{task}", "torch_threads": threads,
                                         "env_kwargs": {}})
    rows = [{"iteration": 2 * i, "env_steps": 10_000 * i, "wall_s": wall_per_eval * i, "success_mean": k / n,
             "successes": k, "episodes": n} for i, k in enumerate(successes)]
    _write(runs / name / "curve.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def _manifest(tmp_path, studies, **kw):
    m = {"tasks": ["door"], "target_success": 0.9, "min_episodes": 100, "physics_threads_default": 2,
         "studies": studies} | kw
    _write(tmp_path / "studies.json", m)
    return tmp_path / "studies.json"


SUCCESS = {"id": "success", "title": "Per-task success", "paper": "over 90 %", "columns": ["success", "start_success",
                                                                                         "env_steps"],
           "rows": [{"id": "door/heuristic", "task": "door", "label": "heuristic", "demos": "demos/door"},
                    {"id": "door/mlp", "task": "door", "label": "MLP", "eval": "eval/door_mlp", "paper": "-"},
                    {"id": "door/dppo", "task": "door", "method": "dppo", "label": "dppo", "paper": "> 90 %",
                     "finetune": "finetune/door_dppo", "eval": "eval/door_dppo"}],
           "checks": [{"claim": "door dppo >= 90 %", "rule": "at_least", "row": "door/dppo", "target": 0.9},
                      {"claim": "dppo beats MLP", "rule": "better", "row": "door/dppo", "than": "door/mlp"}]}
SCALING = {"id": "scaling", "title": "Data scaling", "paper": "50 demos + FT beat 1000", "columns": ["success"],
           "rows": [{"id": "door/50/dppo", "task": "door", "method": "dppo", "label": "50 demos + dppo",
                     "finetune": "finetune/door_50_dppo",
                     "command": {"finetune": "refine-dp finetune --task door --method dppo --pretrained P50"}}],
           "checks": [{"claim": "50 + FT >= 90 %", "rule": "at_least", "row": "door/50/dppo", "target": 0.9}]}
COST = {"id": "cost", "title": "Cost", "paper": "<= 4 core-hours", "columns": ["env_steps", "cores", "core_hours",
                                                                               "core_hours_to_target"],
        "rows": "all", "checks": [{"claim": "door dppo to 90 % in 4 core-hours", "rule": "reached_within",
                                   "row": "door/dppo", "metric": "core_hours", "target": 4.0}]}


def _runs(tmp_path, final=(97, 100)):
    runs = tmp_path / "runs"
    _write(runs / "demos/door/summary.json", {"task": "door", "attempts": 372, "successes": 100, "episodes_kept": 100,
                                              "wall_s": 3600.0, "dataset": {"steps": 34632}})
    _eval(runs, "eval/door_mlp", 10, 32, completion=36.0, rot=16.0)
    _finetune(runs, "finetune/door_dppo", [5, 10, 15, 16])   # 90 % first at the third evaluation (iteration 4)
    _eval(runs, "eval/door_dppo", *final, completion=30.0, rot=8.0)
    return runs


def _report(tmp_path, runs, studies=(SUCCESS, SCALING, COST)):
    return t1.report(runs, _manifest(tmp_path, list(studies)), tmp_path / "out")


def test_table_rows_checks_and_plot(tmp_path):
    res = _report(tmp_path, _runs(tmp_path))
    text = (tmp_path / "out" / "README.md").read_text()
    assert "| heuristic | door | - | 0.27 [0.23, 0.32] (100/372) | - | 34,632 | `demos/door` |" in text
    assert "| dppo | door | > 90 % | 0.97 [0.92, 0.99] (97/100) | 0.31 [0.14, 0.56] (5/16) | 30,000 |" in text
    assert res["success"]["verdict"] == "reproduced"
    assert [r for _, r, _ in res["success"]["checks"]] == ["pass", "pass"]
    dppo = res["success"]["rows"]["door/dppo"].values
    assert dppo["iterations_to_target"] == 4 and dppo["env_steps_to_target"] == 20_000
    assert dppo["cores"] == 2 and dppo["core_hours"] == pytest.approx(1080 * 2 / 3600)  # physics default 2 > 1 thread
    assert res["cost"]["verdict"] == "reproduced"  # 720 s x 2 cores = 0.4 core-hours to 90 %
    cost = {r.spec["id"]: r for r in res["cost"]["rows"].values()}
    assert set(cost) == {"demos/door", "finetune/door_dppo"} and cost["demos/door"].values["core_hours"] == 2.0
    assert (tmp_path / "out" / "success_door.png").stat().st_size > 5_000
    assert "**Verdict: reproduced** (2 pass)." in text


def test_study_without_runs_says_not_run_and_the_command(tmp_path):
    res = _report(tmp_path, _runs(tmp_path))
    text = (tmp_path / "out" / "README.md").read_text()
    assert res["scaling"]["verdict"] == "not run"
    assert ("| 50 demos + dppo | door | - | - | not run yet: `refine-dp finetune --task door --method dppo "
            "--pretrained P50` |") in text
    assert "| [Data scaling](#data-scaling) | not run |" in text


def test_eval_missing_beside_a_finetune_run_is_noted_with_its_command(tmp_path):
    runs = _runs(tmp_path)
    (runs / "eval/door_dppo/summary.json").unlink()
    (runs / "eval/door_dppo").rmdir()
    res = _report(tmp_path, runs)
    row = res["success"]["rows"]["door/dppo"]
    assert str(row.values["success"]) == "1.00 [0.81, 1.00] (16/16)"   # the last curve evaluation instead
    assert "eval not run yet: `refine-dp eval task --task door --planner runs/finetune/door_dppo/policy.pt" \
        in (tmp_path / "out" / "README.md").read_text().replace(str(runs), "runs")
    # 16 episodes cannot pass a 100-episode target, nor fail it at 16/16
    assert res["success"]["checks"][0][1] == "undecided"


@pytest.mark.parametrize("final, at_least, verdict", [((97, 100), "pass", "reproduced"),
                                                      ((20, 100), "fail", "refuted"),
                                                      ((88, 100), "undecided", "partly")])
def test_verdict_follows_the_interval_rule(tmp_path, final, at_least, verdict):
    res = _report(tmp_path, _runs(tmp_path, final), studies=(SUCCESS,))
    assert res["success"]["checks"][0][1] == at_least
    assert res["success"]["verdict"] == verdict


def test_verdict_rule():
    assert t1.verdict(["missing", "missing"]) == "not run"
    assert t1.verdict(["pass", "pass"]) == "reproduced"
    assert t1.verdict(["fail", "missing"]) == "refuted"
    assert t1.verdict(["pass", "missing"]) == "partly"
    assert t1.verdict(["undecided", "missing"]) == "undecided"


def test_ratio_and_budget_checks(tmp_path):
    runs = _runs(tmp_path)
    rows = {"a": t1.measure({"id": "a", "task": "door", "eval": "eval/door_dppo"}, runs, {}),
            "b": t1.measure({"id": "b", "task": "door", "eval": "eval/door_mlp"}, runs, {})}
    rule = {"rule": "ratio_at_most", "row": "a", "than": "b", "metric": "completion_s", "target": 0.9, "fail_at": 1.0}
    assert t1.check(rule, rows, {}) == ("pass", "30.0 / 36.0 = 0.83")
    assert t1.check(rule | {"metric": "hand_rot_error_deg", "target": 0.4}, rows, {})[0] == "undecided"  # 0.5
    _finetune(runs, "finetune/slow", [1, 2, 3], wall_per_eval=4 * 3600.0)
    rows["s"] = t1.measure({"id": "s", "task": "door", "finetune": "finetune/slow"}, runs, {})
    assert t1.check({"rule": "reached_within", "row": "s", "metric": "core_hours", "target": 4.0}, rows, {})[0] == "fail"


@pytest.mark.parametrize("path, content, match", [
    ("eval/door_dppo/summary.json", "{not json", r"eval/door_dppo/summary.json is not valid JSON.*rerun"),
    ("eval/door_dppo/summary.json", {"task": "door"}, r"summary.json lacks episodes, successes"),
    ("finetune/door_dppo/curve.jsonl", '{"env_steps": 0, "success_mean": 0.1}\n{"env_st',
     r"curve.jsonl:2 is not valid"),
    ("finetune/door_dppo/config.json", {"method": "mlp-ft", "env": "t1-door"},
     r"is method mlp-ft but .* says dppo"),
    ("finetune/door_dppo/config.json", {"method": "dppo", "env": "t1-pickup"},
     r"is a pickup run but .* says door"),
])
def test_malformed_inputs_name_the_file_and_the_fix(tmp_path, path, content, match):
    runs = _runs(tmp_path)
    _write(runs / path, content)
    with pytest.raises(t1.ReportError, match=match):
        _report(tmp_path, runs)


def test_a_run_folder_without_its_files_is_an_error_not_a_missing_row(tmp_path):
    runs = _runs(tmp_path)
    (runs / "finetune/door_dppo/curve.jsonl").unlink()
    with pytest.raises(t1.ReportError, match=r"curve.jsonl is missing.*--resume"):
        _report(tmp_path, runs)


def test_a_run_killed_before_its_first_evaluation_is_a_row_with_no_evaluation(tmp_path):
    runs = _runs(tmp_path)
    _write(runs / "finetune/door_50_dppo/config.json", {"method": "dppo", "env": "t1-door"})
    _write(runs / "finetune/door_50_dppo/curve.jsonl", "")
    res = _report(tmp_path, runs)
    assert res["scaling"]["verdict"] == "undecided"
    assert "| 50 demos + dppo | door | - | - | `finetune/door_50_dppo`; no evaluation yet |" in \
        (tmp_path / "out" / "README.md").read_text()


def test_manifest_errors(tmp_path):
    bad = dict(SCALING, checks=[{"claim": "x", "rule": "at_least", "row": "nope", "target": 0.9}])
    with pytest.raises(t1.ReportError, match="names row 'nope'"):
        _report(tmp_path, _runs(tmp_path), studies=(bad,))
    with pytest.raises(t1.ReportError, match="appear more than once"):
        _report(tmp_path, _runs(tmp_path), studies=(SUCCESS, SUCCESS))


def test_committed_manifest_is_consistent(tmp_path):
    """The shipped studies.json loads, every check names a row, and an empty runs tree reports every study."""
    res = t1.report(tmp_path / "no_runs", t1.HERE / "studies.json", tmp_path / "out")
    assert {r["verdict"] for r in res.values()} <= {"not run", "undecided", "refuted", "partly", "reproduced"}
    assert set(res) == {"success", "ood", "scaling", "joint", "throughput", "cost"}


def test_cli_forwards_report(tmp_path):
    from refine_dp import cli
    runs = _runs(tmp_path)
    assert cli.main(["report", "t1-tasks", "--runs", str(runs), "--manifest", str(_manifest(tmp_path, [SUCCESS])),
                     "--out", str(tmp_path / "cli_out")]) == 0
    assert (tmp_path / "cli_out" / "README.md").is_file()
