"""`refine-dp ship planner`'s README says what kind of planner ships (tasks/ship.py)."""
from __future__ import annotations

import json

from refine_dp_training.tasks import ship

EVAL = {"episodes": 4, "successes": 1, "success_rate": 0.25, "success_ci95": [0.05, 0.7], "falls": 1,
        "completion_time_s": {"median": 30.0}, "failures_by_stage": {"approach": 2, "turn": 1},
        "hand_pos_error_m": {"median": 0.05}, "hand_rot_error_deg": {"median": 10.0},
        "footstep_error_m": {"median": 0.02}}
LINEAGE = {"parameters": 1000, "step": 10, "train_wall_s": 60, "git_revision": "abc"}
BASE = {"obs_horizon": 8, "action_horizon": 12, "act_steps": 8, "batch_size": 256, "num_train_timesteps": 100,
        "ddim_steps": 10, "dit_width": 128, "dit_depth": 4, "dit_heads": 4, "hidden_dims": [512, 512, 512]}


def readme(tmp_path, monkeypatch, cfg: dict) -> str:
    monkeypatch.setattr(ship, "SHIPPED_DIR", tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "train_config.json").write_text(json.dumps(BASE | cfg))
    return ship._readme("p", "door", LINEAGE, {"pre-training": EVAL}, ["refine-dp pretrain ..."], note="n")


def test_readme_names_the_mlp_baseline_without_diffusion_settings(tmp_path, monkeypatch):
    text = readme(tmp_path, monkeypatch, {"model": "mlp", "backbone": "dit"})
    model = next(line for line in text.splitlines() if line.startswith("Model:"))
    assert "deterministic MLP 512x512x512" in model and "DDIM" not in model and "width 128" not in model
    assert "| pre-training | 4 | 0.25 [0.05, 0.70] (1/4) | 30.0 | 1 | approach 2, turn 1 |" in text


def test_readme_names_the_diffusion_denoiser(tmp_path, monkeypatch):
    model = next(line for line in readme(tmp_path, monkeypatch, {"model": "diffusion", "backbone": "dit"}).splitlines()
                 if line.startswith("Model:"))
    assert "diffusion, dit denoiser (width 128, depth 4, heads 4)" in model and "10 DDIM steps" in model
    model = next(line for line in readme(mk(tmp_path / "m"), monkeypatch, {"model": "diffusion", "backbone": "mlp"})
                 .splitlines() if line.startswith("Model:"))
    assert "mlp denoiser (MLP 512x512x512)" in model


def mk(path):
    path.mkdir()
    return path
