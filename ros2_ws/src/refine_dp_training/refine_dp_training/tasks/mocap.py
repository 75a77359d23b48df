"""What the planner's object observations are made of: sim_t1's NatNet noise + mocap_bridge's tracker, batched.

On the robot (and under sim_t1) an object reaches the planner as NatNet rigid bodies (the object and
the trunk, `t1_trunk`) -> mocap_bridge's tracker -> ObjectStateArray -> messages.objects_from_msg. This
model reproduces that chain for N envs at once, frame by frame (one frame per planner step: the planner
reads the latest one):

- the server (t1_sim.natnet_server._observe): each body is dropped with `dropout_prob` (sent
  untracked), else its world pose gets Gaussian position noise (`noise_pos_std`, m) and a rotation
  by a Gaussian rotation vector (`noise_rot_std_deg` per axis), R <- R_noise R;
- the tracker (mocap_bridge.tracker): a dropped body keeps its last tracked world pose, tracked =
  False; an object never tracked is not published; the root-frame pose is R_t^T (p - p_t),
  R_t^T R with the trunk's latest (possibly held) pose, and root_valid = the trunk tracked in this
  frame;
- the node (messages.objects_from_msg): objects without root_valid are left out, so the planner
  observation zeros them (build_observation's `present` = False).

Output per object: (position in base_link [N, 3], quaternion x, y, z, w [N, 4], tracked [N],
present [N]), the batched form of what objects_from_msg returns.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


class MocapModel:
    def __init__(self, num_envs: int, object_names: tuple[str, ...], noise_pos_std: float = 0.0,
                 noise_rot_std_deg: float = 0.0, dropout_prob: float = 0.0):
        self.n, self.names = int(num_envs), tuple(object_names)
        self.noise_pos_std, self.noise_rot_std_deg = float(noise_pos_std), float(noise_rot_std_deg)
        self.dropout_prob = float(dropout_prob)
        bodies = len(self.names) + 1  # index 0: the trunk
        self.held_pos = np.zeros((self.n, bodies, 3))        # last tracked world pose (tracker state)
        self.held_quat = np.tile([0.0, 0.0, 0.0, 1.0], (self.n, bodies, 1))  # x, y, z, w
        self.ever = np.zeros((self.n, bodies), bool)

    def reset(self, mask) -> None:
        """The masked envs start a new episode: nothing tracked yet (a fresh tracker)."""
        self.ever[np.asarray(mask, bool)] = False

    def observe(self, trunk_pos, trunk_quat_wxyz, object_pos: dict, object_quat_wxyz: dict,
                rng: np.random.Generator, rows=None) -> dict:
        """One MoCap frame of the true poses (world, MuJoCo w, x, y, z) -> the planner's objects.
        rows: env indices the inputs belong to (default: all envs); only their tracker state advances."""
        sel = slice(None) if rows is None else np.asarray(rows)
        pos = np.stack([trunk_pos] + [object_pos[k] for k in self.names], axis=1)                 # [M, B, 3]
        quat = np.stack([trunk_quat_wxyz] + [object_quat_wxyz[k] for k in self.names], axis=1)[..., [1, 2, 3, 0]]
        m, b = pos.shape[:2]
        if self.noise_pos_std > 0:
            pos = pos + rng.normal(0.0, self.noise_pos_std, pos.shape)
        if self.noise_rot_std_deg > 0:
            noise = Rotation.from_rotvec(np.deg2rad(rng.normal(0.0, self.noise_rot_std_deg, (m * b, 3))))
            quat = (noise * Rotation.from_quat(quat.reshape(-1, 4))).as_quat().reshape(m, b, 4)
        tracked = rng.random((m, b)) >= self.dropout_prob if self.dropout_prob > 0 else np.ones((m, b), bool)
        held_pos = np.where(tracked[..., None], pos, self.held_pos[sel])
        held_quat = np.where(tracked[..., None], quat, self.held_quat[sel])
        ever = self.ever[sel] | tracked
        self.held_pos[sel], self.held_quat[sel], self.ever[sel] = held_pos, held_quat, ever
        trunk_inv = Rotation.from_quat(held_quat[:, 0]).inv()
        out = {}
        for k, name in enumerate(self.names, start=1):
            p_root = trunk_inv.apply(held_pos[:, k] - held_pos[:, 0])
            q_root = (trunk_inv * Rotation.from_quat(held_quat[:, k])).as_quat()
            present = ever[:, k] & ever[:, 0] & tracked[:, 0]   # published, and root_valid
            out[name] = (p_root, q_root, tracked[:, k].copy(), present)
        return out
