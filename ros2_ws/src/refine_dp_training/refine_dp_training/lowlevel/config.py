"""Typed configuration of the T1 low-level environments (saved beside every checkpoint).

A task reads as lists of what matters: `rewards` maps a term name (lowlevel/terms.py) to its
weight, `terminations` names the ending conditions, `randomization` lists the domain
randomization ranges. Physics: 5 ms x 4 by default (FACTS: FALCON/AGILE); sim_t1 runs 2 ms,
so a policy trained here is checked in sim_t1 before use (evaluate.py can run either).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from loco_manip_controller.contract import contract_of
from loco_manip_controller.footstep_planner import FootstepPlannerConfig
from loco_manip_controller.reference_motion import ReferenceMotionConfig


@dataclass
class RandomizationConfig:
    enabled: bool = True
    floor_friction: tuple[float, float] = (0.4, 1.2)
    trunk_mass_scale: tuple[float, float] = (0.9, 1.15)
    link_mass_scale: tuple[float, float] = (0.95, 1.05)
    hand_payload_kg: tuple[float, float] = (0.0, 0.5)   # per hand; both tasks (eval uses the same range)
    kp_scale: tuple[float, float] = (0.9, 1.1)
    kd_scale: tuple[float, float] = (0.9, 1.1)
    motor_strength_scale: tuple[float, float] = (0.9, 1.1)
    delay_physics_steps: tuple[int, int] = (0, 2)      # action latency, inclusive range
    push_interval_s: tuple[float, float] = (4.0, 8.0)  # velocity kicks (booster_gym style)
    push_linvel_std: float = 0.15
    push_angvel_std: float = 0.1
    reset_joint_noise: float = 0.05                    # rad, uniform +- on the driven joints
    reset_yaw_range: float = 3.14159


@dataclass
class CommandConfig:
    """Random base-velocity commands for the footstep planner (legs) and hand targets (arms)."""

    max_vx: float = 0.2
    max_vy: float = 0.2      # the planner clips lateral steps (max_lateral)
    max_wz: float = 0.5
    stand_probability: float = 0.1
    resample_s: tuple[float, float] = (2.0, 6.0)
    # arms: random reachable targets = FK of random arm joints, interpolated smoothly
    arm_joint_range_fraction: float = 0.6   # of each arm joint's range, centred on its default pose
    arm_move_s: tuple[float, float] = (1.0, 3.0)
    arm_hold_s: tuple[float, float] = (0.5, 2.0)
    arm_static_probability: float = 0.2     # envs that keep the default target for a while


@dataclass
class EnvConfig:
    task: str = "legs"                      # "legs" | "arms"
    policy_variant: str = "absolute"        # policy_io.specs: legs "absolute" | "residual" (on the reference)
    num_envs: int = 64
    physics_dt: float = 0.005
    decimation: int = 4                     # 50 Hz control
    nthread: int = 2
    episode_s: float = 20.0
    obs_noise_scale: float = 1.0            # x policy_io noise_std (0: no noise)
    reward_scale: float = 0.1               # keeps returns O(10) so the value loss stays tame
    fall_height: float = 0.45               # m, trunk below this ends the episode
    fall_gravity_z: float = -0.5            # projected gravity z above this (tilt > 60 deg) ends it
    max_foot_deviation: float = 0.08        # m, termination "foot_deviation" (legs): foot vs reference, 3-D
    # legs task: upper body held by PD at random configurations; arms task: legs policy (ONNX) or PD
    arm_random_pose_fraction: float = 0.5   # legs task: of the arm range, around the default pose
    leg_policy_onnx: str = ""               # arms task: "" = legs held by PD at the default pose
    arm_policy_onnx: str = ""               # legs task: "" = arms PD-driven along the random joint paths;
    #                                         else this arm policy tracks the paths' hand poses (FK), as in use
    arm_policy_fraction: float = 1.0        # legs task with arm_policy_onnx: share of envs (the first ones) whose
    #                                         arms the policy drives; the rest are PD-driven along the paths
    # legs, residual: the reference the rewards imitate. "action": the one the action is added to (computed once
    # per step in the base foot's frame, placed on the measured foot); "planner": a second one from the planner's
    # world footholds (the env before the two were shared; `refine-dp bench env --compare` measures both)
    reward_reference: str = "action"
    command_path_tau_s: float = 2.0         # s, leak of the integrated command (terms command_position/_heading)
    # steps up and down (legs, policy_variant residual_step): a platform (sim.PLATFORM_HALF) ahead of the robot in
    # this share of the episodes, near edge platform_distance ahead, top platform_height high; the footstep
    # planner gets the ground height (footstep_planner.max_step_height must be > 0 for it to issue target_z)
    platform_probability: float = 0.0
    platform_height: tuple[float, float] = (0.03, 0.12)
    platform_distance: tuple[float, float] = (0.3, 0.8)
    ankle_kp: float = 0.0                   # 0: joint table value
    target_rate_limit_scale: float = 1.0    # x joint velocity limit: the safety layer's step clamp (0: off)
    # the footstep planner and reference motion of the legs task: written into the exported policy (its
    # contract), from which the controller and the footstep planner node build themselves
    footstep_planner: FootstepPlannerConfig = field(default_factory=FootstepPlannerConfig)
    # ik_iterations 0: Newton steps after the closed-form IK seed (0: ~0.5 mrad, half the cost)
    reference_motion: ReferenceMotionConfig = field(default_factory=lambda: ReferenceMotionConfig(ik_iterations=0))
    commands: CommandConfig = field(default_factory=CommandConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    rewards: dict = field(default_factory=dict)  # term name -> weight; empty = the task default
    terminations: tuple[str, ...] = ("fall_height", "fall_tilt", "non_finite")

    def __post_init__(self):
        if self.task not in ("legs", "arms"):
            raise ValueError(f"EnvConfig.task must be 'legs' or 'arms', got {self.task!r}")
        if self.reward_reference not in ("action", "planner"):
            raise ValueError(f"EnvConfig.reward_reference must be 'action' or 'planner', got {self.reward_reference!r}")
        if not self.command_path_tau_s > 0.0:
            raise ValueError(f"EnvConfig.command_path_tau_s must be > 0, got {self.command_path_tau_s}")
        if not 0.0 <= self.arm_policy_fraction <= 1.0:
            raise ValueError(f"EnvConfig.arm_policy_fraction must be in [0, 1], got {self.arm_policy_fraction}")
        if not self.rewards:
            self.rewards = dict(LEG_REWARDS if self.task == "legs" else ARM_REWARDS)

    @property
    def control_hz(self) -> float:
        return 1.0 / (self.physics_dt * self.decimation)

    def policy_contract(self) -> dict:
        """What a policy trained under this config decides about how it is run (loco_manip_controller.contract):
        written into its exported metadata."""
        return contract_of(self.task, self.control_hz, self.footstep_planner, self.reference_motion)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EnvConfig":
        """From to_dict()'s output, also of older runs: sections they lack take this code's defaults (the
        footstep planner and reference-motion defaults have not changed since the first legs were trained),
        and their top-level `reference_ik_iterations` becomes reference_motion.ik_iterations."""
        d = dict(d)
        cmd = CommandConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("commands").items()})
        rnd = RandomizationConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in d.pop("randomization").items()})
        planner = FootstepPlannerConfig(**d.pop("footstep_planner", {}))
        reference = d.pop("reference_motion", None)
        if "reference_ik_iterations" in d:  # runs before the reference config was a section
            old = d.pop("reference_ik_iterations")
            if reference is not None and reference.get("ik_iterations", old) != old:
                raise ValueError(f"EnvConfig: reference_ik_iterations {old} contradicts reference_motion.ik_iterations "
                                 f"{reference['ik_iterations']}")
            reference = (reference or {}) | {"ik_iterations": old}
        reference = ReferenceMotionConfig(**reference) if reference is not None else ReferenceMotionConfig(
            ik_iterations=0)
        d["terminations"] = tuple(d["terminations"])
        for key in ("platform_height", "platform_distance"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(commands=cmd, randomization=rnd, footstep_planner=planner, reference_motion=reference, **d)


# Motion imitation of the footstep reference (paper) + foot placement + regularizers (FACTS recipes).
LEG_REWARDS = {
    # imitation dominates (DeepMimic's lesson): a policy that only stands must score clearly less
    "alive": 0.2,
    "joint_imitation": 2.0,
    "foot_tracking": 1.5,
    "foot_placement": 4.0,      # paid once, at touchdown
    "swing_target": 2.0,        # the same, dense over the second half of each swing
    "trunk_height": 0.3,
    "trunk_orientation": 0.3,
    "trunk_position": 0.3,
    "contact_schedule": 0.5,
    # imitation of a plan re-anchored on the measured stance foot alone taught stepping in place
    # (5M steps: 10 cm footstep error at 0.2 m/s); paying for the walked velocity fixes the incentive
    "base_velocity": 3.0,
    "yaw_rate": 1.0,
    "action_rate": -0.02,
    "joint_velocity": -2e-4,
    "torque": -2e-5,
    "joint_limits": -2.0,
    "foot_slip": -1.0,
    "termination": -10.0,
}

# FACTS "Arms": Isaac Lab reach-style position/orientation terms, FALCON regularizers.
ARM_REWARDS = {
    "alive": 0.2,
    "hand_position": 1.5,
    "hand_position_fine": 1.0,
    "hand_orientation": 0.75,
    "action_rate": -0.02,
    "arm_joint_velocity": -1e-3,
    "torque": -2e-5,
    "joint_limits": -2.0,
    "termination": -10.0,
}
