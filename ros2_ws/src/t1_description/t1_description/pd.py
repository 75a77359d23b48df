"""The joint PD law shared by the simulator, the training envs and the hardware safety layer.

The MJCF drives every joint with a `motor` actuator (gear 1, ctrlrange = +-effort), so the
torque applied in simulation is exactly what this function returns; on the robot the same
gains are sent to the motor drivers. Keeping the law in one place keeps sim and robot alike:

    tau = clip(kp * (q_des - q) + kd * (dq_des - dq) + tau_ff, -effort_limit, +effort_limit)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pd_torque(q: Any, dq: Any, q_des: Any, dq_des: Any, kp: Any, kd: Any, tau_ff: Any,
              effort_limit: Any) -> Any:
    """Joint torques of a PD law with feed-forward, clipped to the effort limit.

    All arguments broadcast against each other (last axis = joints, model order). numpy arrays
    give a numpy array; torch tensors (all arguments tensors) give a tensor, so batched training
    code can call the very same function.
    """
    tau = kp * (q_des - q) + kd * (dq_des - dq) + tau_ff
    if hasattr(tau, "clamp"):  # torch.Tensor: clamp accepts tensor bounds
        return tau.clamp(-effort_limit, effort_limit)
    return np.clip(tau, -np.asarray(effort_limit), np.asarray(effort_limit))


def make_pd_actuators(model, actuator_ids, effort_limit, kp=None, kd=None) -> None:
    """Turn the given `motor` actuators of a MuJoCo model into the PD law above, computed by MuJoCo
    at every physics step (so several steps can run in one C call, without Python in the loop).

    force = gain * ctrl + biasprm[1] * q + biasprm[2] * dq, clipped to +-effort (forcerange), with
    biasprm[1] = -kp, biasprm[2] = -kd: exactly pd_torque, in one of two forms.
      * per-command gains (kp, kd None; sim_t1, whose LowCmd carries gains): gain 1 and
        ctrl = kp q_des + kd dq_des + tau_ff, set by apply_pd_command;
      * fixed gains (kp, kd given; the training env): gain kp, so ctrl = q_des is the position
        target (dq_des = tau_ff = 0), and set_pd_gains changes the gains (domain randomization).
    Works for joint transmissions with gear 1, as in model/t1.xml.
    """
    import mujoco

    ids = np.asarray(actuator_ids)
    if np.any(model.actuator_gear[ids, 0] != 1.0):
        raise ValueError("make_pd_actuators needs gear 1 joint actuators")
    if (kp is None) != (kd is None):
        raise ValueError("make_pd_actuators: give both kp and kd (fixed gains) or neither (per-command gains)")
    model.actuator_gaintype[ids] = mujoco.mjtGain.mjGAIN_FIXED
    model.actuator_gainprm[ids] = 0.0
    model.actuator_gainprm[ids, 0] = 1.0
    model.actuator_biastype[ids] = mujoco.mjtBias.mjBIAS_AFFINE
    model.actuator_biasprm[ids] = 0.0
    model.actuator_ctrllimited[ids] = 0
    model.actuator_forcelimited[ids] = 1
    effort = np.asarray(effort_limit, dtype=float)
    model.actuator_forcerange[ids] = np.stack([-effort, effort], axis=-1)
    if kp is not None:
        set_pd_gains(model, ids, kp, kd, effort)


def set_pd_gains(model, actuator_ids, kp, kd, effort_limit=None) -> None:
    """Fixed-gain PD actuators (make_pd_actuators with kp, kd): new gains (and effort limits), ctrl = q_des."""
    ids = np.asarray(actuator_ids)
    kp, kd = np.asarray(kp, dtype=float), np.asarray(kd, dtype=float)
    model.actuator_gainprm[ids, 0] = kp
    model.actuator_biasprm[ids, 1] = -kp
    model.actuator_biasprm[ids, 2] = -kd
    if effort_limit is not None:
        effort = np.asarray(effort_limit, dtype=float)
        model.actuator_forcerange[ids] = np.stack([-effort, effort], axis=-1)


def apply_pd_command(model, data, actuator_ids, q_des, dq_des, kp, kd, tau_ff) -> None:
    """Set one PD command on actuators prepared by make_pd_actuators (held until the next call)."""
    ids = np.asarray(actuator_ids)
    kp, kd = np.asarray(kp, dtype=float), np.asarray(kd, dtype=float)
    model.actuator_biasprm[ids, 1] = -kp
    model.actuator_biasprm[ids, 2] = -kd
    data.ctrl[ids] = kp * np.asarray(q_des) + kd * np.asarray(dq_des) + np.asarray(tau_ff)
