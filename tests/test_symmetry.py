"""Left-right mirror of the leg policy (lowlevel/symmetry.py) and PPO's mirror loss."""
import numpy as np
import pytest
import torch

from loco_manip_controller import policy_io as pio
from loco_manip_controller.gait import SWING_LEFT, SWING_RIGHT
from loco_manip_controller.reference_motion import ReferenceMotion, ReferenceMotionConfig
from refine_dp_training.lowlevel.symmetry import Mirror, joint_mirror, observation_mirror
from t1_description.joint_table import load_joint_table
from t1_description.kinematics import arm_kinematics


def _mirror_planar(p):
    p = np.array(p, dtype=float)
    p[..., 1] *= -1
    p[..., 2] *= -1
    return p


def test_leg_joint_mirror_maps_the_reference_of_a_step_onto_the_reference_of_the_mirrored_step():
    jt = load_joint_table()
    motion = ReferenceMotion(ReferenceMotionConfig(ik_iterations=2))
    feet = np.array([[[0.0, 0.0, 0.0], [0.02, -0.21, -0.1]]])
    target = np.array([[0.12, 0.05, 0.2]])
    ref = motion.compute(np.array([SWING_LEFT]), np.array([0.4]), np.array([0.5]), feet, target).joint_pos[0]
    ref_m = motion.compute(np.array([SWING_RIGHT]), np.array([0.4]), np.array([0.5]), _mirror_planar(feet[:, ::-1]),
                           _mirror_planar(target)).joint_pos[0]
    perm, sign = joint_mirror(pio.LEG_JOINTS)
    default = jt.default_q[pio.LEG_ACTION.indices(jt)]
    np.testing.assert_allclose((ref - default)[perm] * sign, ref_m - default, atol=1e-9)
    np.testing.assert_allclose(default[perm] * sign, default)  # the default pose is symmetric


def test_arm_joint_mirror_mirrors_the_hands():
    jt = load_joint_table()
    perm, sign = joint_mirror(pio.ARM_JOINTS)
    default = jt.default_q[pio.ARM_ACTION.indices(jt)]
    q = default + np.random.default_rng(0).normal(0, 0.3, 14)
    (hp, _), (hpm, _) = arm_kinematics().fk(q[None]), arm_kinematics().fk((default + (q - default)[perm] * sign)[None])
    np.testing.assert_allclose(hpm[0], hp[0][::-1] * [1.0, -1.0, 1.0], atol=1e-9)  # hands swapped, y flipped


@pytest.mark.parametrize("variant", ["residual", "residual_step"])
def test_mirroring_twice_is_the_identity_and_a_symmetric_actor_has_no_mirror_loss(variant):
    obs_spec, act_spec = pio.specs("legs", variant)
    perm, sign = observation_mirror(obs_spec)
    x = np.random.default_rng(1).normal(size=(5, obs_spec.dim))
    np.testing.assert_allclose((x[:, perm] * sign)[:, perm] * sign, x)
    from refine_dp_training.rl import ActorCritic
    from refine_dp_training.rl.ppo import PPO, PPOConfig
    ac = ActorCritic(obs_spec.dim, act_spec.dim)
    mirror = Mirror(obs_spec, act_spec, ac.normalizer)
    obs = torch.as_tensor(x, dtype=torch.float32)
    ac.normalizer.update(torch.cat([obs, mirror.raw_obs(obs)]))  # symmetric statistics
    obs_n = ac.normalize(obs)
    torch.testing.assert_close(mirror.obs(mirror.obs(obs_n)), obs_n, atol=1e-5, rtol=1e-5)

    class Symmetric(torch.nn.Module):  # f(s) = g(s) + M_a g(M_s s) is symmetric by construction
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, o):
            return self.inner(o) + mirror.action(self.inner(mirror.obs(o)))

    ac.actor = Symmetric(ac.actor)
    alg = PPO(ac, PPOConfig(symmetry_coef=1.0), 1, 5)
    alg.mirror = mirror
    mb = {"obs": obs_n, "actions": torch.zeros(5, act_spec.dim), "log_probs": torch.zeros(5),
          "advantages": torch.zeros(5), "values": torch.zeros(5), "returns": torch.zeros(5),
          "mu": torch.zeros(5, act_spec.dim), "sigma": torch.ones(5, act_spec.dim)}
    assert alg.losses(mb)["mirror_loss"].item() < 1e-9
