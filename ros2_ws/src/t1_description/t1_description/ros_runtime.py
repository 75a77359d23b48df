"""How the nodes run: executor, clock (wall or simulation time), scheduling priority.

- `spin(node)`: rclpy's events executor (C++ event queue; the Python SingleThreadedExecutor rebuilds
  its wait set in Python on every wake-up and cost this graph's 50 Hz nodes 5-15 % of a core each).
  rclpy 9.1's EventsExecutor busy-loops in `spin()` and in `spin_until_future_complete()` without a
  timeout (no callback runs, the CPU spins), so it is driven here with a timeout. Environment
  variable REFINE_DP_EXECUTOR=single selects rclpy's SingleThreadedExecutor instead.
- `LoopClock`: a control loop's time and sleep on the node's clock. Wall time (the robot): monotonic
  clock. Simulation time (`use_sim_time`, sim_t1's /clock): the node's ROS clock; a sleep ends when
  /clock passes the deadline, so a slow simulation slows the loop with it instead of starving it.
- `request_realtime(priority)`: SCHED_FIFO for every thread of the process where permitted, else a
  lower nice value, else nothing; returns what it got, for the node's report.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

NICE_FALLBACK = -10  # when SCHED_FIFO is refused: ahead of ordinary processes under CFS


def request_realtime(priority: int, nice: int = NICE_FALLBACK) -> dict:
    """Ask for SCHED_FIFO at `priority` (1-99) for every thread of this process (threads started
    later inherit it from their creator); if refused, for nice `nice`. priority <= 0: ask nothing.

    Returns {"requested", "got", "detail"}; never raises (a node runs anyway, and says so)."""
    if priority <= 0:
        return {"requested": "none", "got": _current_policy(), "detail": "realtime_priority 0: nothing asked"}
    requested = f"SCHED_FIFO {priority}"
    tids = _thread_ids()
    reset = getattr(os, "SCHED_RESET_ON_FORK", 0)  # processes this one starts get ordinary scheduling
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_FIFO | reset, os.sched_param(priority))
        return {"requested": requested, "got": _current_policy(), "detail": f"{len(tids)} threads"}
    except (OSError, AttributeError) as e:
        fifo_error = f"SCHED_FIFO refused ({e})"
    try:
        for tid in tids:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER | reset, os.sched_param(0))
            except OSError:
                pass
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return {"requested": requested, "got": _current_policy(), "detail": f"{fifo_error}; nice {nice} instead"}
    except (OSError, AttributeError) as e:
        return {"requested": requested, "got": _current_policy(),
                "detail": f"{fifo_error}; nice {nice} refused ({e}): default scheduling"}


def _thread_ids() -> list[int]:
    try:
        return sorted(int(p.name) for p in Path("/proc/self/task").iterdir())
    except OSError:
        return [0]


def _current_policy() -> str:
    try:
        policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            name = "SCHED_FIFO" if policy == os.SCHED_FIFO else "SCHED_RR"
            return f"{name} {os.sched_getparam(0).sched_priority}"
        return f"SCHED_OTHER nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    except (OSError, AttributeError):
        return "unknown"


def uses_sim_time(node) -> bool:
    return bool(node.get_parameter("use_sim_time").value)


class LoopClock:
    """now() and sleep_until() on the node's clock, for a loop in its own thread.

    Wall time: time.monotonic() (immune to system clock steps). Simulation time: the node's ROS
    clock, which rclpy's TimeSource sets from /clock; a jump callback wakes sleepers on every
    /clock message (one callback for the node's life, not one per sleep as Clock.sleep_until)."""

    def __init__(self, node) -> None:
        self.sim = uses_sim_time(node)
        self._clock = node.get_clock()
        self._cv = threading.Condition()
        self._jump_handle = None
        self._started = not self.sim  # wall time runs from the start; simulated time from the first /clock
        if self.sim:
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            from rosgraph_msgs.msg import Clock
            # The node's ROS clock reads 0 both before /clock arrives and at simulated time 0, so a
            # subscription of its own tells whether simulated time reaches this node (raw: no decoding)
            node.create_subscription(Clock, "/clock", self._on_clock, raw=True,
                                     qos_profile=QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            from rclpy.clock import JumpThreshold
            from rclpy.duration import Duration
            self._jump_handle = self._clock.create_jump_callback(
                JumpThreshold(min_forward=Duration(nanoseconds=1), min_backward=None, on_clock_change=True),
                post_callback=self._on_jump)

    @property
    def kind(self) -> str:
        return "sim" if self.sim else "wall"

    def now(self) -> float:
        """Seconds: monotonic (wall) or simulated time since sim_t1 started (sim)."""
        if not self.sim:
            return time.monotonic()
        return self._clock.now().nanoseconds * 1e-9

    @property
    def started(self) -> bool:
        """Wall time: always. Simulation time: once a /clock message has reached this node (DDS
        discovery can take seconds while other topics already flow; until then now() stays 0)."""
        return self._started

    def _on_clock(self, _msg) -> None:
        if not self._started:
            self._started = True
            self.notify()

    def _on_jump(self, _jump) -> None:
        with self._cv:
            self._cv.notify_all()

    def notify(self) -> None:
        """Wake sleepers (e.g. on shutdown or on a new input they also wait for)."""
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, predicate, max_wall_s: float) -> bool:
        """Wait until predicate() (checked on every /clock message, notify() and every 50 ms), at most
        max_wall_s of wall time; returns predicate()."""
        deadline = time.monotonic() + max_wall_s
        with self._cv:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def sleep_until(self, t: float, stop: threading.Event | None = None, max_wall_s: float = 0.5) -> bool:
        """Sleep until now() >= t; False if `stop` was set or (sim) `max_wall_s` passed without
        /clock getting there (a stalled simulation: the caller decides what that means)."""
        if not self.sim:
            delay = t - time.monotonic()
            if delay > 0:
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    return False
            return True
        deadline = time.monotonic() + max_wall_s
        with self._cv:
            while self.now() < t:
                if stop is not None and stop.is_set():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True


def run_node(make_node, args=None) -> None:
    """main() of a node without a report of its own: init, build it, spin until Ctrl-C (or the
    runner's SIGINT), shut down; a callback racing with the shutdown is not an error (see spin)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    try:
        spin(make_node())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


def spin(node, stop: threading.Event | None = None) -> None:
    """Spin `node` until rclpy shuts down (Ctrl-C) or `stop` is set. Raises what a callback raises."""
    import rclpy
    from rclpy.task import Future

    if os.environ.get("REFINE_DP_EXECUTOR", "events") == "single":
        from rclpy.executors import SingleThreadedExecutor
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not (stop is not None and stop.is_set()):
            executor.spin_once(timeout_sec=0.2)
        return
    from rclpy.experimental import EventsExecutor
    executor = EventsExecutor()
    executor.add_node(node)
    never = Future()
    try:
        while rclpy.ok() and not (stop is not None and stop.is_set()):
            try:
                executor.spin_until_future_complete(never, timeout_sec=0.2)  # with a timeout: see the docstring
            except Exception:
                if rclpy.ok():
                    raise
                break  # a callback raced with Ctrl-C's context shutdown (e.g. a publish): not an error
    finally:
        executor.shutdown()


def make_events_spinner(node):
    """A function that services `node`'s callbacks for up to `timeout` s, for loops that spin a
    node between their own work (the bringup monitor, benchmarks)."""
    from rclpy.experimental import EventsExecutor
    from rclpy.task import Future

    executor = EventsExecutor()
    executor.add_node(node)
    never = Future()

    def spin_some(timeout: float = 0.05) -> None:
        executor.spin_until_future_complete(never, timeout_sec=timeout)

    spin_some.executor = executor
    return spin_some
