"""Gripper commands to the robot: the newest commanded fraction per hand -> the vendor SDK's
ControlGripper RPC, from a worker thread of its own. ROS-free (the node hands it a send function).

The RPC waits up to 1 s for the robot's answer (t1_description/gripper.py), so it never runs in
the 500 Hz send loop or in a subscription callback: set() only stores the target and wakes the
worker. The worker sends a hand's target when it differs from the last position the robot
accepted by more than `threshold` (fraction of the stroke), at most `rate_hz` per hand; a failed
call is retried no sooner than `retry_s` later (a missing RPC server costs 1 s per try). The
newest target always wins: intermediate ones are skipped, never queued.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

from t1_description.gripper import HANDS, gripper_position

SendFn = Callable[[int, int], None]  # (hand index 0 left / 1 right, SDK position) -> raises on failure


class GripperSender:
    def __init__(self, send: SendFn, rate_hz: float = 10.0, threshold: float = 0.02, retry_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_hz <= 0:
            raise ValueError(f"gripper rate_hz must be > 0, got {rate_hz}")
        self._send, self._period, self._threshold, self._retry_s = send, 1.0 / rate_hz, threshold, retry_s
        self._clock = clock
        self._cv = threading.Condition()
        self._target = [math.nan, math.nan]  # newest commanded fraction per hand (NaN: none)
        self._sent = [math.nan, math.nan]    # last fraction the robot accepted
        self._next_t = [0.0, 0.0]            # earliest time of the next call per hand
        self._stop = False
        self.counts = {h: {"sent": 0, "failed": 0} for h in HANDS}
        self.last_error: str | None = None
        self.last_position: dict = {h: None for h in HANDS}  # SDK position of the last accepted call
        self.rpc_ms: collections.deque = collections.deque(maxlen=2000)
        self._thread = threading.Thread(target=self._run, name="gripper_rpc", daemon=True)
        self._thread.start()

    def set(self, left: float, right: float) -> None:
        """Newest command (0 open .. 1 closed; NaN = no command for that hand). Never blocks on the RPC."""
        with self._cv:
            for h, v in enumerate((left, right)):
                if math.isfinite(v):
                    self._target[h] = min(1.0, max(0.0, float(v)))
            self._cv.notify()

    def _due(self, now: float) -> tuple[int | None, float]:
        """The hand to send now (or None) and how long to wait otherwise. Caller holds the lock."""
        wait = math.inf
        for h in (0, 1):
            target, sent = self._target[h], self._sent[h]
            if math.isnan(target) or (not math.isnan(sent) and abs(target - sent) <= self._threshold):
                continue
            if now >= self._next_t[h]:
                return h, 0.0
            wait = min(wait, self._next_t[h] - now)
        return None, wait

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stop:
                        return
                    hand, wait = self._due(self._clock())
                    if hand is not None:
                        break
                    self._cv.wait(None if wait == math.inf else wait)
                target = self._target[hand]
                self._next_t[hand] = self._clock() + self._period
            position = gripper_position(target)
            t0 = time.perf_counter()
            try:
                self._send(hand, position)
            except Exception as e:  # noqa: BLE001 - the SDK raises RuntimeError("API call failed, code = N")
                with self._cv:
                    self.counts[HANDS[hand]]["failed"] += 1
                    self.last_error = f"{HANDS[hand]} position {position}: {type(e).__name__}: {e}"
                    self._next_t[hand] = max(self._next_t[hand], self._clock() + self._retry_s)
                continue
            with self._cv:
                self.rpc_ms.append((time.perf_counter() - t0) * 1e3)
                self._sent[hand] = target
                self.counts[HANDS[hand]]["sent"] += 1
                self.last_position[HANDS[hand]] = position

    def close(self, timeout: float = 2.0) -> None:
        """Stop the worker (a call in flight finishes: at most the SDK's 1 s timeout)."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout)

    def report(self) -> dict:
        with self._cv:
            ms = sorted(self.rpc_ms)
            pct = (lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 3)) if ms else None
            return {"sent": {h: c["sent"] for h, c in self.counts.items()},
                    "failed": {h: c["failed"] for h, c in self.counts.items()},
                    "last_position": dict(self.last_position),
                    "last_command": [None if math.isnan(v) else round(v, 3) for v in self._target],
                    "last_error": self.last_error,
                    "rpc_ms": {"n": len(ms)} if not ms else {"n": len(ms), "p50": pct(0.5), "max": round(ms[-1], 3)}}
