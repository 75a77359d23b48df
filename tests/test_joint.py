"""Joint optimisation (finetune/joint.py, REFINE-DP Alg. 1) and its command replay (lowlevel/replay.py): the
low-level env plays recorded planner commands at the TaskEnv's timing; one joint iteration updates the planner
and the controller and the task env then runs the new controller; the state round-trips.

Tiny settings (2 task envs, a random tiny DP, 2 low-level envs of 8 steps): minutes of CPU would be needed
for anything to learn, so these check the plumbing, not the learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loco_manip_controller.policy_runtime import MODELS_DIR
from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
from refine_dp_planner.planner_io import ACTION_DIM, actions_from_vectors
from refine_dp_planner.policy import DiffusionPolicy
from refine_dp_training.finetune import joint
from refine_dp_training.lowlevel.config import EnvConfig
from refine_dp_training.lowlevel.env import T1LowLevelEnv
from refine_dp_training.lowlevel.replay import CommandBuffer, CommandReplay, idle_command
from refine_dp_training.pretrain.artifacts import save_policy_file

torch.set_num_threads(1)


def _trajectory(rows: int, seed: int = 0) -> np.ndarray:
    """Distinct, valid planner commands: the idle command moved a little, row by row."""
    g = np.random.default_rng(seed)
    traj = np.tile(idle_command(), (rows, 1))
    traj[:, :3] = g.uniform(-0.2, 0.2, (rows, 3))
    traj[:, 3:6] += g.uniform(-0.03, 0.03, (rows, 3))     # left hand position
    traj[:, 12:15] += g.uniform(-0.03, 0.03, (rows, 3))   # right hand position
    traj[:, 21:23] = g.uniform(0, 1, (rows, 2))
    return traj.astype(np.float32)


def test_buffer_records_episodes_and_running_trajectories():
    buf = CommandBuffer(num_envs=2, capacity=5)
    a, b = _trajectory(3, 1), _trajectory(3, 2)
    buf.record(np.stack([a[0], b[0]]))
    buf.record(np.stack([a[1], b[1]]), active=np.array([True, False]), done=np.array([True, False]))
    trajs = buf.trajectories()
    np.testing.assert_array_equal(trajs[0], a[:2])    # env 0's episode, closed at its end
    np.testing.assert_array_equal(trajs[1], b[:1])    # env 1's, still running: sampled too
    buf.record(np.stack([a[2], b[2]]), done=np.array([True, True]))
    buf.record(np.stack([a[0], b[0]]), done=np.array([True, True]))
    assert sum(len(t) for t in buf.finished) <= 5     # the oldest episodes went
    state = buf.state_dict()
    other = CommandBuffer(num_envs=2)
    other.load_state_dict(state)
    for x, y in zip(other.trajectories(), buf.trajectories()):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("task", ["arms", "legs"])
def test_replay_plays_recorded_commands_at_the_task_env_timing(task):
    """Action c of an episode sees the hand targets of row c // 5; the footstep planner update after it follows
    that row's velocity and its physics step runs that row's grippers; the last row holds at the end."""
    traj = _trajectory(4)
    buf = CommandBuffer(num_envs=1)
    buf.record(traj[:1])
    for row in traj[1:]:
        buf.record(row[None])
    cfg = EnvConfig(task=task, num_envs=2, nthread=1, policy_variant="absolute")
    cfg.randomization.enabled = False
    if task == "legs":
        cfg.arm_policy_onnx, cfg.arm_policy_fraction = str(MODELS_DIR / "arms.onnx"), 1.0
    env = T1LowLevelEnv(cfg, seed=0, commands=CommandReplay(2, buf, max_rows=200, hold_steps=5))
    for c in range(24):
        row = traj[min(c // 5, 3)]
        _, pos, rot, grip = actions_from_vectors(row[None])
        tp, tr = env.hand_targets()
        np.testing.assert_allclose(tp, np.repeat(pos, 2, 0), atol=1e-6)
        np.testing.assert_allclose(tr, np.repeat(rot, 2, 0), atol=1e-6)
        env.step(np.zeros((2, env.act_dim)))
        np.testing.assert_allclose(env.vel_cmd.cmd, np.repeat(row[None, :3], 2, 0), atol=1e-6)
        np.testing.assert_allclose(env.sim._ctrl[:, -1, env.sim.idx.gripper_ctrl], np.repeat(grip, 2, 0), atol=1e-6)


def test_replay_without_commands_plays_the_idle_command():
    replay = CommandReplay(3, CommandBuffer(num_envs=1), max_rows=10)
    replay.reset(np.ones(3, bool))
    assert replay.idle_rows.all()
    np.testing.assert_array_equal(replay.current(), np.tile(idle_command(), (3, 1)))
    assert replay.current().shape == (3, ACTION_DIM)


# ---- the joint method ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> str:
    """A tiny random DP for t1-pickup (obs 33, act 23): its actions stay near the idle command (valid poses)."""
    torch.manual_seed(0)
    cfg = DiffusionPolicyConfig(obs_dim=33, action_dim=ACTION_DIM, obs_horizon=2, action_horizon=4,
                                act_steps=2, num_train_timesteps=5, ddim_steps=5, backbone="mlp",
                                mlp=MLPDenoiserConfig(hidden_dims=[32, 32]))
    policy = DiffusionPolicy(cfg)
    g = np.random.default_rng(1)
    actions = np.tile(idle_command(), (200, 1)) + g.uniform(-0.02, 0.02, (200, ACTION_DIM))
    actions[:, :3] = g.uniform(-0.2, 0.2, (200, 3))
    policy.fit_normalizers(g.normal(0, 1, (200, 33)), actions)
    path = tmp_path_factory.mktemp("dp") / "policy.pt"
    save_policy_file(path, policy, None, {"env": "t1-pickup"})
    return str(path)


def _cfg(pretrained, out, **kw) -> joint.Config:
    base = dict(pretrained=pretrained, env="t1-pickup", env_kwargs={"nthread": 1, "randomize": False}, out=str(out),
                num_envs=2, n_steps=2, ft_denoising_steps=2, batch_size=8, update_epochs=1,
                critic_warmup_iterations=0, critic_hidden=[16], eval_episodes=0, tensorboard=False, progress=False,
                controller_iterations=1, controller_num_envs=2, controller_steps_per_env=8,
                controller_critic_warmup=0, controller_lr=1e-3)
    return joint.Config(**(base | kw))


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_one_joint_iteration_updates_planner_and_controller_and_the_task_env_runs_it(pretrained, tmp_path):
    m = joint.Method(_cfg(pretrained, tmp_path))
    task_env = m.env.env.env
    step = task_env.step

    def paying(*args):   # a reward in the batch (a reward-free batch trains no planner: tests/test_dppo.py)
        obs, reward, *rest = step(*args)
        return (obs, reward + 1.0, *rest)

    task_env.step = paying
    shipped = {part: getattr(task_env.controller, part) for part in ("legs", "arms")}
    dp_before = _params(m.actor.policy.denoiser)
    ctrl_before = {part: _params(p.runner.policy.actor) for part, p in m.parts.items()}
    stats = m.train_iteration()
    # the planner's commands went into the buffer: every executed step of every env
    assert len(m.buffer) == m.env_steps == 2 * 2 * 2
    assert stats["command_buffer_rows"] == 8 and "controller_legs/learning_rate" in stats
    assert any(not torch.equal(a, b) for a, b in zip(dp_before, _params(m.actor.policy.denoiser)))
    for part, p in m.parts.items():
        assert any(not torch.equal(a, b) for a, b in zip(ctrl_before[part], _params(p.runner.policy.actor)))
        assert not p.env.commands.idle_rows.any()  # the low-level episodes replayed the planner's commands
        running = getattr(task_env.controller, part)
        assert running.path == p.policy_path and running is not shipped[part]
        obs = np.random.default_rng(0).normal(0, 1, (3, running.obs_spec.dim))
        assert not np.allclose(running(obs), shipped[part](obs))
        assert (p.out / "config.json").is_file() and list((p.out / "checkpoints").glob("model_*.pt"))
    # each low-level env runs the other part's updated policy
    assert m.parts["legs"].env.arm_policy.arms.path == m.parts["arms"].policy_path
    assert m.parts["arms"].env.leg_policy.legs.path == m.parts["legs"].policy_path
    m.train_iteration()  # the next rollout runs with the updated controller
    assert m.iteration == 2

    state = m.state_dict()
    other = joint.Method(_cfg(pretrained, tmp_path / "resumed"))
    with pytest.warns(UserWarning, match="fresh episodes"):
        other.load_state_dict(state)
    assert other.iteration == 2 and other.env_steps == m.env_steps
    for a, b in zip(_params(m.actor.policy.denoiser), _params(other.actor.policy.denoiser)):
        torch.testing.assert_close(a, b)
    for part, p in m.parts.items():
        q = other.parts[part]
        for a, b in zip(_params(p.runner.policy), _params(q.runner.policy)):
            torch.testing.assert_close(a, b)
        assert q.runner.alg.learning_rate == p.runner.alg.learning_rate and q.runner.iteration == p.runner.iteration
        assert getattr(other.env.env.env.controller, part).path == q.policy_path
    assert [len(t) for t in other.buffer.trajectories()] == [len(t) for t in m.buffer.trajectories()]


def test_joint_is_registered_and_refuses_a_bad_config_or_an_env_without_a_controller(tmp_path):
    from refine_dp_training.finetune.cli import METHODS
    assert METHODS["joint"][0] == "refine_dp_training.finetune.joint"
    with pytest.raises(ValueError, match="controller_parts"):
        _cfg("x", tmp_path, controller_parts="hands")
    cfg = DiffusionPolicyConfig(obs_dim=3, action_dim=2, obs_horizon=2, action_horizon=4, act_steps=2,
                                num_train_timesteps=5, ddim_steps=5, backbone="mlp",
                                mlp=MLPDenoiserConfig(hidden_dims=[8]))
    policy = DiffusionPolicy(cfg)
    g = np.random.default_rng(0)
    policy.fit_normalizers(g.normal(0, 1, (20, 3)), g.normal(0, 1, (20, 2)))
    save_policy_file(tmp_path / "toy.pt", policy, None, {"env": "toy-pointmass"})
    with pytest.raises(ValueError, match="T1 task env"):
        joint.Method(_cfg(str(tmp_path / "toy.pt"), tmp_path / "out", env="toy-pointmass", env_kwargs={}))
