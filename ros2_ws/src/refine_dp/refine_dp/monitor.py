"""Watches a running graph from the outside, as a user with `ros2 topic hz` would.

Counts message rates on the graph's lower-rate public topics. The 500 Hz robot_state is left
to the hardware interface's own report (a Python subscriber at 500 Hz would cost the graph a
good part of a core on a 2-core machine). Used by `refine-dp bringup` to fill summary.json.

Velocity tracking, as an observer with a MoCap would judge it: the trunk body's MoCap pose
(ObjectStateArray, world frame) gives the walked velocity, averaged over 1 s (the gait's sway
averages out) and turned into the heading frame; it is compared with the HighLevelCommand
velocity of the same instant (no lag allowance: the footstep gait reacts within a step).
Times are the monitor node's clock: simulated time when the graph runs on sim_t1's /clock
(`refine-dp bringup --sim`), so rates are per simulated second.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from t1_description.kinematics import yaw_of_quat


@dataclass
class RateCounter:
    """Rate of a topic over the last `window` seconds of the run (after start-up)."""
    window: float = 10.0
    stamps: list[float] = field(default_factory=list)

    def tick(self, now: float) -> None:
        self.stamps.append(now)

    def rate_hz(self) -> float:
        if len(self.stamps) < 2:
            return 0.0
        end = self.stamps[-1]
        recent = [t for t in self.stamps if t >= end - self.window]
        if len(recent) < 2 or recent[-1] == recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    @property
    def count(self) -> int:
        return len(self.stamps)


class GraphMonitor:
    def __init__(self, node: Node, trunk_body: str = "t1_trunk") -> None:
        from refine_dp_msgs.msg import HighLevelCommand, ObjectStateArray

        self.node, self.trunk_body = node, trunk_body
        self.rates = {"objects": RateCounter(), "high_level_command": RateCounter()}
        self.last_objects = None
        self.trunk: list[tuple[float, float, float, float]] = []   # (t, x, y, yaw) of the MoCap trunk
        self.commands: list[tuple[float, float, float, float]] = []  # (t, vx, vy, wz)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(ObjectStateArray, "objects", self._on_objects, best_effort)
        node.create_subscription(HighLevelCommand, "high_level_command", self._on_command, reliable)

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_objects(self, msg) -> None:
        now = self._now()
        self.rates["objects"].tick(now)
        self.last_objects = msg
        for o in msg.objects:
            if o.name == self.trunk_body and o.tracked:
                q = o.pose.orientation
                yaw = float(yaw_of_quat((q.w, q.x, q.y, q.z)))  # geometry_msgs x, y, z, w -> w, x, y, z
                self.trunk.append((now, o.pose.position.x, o.pose.position.y, yaw))

    def _on_command(self, msg) -> None:
        now = self._now()
        self.rates["high_level_command"].tick(now)
        self.commands.append((now, msg.vx, msg.vy, msg.wz))

    def velocity_tracking(self, window: float = 1.0) -> dict | None:
        """Mean |walked - commanded| (vx, vy) and |yaw rate error| over the commands that ask to move
        (and, *_all, over every command after the first moving one); the walked velocity is the
        MoCap trunk's displacement over the last `window` s."""
        if len(self.trunk) < 10 or not self.commands:
            return None
        trunk, cmd = np.array(self.trunk), np.array(self.commands)
        moving = np.flatnonzero(np.any(np.abs(cmd[:, 1:]) > 1e-6, axis=1))
        if len(moving) == 0:
            return None
        lin, ang, commanded = [], [], []
        yaw_u = np.unwrap(trunk[:, 3])
        for t, vx, vy, wz in cmd[moving[0]:]:
            if t - window < trunk[0, 0] or t > trunk[-1, 0]:
                continue
            x0, y0, a0 = (np.interp(t - window, trunk[:, 0], c) for c in (trunk[:, 1], trunk[:, 2], yaw_u))
            x1, y1, a1 = (np.interp(t, trunk[:, 0], c) for c in (trunk[:, 1], trunk[:, 2], yaw_u))
            heading = 0.5 * (a0 + a1)
            dx, dy = (x1 - x0) / window, (y1 - y0) / window
            v = (math.cos(heading) * dx + math.sin(heading) * dy, -math.sin(heading) * dx + math.cos(heading) * dy)
            lin.append(math.hypot(v[0] - vx, v[1] - vy))
            ang.append(abs((a1 - a0) / window - wz))
            commanded.append(abs(vx) + abs(vy) + abs(wz) > 1e-6)
        if not lin:
            return None
        dt = np.diff(cmd[:, 0], append=cmd[-1, 0])
        lin, ang, commanded = np.array(lin), np.array(ang), np.array(commanded)
        walking = commanded if commanded.any() else np.ones_like(commanded)
        return {"base_velocity_error_mps": round(float(np.mean(lin[walking])), 4),  # while told to move
                "yaw_rate_error_radps": round(float(np.mean(ang[walking])), 4),
                "base_velocity_error_all_mps": round(float(np.mean(lin)), 4),       # incl. standing after
                "yaw_rate_error_all_radps": round(float(np.mean(ang)), 4),
                "commanded_distance_m": round(float(np.sum(np.hypot(cmd[:, 1], cmd[:, 2]) * dt)), 3),
                "commanded_yaw_deg": round(float(np.degrees(np.sum(cmd[:, 3] * dt))), 1),
                "samples": len(lin)}

    def summary(self) -> dict:
        out = {f"{topic}_rate_hz": round(c.rate_hz(), 1) for topic, c in self.rates.items()}
        out.update({f"{topic}_messages": c.count for topic, c in self.rates.items()})
        if self.last_objects is not None:
            out["tracked_objects"] = sorted(o.name for o in self.last_objects.objects if o.tracked)
        out["velocity_tracking"] = self.velocity_tracking()
        return out
