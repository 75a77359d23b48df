"""A controller as the vendor's examples write one: booster-robotics-sdk-python only, LowCmd left at
its default command type (PARALLEL: ankles in motor space), 29 motors, at 500 Hz.

usage: python sdk_parallel_peer.py DOMAIN
Holds the default pose: every motor at the joint table's default; each ankle's two crank motors at
the motor angles of the default ankle pose (t1_description.ankle), crank kp 150 / kd 2.5. Prints
the ankle motor targets as one JSON line, then "sdk_parallel_peer ready".
"""
from __future__ import annotations

import json
import sys
import time


def main() -> None:
    import booster_robotics_sdk_python as sdk

    from t1_description.ankle import load_parallel_ankles
    from t1_description.joint_table import load_joint_table

    jt, ankles = load_joint_table(), load_parallel_ankles()
    q, kp, kd = jt.default_q.copy(), jt.kp.copy(), jt.kd.copy()
    for leg, (i, j) in enumerate(ankles.indices):
        q[[i, j]] = ankles.linkage(leg).ik(q[[i, j]])
        kp[[i, j]], kd[[i, j]] = 150.0, 2.5
    q, kp, kd = (jt.model_to_sdk(a) for a in (q, kp, kd))

    sdk.ChannelFactory.Instance().Init(int(sys.argv[1]), "lo")
    publisher = sdk.B1LowCmdPublisher()
    publisher.InitChannel()
    cmd = sdk.LowCmd()  # cmd_type stays at the message's default
    motors = []
    for k in range(len(jt.names)):
        m = sdk.MotorCmd()
        m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.weight = 0, float(q[k]), 0.0, 0.0, float(kp[k]), float(kd[k]), 1.0
        motors.append(m)
    cmd.motor_cmd = motors
    print(json.dumps({"cmd_type": int(cmd.cmd_type), "ankle_motor_q": {
        int(s): float(q[s]) for s in jt.sdk_index[ankles.indices.reshape(-1)]}}), flush=True)
    print("sdk_parallel_peer ready", flush=True)
    while True:
        publisher.Write(cmd)
        time.sleep(0.002)


if __name__ == "__main__":
    main()
