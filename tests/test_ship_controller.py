"""`refine-dp ship controller`: the training lineage behind a shipped policy (warm starts followed back)."""
import json

import pytest
import torch

from refine_dp_training.lowlevel import ship


def _run(root, name, iteration, env_steps, wall_s, init_from=None, nthread=1):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / f"model_{iteration:06d}.pt"
    torch.save({"iteration": iteration, "env_steps": env_steps, "wall_s": wall_s}, ckpt)
    (run / "config.json").write_text(json.dumps({"env": {"num_envs": 128, "nthread": nthread}, "init_from": init_from}))
    return run, ckpt


def test_lineage_follows_warm_starts_back_to_scratch(tmp_path):
    a, a_ckpt = _run(tmp_path, "a", 100, 1000, 3600.0, nthread=2)
    b, b_ckpt = _run(tmp_path, "b", 50, 500, 1800.0, init_from=str(a_ckpt))
    c, _ = _run(tmp_path, "c", 10, 100, 360.0, init_from=str(b_ckpt))
    chain = ship.lineage(c)
    assert [link["run"] for link in chain] == [str(a), str(b), str(c)]
    assert [link["env_steps"] for link in chain] == [1000, 500, 100]
    assert chain[0]["core_hours_upper_bound"] == pytest.approx(2.0)  # 1 h on 2 physics threads
    assert chain[1]["checkpoint"] == str(b_ckpt)  # the checkpoint c started from, not b's latest


def test_lineage_of_a_warm_start_from_a_shipped_onnx_continues_with_the_shipped_lineage(tmp_path):
    run, _ = _run(tmp_path, "new", 20, 200, 720.0, init_from="models/legs.onnx")
    shipped = [{"run": "runs/lowlevel/legs_res", "env_steps": 10}, {"run": "runs/lowlevel/legs_res4", "env_steps": 30}]
    (run / "init_from_lineage.json").write_text(json.dumps({"lineage": shipped}))
    chain = ship.lineage(run)
    assert [link["run"] for link in chain] == ["runs/lowlevel/legs_res", "runs/lowlevel/legs_res4", str(run)]
    assert sum(link["env_steps"] for link in chain) == 240


def test_resume_snapshot_round_trips_a_run(tmp_path, monkeypatch):
    from refine_dp_training.lowlevel import resume
    monkeypatch.setattr(resume, "RESUME_DIR", tmp_path / "resume")
    run, ckpt = _run(tmp_path, "r", 30, 300, 60.0)
    torch.save({"iteration": 40, "env_steps": 400, "wall_s": 80.0}, run / "checkpoints" / "model_000040.pt")
    (run / "command.txt").write_text("refine-dp train-lowlevel --part legs --out r\n")
    dest = resume.save(run)
    assert sorted(p.name for p in (dest / "checkpoints").iterdir()) == ["model_000040.pt"]  # the newest only
    assert json.loads((dest / "resume.json").read_text())["env_steps"] == 400
    out = resume.restore("r", tmp_path / "again")
    assert (out / "config.json").read_text() == (run / "config.json").read_text()
    assert (out / "command.txt").is_file() and (out / "checkpoints" / "model_000040.pt").is_file()


def test_lineage_of_a_run_without_checkpoints_says_so(tmp_path):
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        ship.lineage(tmp_path / "empty")


def test_bar_rows_read_nested_figures_and_flag_missing_ones():
    summary = {"fall_rate": 0.1, "footstep_error_median_m": 0.04,
               "hand_pos_error_median_m": {"standing": 0.02, "walking": None}}
    rows = {name: (bar, value) for name, bar, value in ship.bar_rows(summary)}
    assert rows["fall_rate"] == (0.05, 0.1)
    assert rows["hand_pos_error_median_m.standing"] == (0.03, 0.02)
    assert rows["hand_pos_error_median_m.walking"][1] is None
    assert rows["hand_rot_error_median_deg"][1] is None
    text = ship._readme({"legs": {"produced_by": "refine-dp ship controller --legs A --arms B", "env_steps_total": 1,
                                  "wall_h_total": 0.1, "core_hours_upper_bound_total": 0.1, "lineage": []}}, summary)
    assert "Produced by: `refine-dp ship controller --legs A --arms B`" in text
    assert "| fall_rate | <= 0.05 | 0.1 | **no** |" in text
    assert "| footstep_error_median_m | <= 0.05 | 0.04 | yes |" in text


