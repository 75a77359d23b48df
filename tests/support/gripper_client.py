"""The vendor SDK's side of the gripper test: B1LocoClient only, as a program on the robot would.

usage: python gripper_client.py DOMAIN HAND POSITION
Calls ControlGripper(GripperMotionParameter(POSITION, 500, 500), kPosition, HAND (0 left, 1 right)),
twice (the first call also waits out DDS discovery; the second is timed), then ChangeMode(kPrepare) (an API sim_t1 does not serve), and prints one JSON line per call:
{"call": ..., "ok": bool, "error": str | null, "ms": wall ms}.
"""
from __future__ import annotations

import json
import sys
import time


def main() -> None:
    import booster_robotics_sdk_python as sdk

    domain, hand, position = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sdk.ChannelFactory.Instance().Init(domain, "lo")  # as hardware_node.py does, on loopback
    client = sdk.B1LocoClient()
    client.Init()
    grip = lambda: client.ControlGripper(  # noqa: E731
        sdk.GripperMotionParameter(position, 500, 500), sdk.GripperControlMode.kPosition,
        sdk.HandIndex.kLeftHand if hand == 0 else sdk.HandIndex.kRightHand)
    calls = [("ControlGripper_first", grip), ("ControlGripper", grip),
             ("ChangeMode", lambda: client.ChangeMode(sdk.RobotMode.kPrepare))]
    for name, call in calls:
        for attempt in range(10):  # DDS discovery of sim_t1's reader may take a moment: retry timeouts
            t0 = time.perf_counter()
            try:
                call()
                ok, error = True, None
            except RuntimeError as e:
                ok, error = False, str(e)
            if ok or "code = 100" not in error:
                break
        print(json.dumps({"call": name, "ok": ok, "error": error, "attempts": attempt + 1,
                          "ms": round((time.perf_counter() - t0) * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()
