"""The T1's grippers at the vendor SDK's wire: one definition for the hardware interface (client)
and sim_t1 (the simulated robot's RPC server). ROS-free, SDK-free.

The project commands a gripper as a fraction of its stroke: 0.0 = fully open, 1.0 = fully closed
(HighLevelCommand, JointCommand, the MuJoCo actuators left_gripper/right_gripper). The robot's
grippers (Inspire EG2-4X2 on the T1) are commanded through the SDK's Loco API:
  B1LocoClient.ControlGripper(GripperMotionParameter(position, force, speed),
                              GripperControlMode.kPosition, HandIndex.kLeftHand | kRightHand)
an RPC (LocoApiId.kControlGripper = 2010) that the SDK sends on DDS topic rt/LocoApiTopicReq
(booster_msgs/RpcReqMsg) and whose answer it waits for on rt/LocoApiTopicResp (RpcRespMsg, the
request's uuid and a header {"status": 0}) for 1 s, raising RuntimeError("API call failed, code =
100") on a timeout (measured with booster-robotics-sdk-python 1.6.3 on loopback).

Units ASSUMED, not verified on hardware: the SDK does not document them. position, force and speed
are integers 0..1000 without a physical unit, as Inspire's EG2 grippers are driven over their own
protocol, with position 0 = fully open and 1000 = fully closed in kPosition mode, force 50..1000,
speed 1..1000 (the community SDK reimplementation IntelligentRoboticsLab/booster_sdk documents
this convention: GripperCommand::open = 0, ::close = 1000). The mapping lives only in
gripper_position() / gripper_fraction(): if the robot turns out to count the other way (1000 =
open) or over another range, change those two functions and nothing else.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

LOCO_API_CONTROL_GRIPPER = 2010  # booster_robotics_sdk_python.LocoApiId.kControlGripper
LOCO_API_TOPIC_REQ = "LocoApiTopicReq"    # ROS name of DDS rt/LocoApiTopicReq
LOCO_API_TOPIC_RESP = "LocoApiTopicResp"  # ROS name of DDS rt/LocoApiTopicResp
RPC_STATUS_SUCCESS = 0        # kRpcStatusCodeSuccess
RPC_STATUS_BAD_REQUEST = 400  # kRpcStatusCodeBadRequest
HANDS = ("left", "right")     # HandIndex: kLeftHand = 0, kRightHand = 1
GRIPPER_MODE_POSITION = 0     # GripperControlMode.kPosition (kForce = 1)

POSITION_OPEN = 0        # assumed: the SDK's position of a fully open gripper
POSITION_CLOSED = 1000   # assumed: the SDK's position of a fully closed gripper
FORCE_RANGE = (50, 1000)
SPEED_RANGE = (1, 1000)


def gripper_position(fraction: float) -> int:
    """Fraction of the stroke (0 open .. 1 closed, clamped) -> the SDK's ControlGripper position."""
    f = float(fraction)
    if not math.isfinite(f):
        raise ValueError(f"gripper fraction must be finite, got {fraction!r}")
    f = min(1.0, max(0.0, f))
    return int(round(POSITION_OPEN + f * (POSITION_CLOSED - POSITION_OPEN)))


def gripper_fraction(position: float) -> float:
    """The SDK's ControlGripper position -> fraction of the stroke (0 open .. 1 closed, clamped)."""
    f = (float(position) - POSITION_OPEN) / (POSITION_CLOSED - POSITION_OPEN)
    return min(1.0, max(0.0, f))


def clamp_int(value: int, lo_hi: tuple[int, int]) -> int:
    return int(min(lo_hi[1], max(lo_hi[0], int(value))))


@dataclass(frozen=True)
class GripperRequest:
    """A ControlGripper call as the SDK puts it on the wire (RpcReqMsg.body)."""
    hand: int        # 0 left, 1 right
    mode: int        # 0 position, 1 force
    position: int
    force: int
    speed: int


def parse_rpc_header(header: str) -> dict:
    """RpcReqMsg.header, e.g. {"api_id":2010,"call_mode":0,"req_id":"<uuid>"}; ValueError if not JSON."""
    try:
        h = json.loads(header)
    except json.JSONDecodeError as e:
        raise ValueError(f"RPC header is not JSON: {header!r}") from e
    if not isinstance(h, dict) or "api_id" not in h:
        raise ValueError(f"RPC header without api_id: {header!r}")
    return h


def parse_control_gripper(body: str) -> GripperRequest:
    """RpcReqMsg.body of ControlGripper, as the SDK 1.6.3 sends it:
    {"hand_index":1,"mode":0,"motion_param":{"force":50,"position":1000,"speed":500}}."""
    try:
        b = json.loads(body)
        m = b["motion_param"]
        req = GripperRequest(int(b["hand_index"]), int(b.get("mode", GRIPPER_MODE_POSITION)),
                             int(m["position"]), int(m.get("force", 0)), int(m.get("speed", 0)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"ControlGripper body not understood ({type(e).__name__}: {e}): {body!r}") from e
    if req.hand not in (0, 1):
        raise ValueError(f"ControlGripper hand_index {req.hand} is neither 0 (left) nor 1 (right)")
    return req


def rpc_response_header(status: int, message: str = "") -> str:
    """RpcRespMsg.header: the SDK reads "status" (0 = success; any other value raises in the caller)."""
    return json.dumps({"status": int(status), **({"message": message} if message else {})})
