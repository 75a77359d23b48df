"""The T1 ankle's parallel linkage: motor space (two crank motors) <-> joint space (pitch, roll).

The T1 drives each ankle's pitch and roll with two motors in the shank (the SDK calls them
kCrankUp* and kCrankDown*, in the ankle pitch and ankle roll slots of a PARALLEL LowCmd /
motor_state_parallel). Each motor turns a crank about an axis parallel to the pitch axis; a rod
joins the crank tip to the foot. The geometry is `parallel_ankle` in joint_table.yaml: the T1's
real rod lengths and anchor points are not public, so it is an APPROXIMATION estimated from the
URDF (see the comment there); the map is exact for that geometry, invertible over the joint
limits, and tested round trip (tests/test_ankle.py).

Kinematics, following the usual two-rod ankle treatment (Kumar et al., "On the Comprehensive
Kinematics Analysis of a Humanoid Parallel Ankle Mechanism", J. Mechanisms Robotics 2018):
  foot anchor (shank frame)  F_i(q) = R_y(pitch) (r0 + R_x(roll) f_i)
  crank tip                  B_i(th_i) = m_i + R_y(th_i) c_i
  loop closure               |B_i(th_i) - F_i(q)| = L_i   (L_i from the zero pose: th = 0 at q = 0)
IK (q -> th) is closed form per rod: A cos th + B sin th = K. FK (th -> q) is Newton's method on
IK with the Jacobian J = d th / d q (from differentiating the loop closure). Velocities and
torques map through J: dth = J dq, tau_q = J^T tau_th (virtual work).

Arrays: q and th have last axis 2 ([pitch, roll] / [crank_up, crank_down]); any leading shape
(e.g. (2,) legs x 2) is broadcast, so both legs are one call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

MOTOR_NAMES = ("crank_up", "crank_down")


class AnkleLinkageError(ValueError):
    """The parallel_ankle section of the joint table is missing or malformed."""


class AnkleLinkage:
    """One ankle (left-leg geometry; `mirrored()` gives the right). Metres, shank frame with its
    origin on the pitch axis (URDF Ankle_Pitch joint origin), x forward, y left, z up.

    The maps run in plain Python floats: they sit in sim_t1's 500 Hz loop, where numpy's per-call
    overhead on 2-vectors would cost ten times more. Array inputs (..., 2) are looped over.
    """

    def __init__(self, roll_offset, axis_point, crank, foot_anchor, motor_effort, motor_velocity):
        self.roll_offset = np.asarray(roll_offset, dtype=float)   # (3,) roll axis origin, pitch frame
        self.axis_point = np.asarray(axis_point, dtype=float)     # (2, 3) a point on each motor axis (along y)
        self.crank = np.asarray(crank, dtype=float)               # (2, 3) axis point -> crank tip at angle 0
        self.foot_anchor = np.asarray(foot_anchor, dtype=float)   # (2, 3) rod end, foot (roll) frame
        self.motor_effort = np.asarray(motor_effort, dtype=float)     # (2,) N m
        self.motor_velocity = np.asarray(motor_velocity, dtype=float)  # (2,) rad/s
        if np.any(np.abs(self.crank[:, 1]) > 1e-12):
            raise AnkleLinkageError("crank vectors must lie in the x-z plane (motor axes along y)")
        self._r0 = tuple(float(v) for v in self.roll_offset)
        self._rods = [(tuple(map(float, m)), (float(c[0]), float(c[2])), tuple(map(float, f)))
                      for m, c, f in zip(self.axis_point, self.crank, self.foot_anchor)]
        # rod lengths and the IK branch: motor angle 0 at the zero joint pose
        self.rod_length = np.zeros(2)
        self._branch = [1.0, 1.0]
        self._L2 = [0.0, 0.0]
        for i, (m, (cx, cz), f) in enumerate(self._rods):
            F = self._anchor1(0.0, 0.0, f)
            e = (m[0] + cx - F[0], m[1] - F[1], m[2] + cz - F[2])
            self._L2[i] = e[0] ** 2 + e[1] ** 2 + e[2] ** 2
            self.rod_length[i] = math.sqrt(self._L2[i])
            a, b, _ = self._abk1(0.0, 0.0, i)
            self._branch[i] = -1.0 if math.atan2(b, a) >= 0 else 1.0
        self.rod_length.setflags(write=False)
        j0 = np.array(self._jac1(0.0, 0.0, 0.0, 0.0))
        self._j0_inv = np.linalg.inv(j0)

    def mirrored(self) -> "AnkleLinkage":
        """The right ankle: y mirrored (the same motor names on the mirrored sides)."""
        flip = np.array([1.0, -1.0, 1.0])
        return AnkleLinkage(self.roll_offset * flip, self.axis_point * flip, self.crank * flip,
                            self.foot_anchor * flip, self.motor_effort, self.motor_velocity)

    # ------------------------------------------------------------------ scalar core
    def _anchor1(self, p, r, f):
        """Foot anchor f (foot frame) in the shank frame: R_y(p) (r0 + R_x(r) f)."""
        cr, sr, cp, sp = math.cos(r), math.sin(r), math.cos(p), math.sin(p)
        gx = self._r0[0] + f[0]
        gy = self._r0[1] + f[1] * cr - f[2] * sr
        gz = self._r0[2] + f[1] * sr + f[2] * cr
        return (gx * cp + gz * sp, gy, -gx * sp + gz * cp)

    def _abk1(self, p, r, i):
        m, (cx, cz), f = self._rods[i]
        F = self._anchor1(p, r, f)
        dx, dy, dz = F[0] - m[0], F[1] - m[1], F[2] - m[2]
        a = dx * cx + dz * cz
        b = dx * cz - dz * cx
        k = 0.5 * (cx * cx + cz * cz + dx * dx + dy * dy + dz * dz - self._L2[i])
        return a, b, k

    def _ik1(self, p, r):
        out = []
        for i in (0, 1):
            a, b, k = self._abk1(p, r, i)
            ratio = k / math.hypot(a, b)
            if not -1.0 <= ratio <= 1.0:
                raise ValueError(f"ankle pose [{p}, {r}] is outside the parallel linkage's reach")
            th = math.atan2(b, a) + self._branch[i] * math.acos(ratio)
            out.append((th + math.pi) % (2 * math.pi) - math.pi)
        return out[0], out[1]

    def _jac1(self, p, r, th0, th1):
        """Rows d th_i / d (pitch, roll), from differentiating |tip_i - F_i|^2 = L_i^2."""
        cp, sp, cr, sr = math.cos(p), math.sin(p), math.cos(r), math.sin(r)
        rows = []
        for i, th in ((0, th0), (1, th1)):
            m, (cx, cz), f = self._rods[i]
            F = self._anchor1(p, r, f)
            ct, st = math.cos(th), math.sin(th)
            ux, uz = cx * ct + cz * st, -cx * st + cz * ct          # R_y(th) c
            ex, ey, ez = m[0] + ux - F[0], m[1] - F[1], m[2] + uz - F[2]
            den = ex * uz - ez * ux                                 # e . (y x R c)
            num_p = ex * F[2] - ez * F[0]                           # e . (y x F)
            wy, wz = f[1] * cr - f[2] * sr, f[1] * sr + f[2] * cr   # R_x(r) f
            num_r = ex * wy * sp - ey * wz + ez * wy * cp           # e . R_y (x x R_x f)
            rows.append((num_p / den, num_r / den))
        return rows

    def _fk1(self, t0, t1, p, r, tol, max_iter):
        for _ in range(30):  # a first guess outside the linkage's reach: pull it towards zero
            try:
                e0, e1 = (a - b for a, b in zip(self._ik1(p, r), (t0, t1)))
                break
            except ValueError:
                p, r = 0.5 * p, 0.5 * r
        else:
            raise ValueError(f"ankle FK: no start inside the linkage's reach for [{t0}, {t1}]")
        for _ in range(max_iter):
            if abs(e0) < tol and abs(e1) < tol:
                return p, r
            th = self._ik1(p, r)
            (a, b), (c, d) = self._jac1(p, r, *th)
            det = a * d - b * c
            sp_, sr_ = (d * e0 - b * e1) / det, (-c * e0 + a * e1) / det
            for _ in range(30):  # backtrack while a full Newton step leaves the reach
                try:
                    n0, n1 = self._ik1(p - sp_, r - sr_)
                    break
                except ValueError:
                    sp_, sr_ = 0.5 * sp_, 0.5 * sr_
            else:
                break
            p, r, e0, e1 = p - sp_, r - sr_, n0 - t0, n1 - t1
        if abs(e0) > 1e-6 or abs(e1) > 1e-6:
            raise ValueError(f"ankle FK did not converge for motor angles [{t0}, {t1}]")
        return p, r

    # ------------------------------------------------------------------ array API
    def ik(self, q) -> np.ndarray:
        """Joint angles [pitch, roll] -> motor angles [crank_up, crank_down] (closed form).
        ValueError if the pose is outside the linkage's reach."""
        q = np.asarray(q, dtype=float)
        out = np.empty_like(q)
        for idx in np.ndindex(q.shape[:-1]):
            out[idx] = self._ik1(q[idx][0], q[idx][1])
        return out

    def jacobian(self, q) -> np.ndarray:
        """J = d th / d q, shape (..., 2 motors, 2 joints)."""
        q = np.asarray(q, dtype=float)
        out = np.empty(q.shape + (2,))
        for idx in np.ndindex(q.shape[:-1]):
            p, r = q[idx]
            out[idx] = self._jac1(p, r, *self._ik1(p, r))
        return out

    def fk(self, th, q0=None, tol: float = 1e-10, max_iter: int = 20) -> np.ndarray:
        """Motor angles -> joint angles by Newton's method on ik (warm start q0 if given, else the
        linear guess J(0)^-1 th)."""
        th = np.asarray(th, dtype=float)
        q0 = np.einsum("ij,...j->...i", self._j0_inv, th) if q0 is None else np.broadcast_to(q0, th.shape)
        out = np.empty_like(th)
        for idx in np.ndindex(th.shape[:-1]):
            out[idx] = self._fk1(th[idx][0], th[idx][1], q0[idx][0], q0[idx][1], tol, max_iter)
        return out

    def joint_to_motor(self, q, dq, tau):
        """One ankle's joint state -> motor state: th = IK(q), dth = J dq, tau_th = J^-T tau."""
        p, r = float(q[0]), float(q[1])
        th = self._ik1(p, r)
        (a, b), (c, d) = self._jac1(p, r, *th)
        dth = (a * dq[0] + b * dq[1], c * dq[0] + d * dq[1])
        det = a * d - b * c  # J^T x = tau  ->  x = J^-T tau
        tau_th = ((d * tau[0] - c * tau[1]) / det, (-b * tau[0] + a * tau[1]) / det)
        return th, dth, tau_th