def test_lineage_uses_the_warm_start_copy_when_the_source_checkpoint_was_pruned(tmp_path):
    import shutil
    a, a_ckpt = _run(tmp_path, "a", 100, 1000, 3600.0)
    b, _ = _run(tmp_path, "b", 50, 500, 1800.0, init_from=str(a_ckpt))
    shutil.copy2(a_ckpt, b / "init_from.pt")  # what train-lowlevel --init-from does
    _run(tmp_path, "a_later", 0, 0, 0.0)
    a_ckpt.unlink()  # pruned by a's continued training
    torch.save({"iteration": 200, "env_steps": 2000, "wall_s": 7200.0}, a / "checkpoints" / "model_000200.pt")
    chain = ship.lineage(b)
    assert [link["run"] for link in chain] == [str(a), str(b)]
    assert chain[0]["env_steps"] == 1000 and chain[0]["checkpoint"] == str(b / "init_from.pt")


def test_eval_only_needs_shipped_files_and_keeps_the_producing_command(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="lacks legs.onnx, arms.onnx, lineage.json"):
        ship.main(["--eval-only", "--models", str(tmp_path)])
    for f in ("legs.onnx", "arms.onnx"):
        (tmp_path / f).write_bytes(b"x")
    parts = {"legs": {"env_steps_total": 5, "wall_h_total": 0.1, "core_hours_upper_bound_total": 0.1, "lineage": []}}
    (tmp_path / "lineage.json").write_text(json.dumps(parts))
    (tmp_path / "README.md").write_text("# x\n\nProduced by: `refine-dp ship controller --legs L --arms A`\n")
    from refine_dp_training.lowlevel import evaluate

    def fake_eval(argv):  # evaluation itself is tested in test_t1_env; here: what ship does with it
        out = tmp_path / "eval"
        out.mkdir()
        assert argv[:2] == ["--episodes", "7"] and argv[argv.index("--legs") + 1] == str(tmp_path / "legs.onnx")
        (out / "summary.json").write_text(json.dumps({"fall_rate": 0.0, "episodes": 7}))
        return 0
    monkeypatch.setattr(evaluate, "main", fake_eval)
    assert ship.main(["--eval-only", "--episodes", "7", "--models", str(tmp_path)]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "Produced by: `refine-dp ship controller --legs L --arms A`" in text
    assert "Evaluated by: `refine-dp ship controller --eval-only --episodes 7" in text
    assert '"episodes": 7' in text and "### legs: 5 env steps" in text
    with pytest.raises(SystemExit):
        ship.main(["--eval-only", "--legs", "x", "--models", str(tmp_path)])


def test_shipping_one_part_keeps_the_other_with_its_command(tmp_path, monkeypatch):
    """--legs alone: new legs files and lineage; the arms files, lineage and producing command stay."""
    models = tmp_path / "models"
    models.mkdir()
    for f in ("legs.onnx", "arms.onnx"):
        (models / f).write_bytes(b"old")
    old_arms = {"env_steps_total": 0, "wall_h_total": 0.2, "core_hours_upper_bound_total": 0.0, "lineage": []}
    (models / "lineage.json").write_text(json.dumps({"legs": dict(old_arms), "arms": old_arms}))
    (models / "README.md").write_text("# x\n\nProduced by: `refine-dp ship controller --legs L --arms A`\n")
    from refine_dp_training.lowlevel import evaluate

    def fake_ship_part(part, run, where):
        assert part == "legs"
        (where / "legs.onnx").write_bytes(b"new")
        return {"part": part, "run": str(run), "lineage": [], "env_steps_total": 42, "wall_h_total": 1.0,
                "core_hours_upper_bound_total": 2.0}

    def fake_eval(argv):
        out = models / "eval"
        out.mkdir(exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"fall_rate": 0.0, "episodes": 3}))
        return 0
    monkeypatch.setattr(ship, "ship_part", fake_ship_part)
    monkeypatch.setattr(evaluate, "main", fake_eval)
    assert ship.main(["--legs", str(tmp_path / "run"), "--episodes", "3", "--models", str(models)]) == 0
    parts = json.loads((models / "lineage.json").read_text())
    assert parts["legs"]["env_steps_total"] == 42 and parts["arms"] == old_arms | {
        "produced_by": "refine-dp ship controller --legs L --arms A"}
    assert parts["legs"]["produced_by"].startswith("refine-dp ship controller --legs")
    assert (models / "legs.onnx").read_bytes() == b"new" and (models / "arms.onnx").read_bytes() == b"old"
    text = (models / "README.md").read_text()
    assert "Produced by (arms): `refine-dp ship controller --legs L --arms A`" in text
    assert "Produced by (legs): `refine-dp ship controller --legs " in text
    (models / "arms.onnx").unlink()
    with pytest.raises(SystemExit):  # nothing to keep: --arms is required
        ship.main(["--legs", str(tmp_path / "run"), "--models", str(models)])


