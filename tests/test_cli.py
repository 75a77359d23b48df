"""The refine-dp tool reaches every part of the pipeline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REFINE_DP = Path(sys.executable).parent / "refine-dp"


def test_help_lists_every_part():
    out = subprocess.run([str(REFINE_DP), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("bringup", "demo", "bench", "train-lowlevel", "pretrain", "finetune", "eval", "export"):
        assert command in out, command


def test_export_planner_writes_an_engine_that_loads(tmp_path):
    from refine_dp_planner.config import DiffusionPolicyConfig
    from refine_dp_planner.engines import make_engine
    from refine_dp_planner.models.dit import DiTConfig
    from refine_dp_planner.policy import DiffusionPolicy

    cfg = DiffusionPolicyConfig(obs_dim=5, action_dim=3, ddim_steps=4, dit=DiTConfig(width=32, depth=1, heads=2))
    policy = DiffusionPolicy(cfg)
    rng = np.random.default_rng(0)
    policy.fit_normalizers(rng.normal(size=(20, 5)), rng.normal(size=(20, 3)))
    policy.save(tmp_path / "dp.pt")
    subprocess.run([str(REFINE_DP), "export", "planner", "--checkpoint", str(tmp_path / "dp.pt"),
                    "--out", str(tmp_path / "engine")], check=True, capture_output=True, text=True)
    engine = make_engine("onnxruntime", tmp_path / "engine", expected={"obs_dim": 5, "action_dim": 3})
    noise = rng.normal(size=(1, 12, 3)).astype(np.float32)
    obs = rng.normal(size=(1, 8, 5)).astype(np.float32)
    np.testing.assert_allclose(engine.sample(obs, noise), make_engine("torch", policy).sample(obs, noise), atol=1e-4)


def test_missing_checkpoint_error_names_the_fix(tmp_path):
    proc = subprocess.run([str(REFINE_DP), "export", "planner", "--checkpoint", str(tmp_path / "none.pt"),
                           "--out", str(tmp_path / "e")], capture_output=True, text=True)
    assert proc.returncode != 0 and "refine-dp pretrain" in proc.stderr


def test_bench_env_takes_its_own_options():
    """`refine-dp bench env --num-envs ... --variant ...` reaches the env benchmark with those options
    (argparse's REMAINDER used to drop a leading --flag and refuse the command)."""
    proc = subprocess.run([str(REFINE_DP), "bench", "env", "--num-envs", "2", "--seconds", "0.05", "--nthread", "1",
                           "--variant", "absolute"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '"num_envs": 2' in proc.stdout and '"variant": "absolute"' in proc.stdout


def test_finetune_task_fills_env_pretrained_and_out_unless_given(tmp_path):
    """`refine-dp finetune --task pickup --method dppo` = --env t1-pickup --pretrained runs/pretrain/pickup/policy.pt
    --out runs/finetune/pickup_dppo; given flags win; a missing pretrained planner is named."""
    from refine_dp_training.finetune.cli import main, with_task_defaults

    argv = with_task_defaults(["--task", "pickup", "--method", "dppo", "--out", "X"], "pickup",
                              {"--env": "t1-pickup", "--out": "Y"})
    assert argv == ["--method", "dppo", "--out", "X", "--env", "t1-pickup"]
    with pytest.raises(FileNotFoundError, match="runs/pretrain/nosuchtask/policy.pt"):
        main(["--task", "nosuchtask", "--method", "dppo", "--out", str(tmp_path / "ft"), "--no-progress"])