@dataclass(frozen=True, eq=False)
class ParallelAnkles:
    """Both ankles of the joint table: which model indices they occupy, left and right linkages."""

    left: AnkleLinkage
    right: AnkleLinkage
    indices: np.ndarray   # (2 legs, 2): model indices of [pitch, roll] (== the PARALLEL motor slots)
    source: Path

    def linkage(self, leg: int) -> AnkleLinkage:
        return (self.left, self.right)[leg]


def _vec(raw, key, shape, where):
    try:
        arr = np.asarray(raw[key], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise AnkleLinkageError(f"{where}: '{key}' missing or not numeric") from None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise AnkleLinkageError(f"{where}: '{key}' must be {shape} finite numbers, got {raw[key]!r}")
    return arr


def parse_parallel_ankles(doc: dict, names, source: Path) -> ParallelAnkles:
    """The parallel_ankle section of a joint table document."""
    raw = doc.get("parallel_ankle") if isinstance(doc, dict) else None
    where = f"{source}: parallel_ankle"
    if not isinstance(raw, dict):
        raise AnkleLinkageError(f"{where} is missing: the PARALLEL command mode needs the ankle geometry")
    motors = []
    for m in MOTOR_NAMES:
        if not isinstance(raw.get(m), dict):
            raise AnkleLinkageError(f"{where}.{m} is missing")
        motors.append(raw[m])
    left = AnkleLinkage(
        roll_offset=_vec(raw, "roll_offset", (3,), where),
        axis_point=np.stack([_vec(m, "axis_point", (3,), f"{where}.{n}") for m, n in zip(motors, MOTOR_NAMES)]),
        crank=np.stack([_vec(m, "crank", (3,), f"{where}.{n}") for m, n in zip(motors, MOTOR_NAMES)]),
        foot_anchor=np.stack([_vec(m, "foot_anchor", (3,), f"{where}.{n}") for m, n in zip(motors, MOTOR_NAMES)]),
        motor_effort=np.array([float(m.get("effort", 0)) for m in motors]),
        motor_velocity=np.array([float(m.get("velocity", 0)) for m in motors]))
    if np.any(left.motor_effort <= 0) or np.any(left.motor_velocity <= 0):
        raise AnkleLinkageError(f"{where}: each motor needs a positive effort and velocity")
    joints = raw.get("joints")
    if not (isinstance(joints, list) and len(joints) == 2 and all(isinstance(j, list) and len(j) == 2 for j in joints)):
        raise AnkleLinkageError(f"{where}.joints must be [[left pitch, left roll], [right pitch, right roll]]")
    try:
        idx = np.array([[list(names).index(n) for n in leg] for leg in joints], dtype=np.int64)
    except ValueError:
        raise AnkleLinkageError(f"{where}.joints names {joints} are not all joints of the table") from None
    return ParallelAnkles(left=left, right=left.mirrored(), indices=idx, source=source)


def load_parallel_ankles(table=None) -> ParallelAnkles:
    """The ankles of the project's joint table (or of `table`, a JointTable)."""
    from t1_description.joint_table import load_joint_table

    table = table or load_joint_table()
    doc = yaml.safe_load(Path(table.source).read_text())
    return parse_parallel_ankles(doc, table.names, Path(table.source))