def test_a_checkpoint_file_ships_that_checkpoint_with_its_lineage(tmp_path, monkeypatch):
    """--legs RUN/checkpoints/model_X.pt: export that checkpoint (not the run's latest); the lineage
    reports its iteration and env steps."""
    a, a_ckpt = _run(tmp_path, "a", 100, 1000, 3600.0)
    b, b_early = _run(tmp_path, "b", 50, 500, 1800.0, init_from=str(a_ckpt))
    torch.save({"iteration": 90, "env_steps": 900, "wall_s": 3000.0}, b / "checkpoints" / "model_000090.pt")
    assert ship.run_and_checkpoint(b) == (b, None)
    assert ship.run_and_checkpoint(b_early) == (b, b_early)
    with pytest.raises(SystemExit, match="expected a run directory"):
        ship.run_and_checkpoint(b / "config.json")
    with pytest.raises(SystemExit, match="no such run"):
        ship.run_and_checkpoint(tmp_path / "missing")
    from refine_dp_training.lowlevel import train
    exported = []

    def fake_train_main(argv):  # the export itself is train-lowlevel's (tested with the env)
        exported.append(argv)
        (b / "policy").mkdir(exist_ok=True)
        for suffix in (".onnx", ".json"):
            (b / "policy" / f"legs{suffix}").write_text("x")
        return 0
    monkeypatch.setattr(train, "main", fake_train_main)
    models = tmp_path / "models"
    models.mkdir()
    info = ship.ship_part("legs", b_early, models)
    assert exported[0][-2:] == ["--checkpoint", str(b_early)]
    assert info["lineage"][-1]["iteration"] == 50 and info["env_steps_total"] == 1500
    ship.ship_part("legs", b, models)
    assert "--checkpoint" not in exported[1]


