"""`refine-dp pretrain` (refine_dp_training.pretrain): the loss falls on a tiny windowed dataset, a
resumed run continues exactly, policy.pt carries what fine-tuning needs, the CLI runs end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refine_dp_training.data.episodes import EpisodeWriter
from refine_dp_training.finetune.common import load_pretrained
from refine_dp_training.pretrain import cli
from refine_dp_training.pretrain.config import PretrainConfig
from refine_dp_training.pretrain.trainer import Pretrainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """8 episodes of 40 steps: obs 3-d random walk, action = a smooth function of obs (learnable)."""
    root = tmp_path_factory.mktemp("demos") / "ds"
    rng = np.random.default_rng(0)
    with EpisodeWriter(root, 3, 2, source="test", episodes_per_shard=4, control_rate_hz=25.0) as w:
        for _ in range(8):
            obs = np.cumsum(rng.normal(0, 0.1, (40, 3)), 0).astype(np.float32)
            act = np.stack([np.tanh(obs[:, 0] + obs[:, 1]), np.sin(obs[:, 2])], 1)
            w.add_episode(obs, act, np.ones(40), success=True)
    return str(root)


def tiny_cfg(data: str, out, **kw) -> PretrainConfig:
    base = dict(data=data, out=str(out), backbone="mlp", hidden_dims=[64, 64], obs_horizon=2, action_horizon=4,
                act_steps=2, num_train_timesteps=10, ddim_steps=10, steps=20, batch_size=32, lr=1e-3,
                warmup_steps=5, val_every=10, val_batches=2, checkpoint_every=10, tensorboard=False, progress=False)
    return PretrainConfig(**(base | kw))


def _fixed_loss(trainer: Pretrainer, model) -> float:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        return float(np.mean([model.compute_loss(trainer.batch(trainer.train_set, 256, gen)).item() for _ in range(4)]))


@pytest.mark.parametrize("model", ["diffusion", "mlp"])
def test_loss_decreases(dataset, tmp_path, model):
    t = Pretrainer(tiny_cfg(dataset, tmp_path, model=model, steps=200, checkpoint_every=0, val_every=0))
    assert len(t.split["val"]) >= 1 and not set(t.split["val"]) & set(t.split["train"])
    before = _fixed_loss(t, t.policy)
    t.train()
    after = _fixed_loss(t, t.policy)
    assert after < 0.6 * before, (before, after)


def test_resume_continues_exactly(dataset, tmp_path):
    straight = Pretrainer(tiny_cfg(dataset, tmp_path / "a"))
    straight.train()
    first = Pretrainer(tiny_cfg(dataset, tmp_path / "b"))
    first.train(steps=10)
    resumed = Pretrainer(tiny_cfg(dataset, tmp_path / "b"))
    resumed.resume()
    assert resumed.step == 10
    resumed.train()
    assert resumed.step == straight.step == 20
    for name, module_pair in (("model", (straight.policy, resumed.policy)),
                              ("ema", (straight.ema.averaged, resumed.ema.averaged))):
        for (k, v1), v2 in zip(module_pair[0].state_dict().items(), module_pair[1].state_dict().values()):
            torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6, msg=f"{name}.{k}")
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]
    # the run did move: resumed weights differ from a fresh model's
    fresh = Pretrainer(tiny_cfg(dataset, tmp_path / "c"))
    assert any(not torch.equal(a, b) for a, b in zip(fresh.policy.parameters(), resumed.policy.parameters()))


def test_resume_refuses_another_config(dataset, tmp_path):
    Pretrainer(tiny_cfg(dataset, tmp_path)).train(steps=10)
    other = Pretrainer(tiny_cfg(dataset, tmp_path, lr=5e-4))
    with pytest.raises(ValueError, match="another config"):
        other.resume()


def test_cli_writes_policy_for_finetuning(dataset, tmp_path):
    out = tmp_path / "run"
    rc = cli.main(["--data", dataset, "--out", str(out), "--backbone", "mlp", "--hidden-dims", "32", "32",
                   "--obs-horizon", "2", "--action-horizon", "4", "--act-steps", "3", "--num-train-timesteps", "10",
                   "--ddim-steps", "5", "--steps", "12", "--checkpoint-every", "6", "--no-tensorboard", "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 12 and np.isfinite(summary["final"]["val_loss"])
    pre = load_pretrained(out)
    assert (pre.kind, pre.obs_horizon, pre.action_horizon, pre.act_steps) == ("diffusion", 2, 4, 3)
    chunk = pre.policy.sample(torch.zeros(5, 2, 3), eta=0.0)
    assert chunk.shape == (5, 4, 2) and torch.isfinite(chunk).all()
    # --resume with --steps extends the same run
    assert cli.main(["--out", str(out), "--resume", "--steps", "18", "--data", dataset, "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["step"] == 18


def test_act_steps_and_rate_walk_from_the_cli_to_the_planner_core(tmp_path):
    """`refine-dp pretrain --act-steps` -> policy.pt -> `refine-dp export planner` -> metadata.json -> PlannerCore,
    with nobody retyping act_steps, the rate or the layouts."""
    from refine_dp_planner import export
    from refine_dp_planner.engines import make_engine
    from refine_dp_planner.planner_core import PlannerCore
    from refine_dp_planner.planner_io import ACTION_DIM, ACTION_FIELDS, observation_fields

    obs_fields = observation_fields(("box",))
    obs_dim = sum(n for _, n in obs_fields)
    rng = np.random.default_rng(0)
    data = tmp_path / "demos"
    with EpisodeWriter(data, obs_dim, ACTION_DIM, obs_fields=obs_fields, action_fields=ACTION_FIELDS,
                       control_rate_hz=5.0, source="test") as w:
        for _ in range(4):
            w.add_episode(rng.normal(size=(12, obs_dim)), rng.normal(size=(12, ACTION_DIM)), np.zeros(12), True)
    out = tmp_path / "run"
    assert cli.main(["--data", str(data), "--out", str(out), "--backbone", "mlp", "--hidden-dims", "32",
                     "--obs-horizon", "2", "--action-horizon", "6", "--act-steps", "5", "--num-train-timesteps", "10",
                     "--ddim-steps", "3", "--steps", "4", "--batch-size", "8", "--val-every", "0",
                     "--checkpoint-every", "0", "--no-tensorboard", "--no-progress"]) == 0
    ckpt = torch.load(out / "policy.pt", weights_only=False)
    assert (ckpt["config"]["act_steps"], ckpt["config"]["rate_hz"]) == (5, 5.0) and "act_steps" not in ckpt["extra"]
    assert export.main(["--checkpoint", str(out / "policy.pt"), "--out", str(tmp_path / "engine")]) == 0
    meta = json.loads((tmp_path / "engine" / "metadata.json").read_text())
    assert (meta["kind"], meta["act_steps"], meta["rate_hz"], meta["action_horizon"]) == ("diffusion", 5, 5.0, 6)
    assert meta["obs_fields"] == [list(f) for f in obs_fields] and meta["action_fields"] == [list(f) for f in ACTION_FIELDS]
    core = PlannerCore(make_engine("onnxruntime", tmp_path / "engine"), ("box",))
    assert core.replan_every == 5 and core.dt == pytest.approx(0.2)
    with pytest.raises(ValueError, match="replan_every 6 contradicts the engine's act_steps 5"):
        PlannerCore(make_engine("onnxruntime", tmp_path / "engine"), ("box",), replan_every=6)


def test_rate_comes_from_the_dataset_and_a_contradicting_rate_is_refused(dataset, tmp_path):
    assert Pretrainer(tiny_cfg(dataset, tmp_path / "a")).policy.config.rate_hz == 25.0
    with pytest.raises(ValueError, match=r"--rate-hz 10.0 contradicts .*control_rate_hz 25.0"):
        Pretrainer(tiny_cfg(dataset, tmp_path / "b", rate_hz=10.0))
    root = tmp_path / "norate"
    with EpisodeWriter(root, 3, 2) as w:
        for _ in range(3):
            w.add_episode(np.zeros((10, 3)), np.zeros((10, 2)), np.zeros(10), True)
    with pytest.raises(ValueError, match="records no control_rate_hz: pass --rate-hz"):
        Pretrainer(tiny_cfg(str(root), tmp_path / "c"))
    assert Pretrainer(tiny_cfg(str(root), tmp_path / "d", rate_hz=50.0)).policy.config.rate_hz == 50.0


@pytest.mark.parametrize("extra, expected", [({"act_steps": 3}, 3), ({}, 4)])
def test_checkpoints_from_before_the_contract_still_load(tmp_path, extra, expected):
    """Old policy.pt files kept act_steps in `extra` (or nowhere): with_act_steps is the one fallback."""
    from refine_dp_planner.config import DiffusionPolicyConfig
    from refine_dp_planner.deployable import load_planner
    from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
    from refine_dp_planner.policy import DiffusionPolicy

    policy = DiffusionPolicy(DiffusionPolicyConfig(obs_dim=3, action_dim=2, obs_horizon=2, action_horizon=4,
                                                   num_train_timesteps=10, ddim_steps=2, backbone="mlp",
                                                   mlp=MLPDenoiserConfig(hidden_dims=[8])))
    policy.fit_normalizers(np.ones((4, 3)), np.ones((4, 2)))
    path = tmp_path / "old.pt"
    policy.save(path, extra=extra)
    old = torch.load(path, weights_only=False)
    del old["config"]["act_steps"]
    torch.save(old, path)
    assert load_pretrained(path).act_steps == expected
    assert DiffusionPolicy.load(path)[0].config.act_steps == expected
    assert load_planner(path)[0].contract["act_steps"] == expected


def test_outlier_frames_that_would_squeeze_the_normalizer_are_refused(tmp_path):
    """A few frames far outside the rest (a box the physics shot 25 m away) would squeeze every normal value of
    that dimension into a sliver of [-1, 1]: pretraining refuses, naming the dimension and the fix."""
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    with EpisodeWriter(root, 3, 2, source="test", episodes_per_shard=4, control_rate_hz=25.0) as w:
        for k in range(8):
            obs = rng.uniform(-0.5, 0.5, (40, 3)).astype(np.float32)
            if k == 3:
                obs[-2:, 2] = 25.0  # two frames of one episode (< 1 % of 320)
            w.add_episode(obs, rng.uniform(-1, 1, (40, 2)), np.ones(40), success=True)
    with pytest.raises(ValueError, match=r"obs .*\[2\]: half-range 12\.\d vs 0\.\d.*check_demos .* --clean"):
        Pretrainer(tiny_cfg(str(root), tmp_path / "a", val_fraction=0.0))
    t = Pretrainer(tiny_cfg(str(root), tmp_path / "b", val_fraction=0.0, normalizer_outlier_ratio=None))
    assert float(t.policy.obs_normalizer.scale[2]) > 10  # fitted anyway, as asked
