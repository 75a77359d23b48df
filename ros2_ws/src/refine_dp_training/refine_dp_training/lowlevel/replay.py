"""Commands the diffusion planner issued, replayed to the low-level training env (REFINE-DP joint optimisation).

`CommandBuffer` keeps the planner's executed commands (planner_io action vectors [23]: base velocity, both
hand poses in base_link as position + rotation 6D, grippers; after the planner node's clamps, i.e. what the
controller was sent) as one trajectory per planner episode, one row per 0.1 s planner step. Trajectories
still running are sampled too (their rows so far), so a rollout shorter than an episode already feeds the
controller. The oldest finished trajectories go once more than `capacity` rows are kept.

`CommandReplay` is the command source of `T1LowLevelEnv(commands=...)`: each episode of env i plays one
trajectory drawn from the buffer from its first row, each row held for `hold_steps` control steps (5: the
50 Hz controller under the 10 Hz planner), then holds the last row until the episode ends. Timing is the
TaskEnv's: the c-th action of an episode (c = 0, 1, ...) observes the hand targets of row c // hold_steps,
its physics step runs that row's grippers, and the footstep planner update after it follows that row's base
velocity. With an empty buffer an episode plays the idle command (standing, hands at the default pose).
"""
from __future__ import annotations

import numpy as np

from refine_dp_planner.planner_io import ACTION_DIM, actions_from_vectors, actions_to_vectors


def idle_command() -> np.ndarray:
    """[ACTION_DIM]: stand still, both hands at the FK of the default arm pose, grippers open."""
    from t1_description.joint_table import ARM_GROUPS, load_joint_table
    from t1_description.kinematics import arm_kinematics

    table = load_joint_table()
    pos, rot = arm_kinematics().fk(table.default_q[table.indices(*ARM_GROUPS)][None])
    return actions_to_vectors(np.zeros((1, 3)), pos, rot, np.zeros((1, 2)))[0]


class CommandBuffer:
    """Planner command trajectories, recorded per env (`record`) and drawn whole (`sample`)."""

    def __init__(self, num_envs: int, capacity: int = 20_000):
        if capacity < 1:
            raise ValueError(f"CommandBuffer capacity must be >= 1 row, got {capacity}")
        self.capacity = int(capacity)
        self.finished: list[np.ndarray] = []
        self.running: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self.rows_recorded = 0

    def record(self, commands: np.ndarray, active: np.ndarray | None = None, done: np.ndarray | None = None) -> None:
        """One planner step: commands [N, ACTION_DIM] of the envs that stepped (`active`, default all);
        `done` envs finished their episode with this row."""
        commands = np.asarray(commands, np.float32)
        if commands.ndim != 2 or commands.shape[1] != ACTION_DIM:
            raise ValueError(f"planner commands must be [N, {ACTION_DIM}], got {commands.shape}")
        n = len(self.running)
        active = np.ones(n, bool) if active is None else np.asarray(active, bool)
        for i in np.flatnonzero(active):
            self.running[i].append(commands[i].copy())
        self.rows_recorded += int(active.sum())
        if done is not None:
            for i in np.flatnonzero(np.asarray(done, bool) & active):
                self.finish(i)

    def finish(self, i: int) -> None:
        """Close env i's running trajectory (an episode end, or a reset of the recorded env)."""
        if self.running[i]:
            self.finished.append(np.stack(self.running[i]))
            self.running[i] = []
        while len(self.finished) > 1 and sum(len(t) for t in self.finished) > self.capacity:
            self.finished.pop(0)

    def trajectories(self) -> list[np.ndarray]:
        return self.finished + [np.stack(r) for r in self.running if r]

    def __len__(self) -> int:
        """Rows available to sample."""
        return sum(len(t) for t in self.finished) + sum(len(r) for r in self.running)

    def sample(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        """`count` trajectories, uniformly over the trajectories held (empty list when there are none)."""
        trajs = self.trajectories()
        if not trajs:
            return []
        return [trajs[k] for k in rng.integers(0, len(trajs), count)]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "finished": [t.copy() for t in self.finished],
                "running": [np.stack(r) if r else np.zeros((0, ACTION_DIM), np.float32) for r in self.running],
                "rows_recorded": self.rows_recorded}

    def load_state_dict(self, state: dict) -> None:
        if len(state["running"]) != len(self.running):
            raise ValueError(f"command buffer state is for {len(state['running'])} envs, this one records "
                             f"{len(self.running)}: resume with the run's saved config")
        self.capacity = int(state["capacity"])
        self.finished = [np.asarray(t, np.float32).copy() for t in state["finished"]]
        self.running = [list(np.asarray(r, np.float32)) for r in state["running"]]
        self.rows_recorded = int(state["rows_recorded"])


class CommandReplay:
    """Per-env replay of buffered planner commands; the command source of T1LowLevelEnv (see module doc).

    max_rows: rows kept per episode (the episode's control steps / hold_steps, rounded up); rows beyond
    are never reached.
    """

    def __init__(self, num_envs: int, buffer: CommandBuffer, max_rows: int, hold_steps: int = 5,
                 rng: np.random.Generator | None = None):
        if hold_steps < 1 or max_rows < 1:
            raise ValueError(f"hold_steps ({hold_steps}) and max_rows ({max_rows}) must be >= 1")
        self.buffer, self.hold_steps, self.max_rows = buffer, int(hold_steps), int(max_rows)
        self.rng = rng or np.random.default_rng(0)
        self.idle = idle_command()
        self.rows = np.tile(self.idle, (num_envs, self.max_rows, 1))  # [N, max_rows, ACTION_DIM]
        self.length = np.ones(num_envs, np.int64)                     # rows of each env's trajectory
        self.step = np.zeros(num_envs, np.int64)                      # control steps since the episode start
        self.idle_rows = np.ones(num_envs, bool)                      # playing the idle command (empty buffer)

    def reset(self, mask: np.ndarray) -> None:
        """Draw a trajectory for each masked env (a loop over the reset envs only) and start it."""
        ids = np.flatnonzero(mask)
        drawn = self.buffer.sample(self.rng, len(ids))
        for k, i in enumerate(ids):
            traj = drawn[k][:self.max_rows] if drawn else self.idle[None]
            self.rows[i, :len(traj)] = traj
            self.rows[i, len(traj):] = traj[-1]
            self.length[i] = len(traj)
        self.idle_rows[ids] = not drawn
        self.step[ids] = 0

    def advance(self) -> None:
        """One control step passed: the next action's commands."""
        self.step += 1

    def current(self) -> np.ndarray:
        """[N, ACTION_DIM]: the row each env plays now (the last one held after the trajectory ends)."""
        row = np.minimum(self.step // self.hold_steps, self.length - 1)
        return self.rows[np.arange(len(row)), row]

    def base_velocity(self) -> np.ndarray:
        """[N, 3] (vx, vy, wz) for the footstep planner."""
        return self.current()[:, :3].astype(np.float64)

    def hand_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Hand poses in the root frame: pos [N, 2, 3], rot [N, 2, 3, 3] (as the TaskEnv decodes them)."""
        _, pos, rot, _ = actions_from_vectors(self.current())
        return pos, rot

    def grippers(self) -> np.ndarray:
        """[N, 2] in [0, 1]."""
        return np.clip(self.current()[:, 21:23].astype(np.float64), 0.0, 1.0)