def test_train_lowlevel_export_only_checkpoint_is_checked(tmp_path, capsys):
    from refine_dp_training.lowlevel import train
    assert train.main(["--part", "legs", "--out", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "goes with --export-only" in capsys.readouterr().err
    assert not (tmp_path / "config.json").exists()  # refused before anything is written


def test_pruning_keeps_the_newest_three_and_every_keep_every_th(tmp_path):
    from refine_dp_training.lowlevel.train import prune_checkpoints
    (tmp_path / "checkpoints").mkdir()
    for i in range(0, 200, 10):
        (tmp_path / "checkpoints" / f"model_{i:06d}.pt").write_bytes(b"")
    prune_checkpoints(tmp_path, keep_every=50)
    left = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert left == [0, 50, 100, 150, 170, 180, 190]


def test_export_only_refuses_a_run_without_checkpoints(tmp_path, capsys):
    """An untrained policy must never be exported as the run's (a checkpoint copied in under another
    name than model_*.pt once gave a random legs.onnx)."""
    import json

    from refine_dp_training.lowlevel import train
    from refine_dp_training.lowlevel.config import EnvConfig
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "res9_50.pt").write_bytes(b"")
    cfg = train.ppo_config(16, 10, 10, 0)
    (tmp_path / "config.json").write_text(json.dumps({"env": EnvConfig(num_envs=16).to_dict(), "ppo": cfg.to_dict()}))
    assert train.main(["--part", "legs", "--out", str(tmp_path), "--export-only"]) == 2
    assert "no checkpoint under" in capsys.readouterr().err
    assert not (tmp_path / "policy").exists()


def _old_legs_files(models, env_changes=None):
    """A residual legs policy exported before the contract (metadata without footstep_planner /
    reference_motion) with the training config it was shipped with (old style: reference_ik_iterations)."""
    from test_policy_io import _random_actor

    from loco_manip_controller import policy_io as pio
    from loco_manip_controller import policy_runtime as pr
    from refine_dp_training.lowlevel.config import EnvConfig

    obs_spec, _ = pio.specs("legs", "residual")
    meta = pr.build_metadata("legs", variant="residual")
    del meta["footstep_planner"], meta["reference_motion"]
    ac = _random_actor(obs_spec.dim, 12)
    pr.export_onnx(ac.actor, ac.normalizer, obs_spec.dim, models / "legs.onnx", meta)
    env = EnvConfig(task="legs", policy_variant="residual").to_dict()
    del env["footstep_planner"], env["reference_motion"]
    env |= {"reference_ik_iterations": 0} | (env_changes or {})
    (models / "legs_train_config.json").write_text(json.dumps({"env": env, "ppo": {}}))


def test_fill_contract_writes_the_legs_contract_from_its_training_config(tmp_path, capsys):
    """The shipped legs gain control_hz, footstep_planner and reference_motion from their recorded training
    config (0 IK iterations), by a command, not by hand; the graph is untouched; refused until then."""
    import onnx

    from loco_manip_controller import policy_runtime as pr
    from loco_manip_controller.footstep_planner import FootstepPlannerConfig

    _old_legs_files(tmp_path)
    with pytest.raises(pr.PolicyMetadataError, match="--fill-contract"):
        pr.LowLevelController(tmp_path / "legs.onnx")
    graph = onnx.load(str(tmp_path / "legs.onnx")).graph
    assert ship.main(["--fill-contract", "--models", str(tmp_path)]) == 0
    assert "legs: added footstep_planner, reference_motion" in capsys.readouterr().out
    meta = json.loads((tmp_path / "legs.json").read_text())
    assert meta["reference_motion"]["ik_iterations"] == 0 and meta["control_hz"] == 50.0
    assert pr.read_metadata(tmp_path / "legs.onnx") == meta  # the ONNX file carries the same
    assert onnx.load(str(tmp_path / "legs.onnx")).graph == graph  # weights and graph as they were
    ctrl = pr.LowLevelController(tmp_path / "legs.onnx")
    assert ctrl.leg_reference.motion.config.ik_iterations == 0 and ctrl.footstep_config == FootstepPlannerConfig()
    assert ship.fill_contract(tmp_path) == {"legs": []}  # nothing more to add


def test_fill_contract_refuses_a_training_config_that_contradicts_the_file(tmp_path):
    from loco_manip_controller import policy_runtime as pr

    _old_legs_files(tmp_path, {"decimation": 2})  # trained at 100 Hz, says the config; 50 Hz, says the file
    with pytest.raises(pr.PolicyMetadataError, match="control_hz: caller expects 100.0, policy has 50.0"):
        ship.fill_contract(tmp_path)


def test_the_shipped_contract_is_the_one_of_the_shipped_training_config():
    """What ships agrees with its training config: nothing left to fill, nothing contradicting."""
    from loco_manip_controller.policy_runtime import MODELS_DIR

    assert ship.fill_contract(MODELS_DIR) == {"legs": [], "arms": []}


def test_training_configs_from_before_the_contract_sections_load():
    from refine_dp_training.lowlevel.config import EnvConfig

    old = EnvConfig().to_dict()
    del old["footstep_planner"], old["reference_motion"]
    cfg = EnvConfig.from_dict(old | {"reference_ik_iterations": 3})
    assert cfg.reference_motion.ik_iterations == 3 and cfg.footstep_planner.step_period == 0.5
    assert EnvConfig.from_dict(EnvConfig().to_dict()) == EnvConfig()
    with pytest.raises(ValueError, match="reference_ik_iterations 3 contradicts reference_motion.ik_iterations 0"):
        EnvConfig.from_dict(EnvConfig().to_dict() | {"reference_ik_iterations": 3})


def test_eval_controller_without_paths_evaluates_the_shipped_models(tmp_path):
    from loco_manip_controller.policy_runtime import MODELS_DIR
    from refine_dp_training.lowlevel import evaluate

    assert evaluate.main(["--episodes", "1", "--seconds", "0.4", "--out", str(tmp_path), "--no-video",
                          "--drift-episodes", "0", "--push-episodes", "0", "--step-trials", "0"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["policies"] == {"legs": str(MODELS_DIR / "legs.onnx"), "arms": str(MODELS_DIR / "arms.onnx")}
    assert summary["decimation"] == 10  # the policies' 50 Hz at sim_t1's 2 ms
