"""Start a node graph as separate processes, forward their logs, stop them all together.

`refine-dp bringup` uses this with config/bringup.yaml. Every node runs as
`python -m MODULE --ros-args -r __node:=NAME --params-file RUN/params.yaml`, in its own process
group so that a Ctrl-C reaches the runner first and the runner stops the nodes in order.
The run stops on Ctrl-C/SIGTERM, when `duration` has passed, or when a required node exits
(then the exit status is non-zero). Nodes may leave a report as RUN/reports/<node>.json
(environment variable REFINE_DP_RUN_DIR), which ends up in RUN/summary.json.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import yaml

from refine_dp.cpu import CpuSampler
from refine_dp_planner.utils import atomic_write_json
from refine_dp.graph import NodeSpec, params_file_content

STOP_GRACE_S = 5.0


@dataclass
class NodeProcess:
    spec: NodeSpec
    proc: subprocess.Popen
    log: TextIO
    started: float
    reader: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RunResult:
    exit_code: int
    stop_reason: str
    wall_time_s: float
    nodes: list[dict] = field(default_factory=list)
    cpu: dict = field(default_factory=dict)  # CpuSampler.table(): cores per node over the steady run


def _forward(node: NodeProcess, echo: bool, lock: threading.Lock) -> None:
    """Copy a node's output to its log file and, prefixed with its name, to our stdout."""
    for line in node.proc.stdout:  # type: ignore[union-attr]
        node.log.write(line)
        node.log.flush()
        if echo:
            with lock:
                sys.stdout.write(f"[{node.name}] {line}")
                sys.stdout.flush()


class GraphRunner:
    def __init__(self, nodes: list[NodeSpec], run_dir: Path, env: dict[str, str] | None = None,
                 echo: bool = True, cpu_warmup_s: float = 10.0, runner_name: str = "bringup_runner") -> None:
        self.nodes = nodes
        self.cpu = CpuSampler(warmup_s=cpu_warmup_s)
        self.cpu.add(runner_name, os.getpid())  # this process: the runner and whatever `tick` spins
        self.run_dir = Path(run_dir)
        self.env = dict(os.environ, **(env or {}))
        self.echo = echo
        self.procs: list[NodeProcess] = []
        self._stop_requested: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ start/stop
    def start(self) -> None:
        self.cpu.t0 = time.monotonic()  # the warm-up counts from the start of the nodes
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "reports").mkdir(parents=True, exist_ok=True)
        params_file = self.run_dir / "params.yaml"
        params_file.write_text(yaml.safe_dump(params_file_content(self.nodes), sort_keys=False))
        env = dict(self.env, PYTHONUNBUFFERED="1", REFINE_DP_RUN_DIR=str(self.run_dir.resolve()))
        for spec in self.nodes:
            cmd = [sys.executable, "-m", spec.module, *spec.ros_args(params_file)]
            log = open(self.run_dir / "logs" / f"{spec.name}.log", "w")
            log.write(f"$ {' '.join(cmd)}\n")
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, start_new_session=True)
            node = NodeProcess(spec, proc, log, time.monotonic())
            node.reader = threading.Thread(target=_forward, args=(node, self.echo, self._lock), daemon=True)
            node.reader.start()
            self.procs.append(node)
            self.cpu.add(spec.name, proc.pid)
            self._say(f"started {spec.name} (pid {proc.pid}): python -m {spec.module}")

    def request_stop(self, reason: str) -> None:
        if self._stop_requested is None:
            self._stop_requested = reason

    def stop(self) -> None:
        """SIGINT to every node (reverse start order), then SIGTERM, then SIGKILL after a grace period."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [n for n in reversed(self.procs) if n.proc.poll() is None]
            if not alive:
                break
            for n in alive:
                try:
                    os.killpg(n.proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and any(n.proc.poll() is None for n in alive):
                time.sleep(0.05)
            if sig != signal.SIGKILL and any(n.proc.poll() is None for n in alive):
                self._say(f"{', '.join(n.name for n in alive if n.proc.poll() is None)} did not stop on "
                          f"{signal.Signals(sig).name}; escalating")
        for n in self.procs:
            if n.reader is not None:
                n.reader.join(timeout=2)
            n.log.close()

    # ------------------------------------------------------------------ main loop
    def run(self, duration: float | None, tick: Callable[[], None] | None = None,
            clock: Callable[[], float] | None = None, wall_limit: float | None = None) -> RunResult:
        """Start, supervise until a stop condition, stop. `tick` is called often (e.g. to spin a monitor).

        `duration` counts wall seconds, or with `clock` (e.g. the graph's simulated time) that clock's
        seconds; `wall_limit` then bounds the wall time (a simulation that slows to a crawl ends too)."""
        t0 = time.monotonic()
        previous = {s: signal.signal(s, lambda signum, _f: self.request_stop(signal.Signals(signum).name))
                    for s in (signal.SIGINT, signal.SIGTERM)}
        exit_code = 0
        try:
            self.start()
            while self._stop_requested is None:
                if tick is not None:
                    tick()
                else:
                    time.sleep(0.05)
                for n in self.procs:
                    code = n.proc.poll()
                    if code is not None and n.spec.required:
                        self.request_stop(f"node {n.name} exited with status {code}")
                        exit_code = 1
                        break
                if duration is not None and clock is None and time.monotonic() - t0 >= duration:
                    self.request_stop(f"duration {duration:g} s reached")
                if duration is not None and clock is not None and clock() >= duration:
                    self.request_stop(f"duration {duration:g} s of simulated time reached")
                if wall_limit is not None and time.monotonic() - t0 >= wall_limit:
                    self.request_stop(f"wall-clock limit {wall_limit:g} s reached")
                self.cpu.sample()
        finally:
            self.cpu.sample(force=True)
            reason = self._stop_requested or "runner error"
            self._say(f"stopping: {reason}")
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if reason in ("SIGINT", "SIGTERM"):
            exit_code = 130 if reason == "SIGINT" else 143
        nodes = [{"name": n.name, "module": n.spec.module, "pid": n.proc.pid,
                  "exit_code": n.proc.returncode, "required": n.spec.required} for n in self.procs]
        return RunResult(exit_code, reason, time.monotonic() - t0, nodes, self.cpu.table())

    def reports(self) -> dict[str, dict]:
        """Reports the nodes left in RUN/reports/*.json (unreadable ones are named, not dropped)."""
        out = {}
        for path in sorted((self.run_dir / "reports").glob("*.json")):
            try:
                out[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                out[path.stem] = {"error": f"unreadable report {path}: {e}"}
        return out

    def _say(self, text: str) -> None:
        with self._lock:
            print(f"[bringup] {text}", flush=True)


write_json_atomic = atomic_write_json  # a kill leaves either the old or the new file, never half of one
