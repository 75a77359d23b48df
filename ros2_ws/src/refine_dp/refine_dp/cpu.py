"""Per-process CPU use of a running graph, from /proc/<pid>/stat (Linux).

CPU of a process = (utime + stime, all its threads) / wall time over a window, in cores (1.0 =
one core busy). `CpuSampler` samples the runner's node processes (and the runner itself) about once
a second; `table()` gives each process's mean over the steady part of the run: from the first
sample after `warmup_s` (imports, model loading and the start-up ramp are not what a node costs
while it runs) to the last sample before the stop.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of `pid` (all threads) in seconds; None if it is gone or /proc is absent."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the name (field 2) may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 of proc(5)


class CpuSampler:
    def __init__(self, warmup_s: float = 10.0, period_s: float = 1.0) -> None:
        self.warmup_s, self.period_s = warmup_s, period_s
        self.pids: dict[str, int] = {}
        self.t0 = time.monotonic()
        self._next = 0.0
        self._first: dict[str, tuple[float, float]] = {}  # name -> (t, cpu s) at the first steady sample
        self._last: dict[str, tuple[float, float]] = {}

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def sample(self, now: float | None = None, force: bool = False) -> None:
        """Call often; samples at most every period_s (force: now)."""
        now = time.monotonic() if now is None else now
        if not force and now < self._next:
            return
        self._next = now + self.period_s
        steady = now - self.t0 >= self.warmup_s
        for name, pid in self.pids.items():
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            if steady and name not in self._first:
                self._first[name] = (now, cpu)
            if name in self._first:
                self._last[name] = (now, cpu)

    def table(self) -> dict:
        """{"window_s", "cores": {name: mean cores}} over each process's steady window (rounded)."""
        cores, window = {}, 0.0
        for name, (t0, c0) in self._first.items():
            t1, c1 = self._last[name]
            if t1 - t0 >= 0.5:
                cores[name] = round((c1 - c0) / (t1 - t0), 3)
                window = max(window, t1 - t0)
        return {"window_s": round(window, 1), "warmup_s": self.warmup_s, "cores": cores,
                "cpu_count": os.cpu_count()}


def format_table(cpu: dict, groups: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Lines of a per-node CPU table (% of one core), plus a line per group's sum."""
    cores = cpu.get("cores") or {}
    if not cores:
        return ["  CPU: no samples (run shorter than the warm-up?)"]
    lines = [f"  CPU per node (% of one core, mean over {cpu['window_s']:g} s after {cpu['warmup_s']:g} s "
             f"warm-up, {cpu['cpu_count']} cores):"]
    for name, c in sorted(cores.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {name:28s} {100 * c:6.1f} %")
    lines.append(f"    {'total':28s} {100 * sum(cores.values()):6.1f} %")
    for label, names in (groups or {}).items():
        present = [n for n in names if n in cores]
        if present:
            lines.append(f"    {label:28s} {100 * sum(cores[n] for n in present):6.1f} %  ({', '.join(present)})")
    return lines


ROBOT_SIDE = ("t1_hardware_interface", "mocap_bridge", "footstep_planner", "loco_manip_controller")
