"""`refine-dp view`: a live 3D web view of the robot and its graph, without ROS tools (viser).

    refine-dp view [--port 8080] [--scene table_box] [--sim-time]     live, from the ROS topics
    refine-dp view --bag runs/demo/bag [--scene table_box]             replay a recording, with a timeline
    refine-dp bringup --sim --view  /  refine-dp demo --view           beside the graph (URL printed)

Open the printed URL in a browser. Drawn: the T1 from RobotState's joints and the MoCap trunk
pose (the MJCF the simulator runs, so the view is the model), the scene and its tracked objects
(box, door) from `objects`, the footstep being tracked and the last few (left blue, right red),
the commanded hand poses (axes) with the planner's current chunk (lines: its published hand paths
and base path; from a commander without chunks, the executed commands' hand trail), and two plots:
base velocity commanded vs walked (MoCap trunk velocity in the heading frame, low-passed) and
the hand tracking error. The view redraws at --rate Hz (default 25) of wall time.

The live view is a ROS node (`python -m refine_dp.view --ros-args -p port:=8080 -p scene:=...`),
which is how bringup starts it; `--sim-time` (use_sim_time) when the graph runs on sim_t1's /clock.
The ROS-free part (messages -> frames, bag replay) is refine_dp.view_state.
"""
from __future__ import annotations

import argparse
import math
import threading
import time
from pathlib import Path

import numpy as np

from refine_dp.view_state import Geom, Replay, ViewFrame, ViewState, load_bag, plot_arrays

FOOT_SIZE = (0.22, 0.10, 0.01)   # footprint drawn for a footstep target (m)
CHUNK_BASE_COLOR = (30, 200, 200)  # the planner chunk's base path
SWING_COLORS = {"left": (40, 110, 230), "right": (220, 50, 50)}
HAND_COLORS = ((40, 110, 230), (220, 50, 50))
UNKNOWN_OBJECT_COLOR = (120, 60, 200)


def _rgb(rgba) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in rgba[:3])


class ViserView:
    """The viser scene of a ViewState's model and the GUI panel; `draw(frame, samples)` updates it."""

    def __init__(self, state: ViewState, port: int = 8080, host: str = "0.0.0.0", title: str = "refine-dp view"):
        import viser

        self.viser, self.state = viser, state
        self.server = server = viser.ViserServer(host=host, port=port, verbose=False)
        server.gui.configure_theme(show_share_button=False)
        server.gui.main_panel.dock_right()     # status and plots beside the 3D view, not over it
        server.scene.set_up_direction("+z")
        server.initial_camera.position = (0.9, -2.0, 1.25)   # front left of the robot's start, looking at it
        server.initial_camera.look_at = (0.0, 0.0, 0.5)
        server.scene.add_grid("/ground", width=6.0, height=6.0, cell_size=0.25, section_size=1.0,
                              position=(0.0, 0.0, 0.0))
        self.bodies = self._add_model(state.geoms)
        self.robot = [frame for b, frame in self.bodies.items() if b in state.robot_bodies]
        for frame in self.robot:   # drawn from the first robot_state on
            frame.visible = False
        self._robot_visible = False
        self.unknown_objects: dict[str, object] = {}
        self.hand_targets = [server.scene.add_frame(f"/targets/{side}_hand", axes_length=0.08, axes_radius=0.006,
                                                    origin_radius=0.015, origin_color=HAND_COLORS[i], visible=False)
                             for i, side in enumerate(("left", "right"))]
        self.chunk_lines = None
        self.chunk_base_line = None
        self.footstep = server.scene.add_box("/footsteps/current", color=(0, 0, 0), dimensions=FOOT_SIZE,
                                             opacity=0.8, visible=False)
        self.old_footsteps = [server.scene.add_box(f"/footsteps/previous_{i}", color=(0, 0, 0),
                                                   dimensions=FOOT_SIZE, opacity=0.35, visible=False)
                              for i in range(6)]
        with server.gui.add_folder("Status"):
            self.status = server.gui.add_markdown("waiting for messages")
            self.follow = server.gui.add_checkbox("camera follows the robot", initial_value=True)
        self._followed: dict[int, np.ndarray] = {}   # client id -> trunk x, y its camera was last moved for
        self._camera_known: set[int] = set()

        @server.on_client_connect
        def _(client) -> None:
            client.camera.on_update(lambda camera: self._camera_known.add(camera.client.client_id))
        with server.gui.add_folder("Base velocity (m/s)"):
            self.velocity_plot = self._add_plot(("vx cmd", "vx walked", "vy cmd", "vy walked"),
                                                ("#1f77b4", "#1f77b4", "#d62728", "#d62728"), (False, True, False, True))
        with server.gui.add_folder("Hand tracking error (m)"):
            self.hand_plot = self._add_plot(("left", "right"), ("#1f77b4", "#d62728"), (False, False))
        self._plot_every, self._draws = 3, 0

    # ------------------------------------------------------------------ setup
    def _add_model(self, geoms: list[Geom]) -> dict[int, object]:
        """One frame per body that has geoms, the geoms under it in the body frame."""
        scene, frames = self.server.scene, {}
        names = self.state.body_names
        for g in geoms:
            if g.body not in frames:
                group = "t1" if g.body in self.state.robot_bodies else "scene"
                frames[g.body] = scene.add_frame(f"/{group}/{names[g.body]}", show_axes=False)
            path = f"{frames[g.body].name}/{g.name}"
            pose = {"position": g.pos, "wxyz": g.wxyz}
            color = _rgb(g.rgba)
            if g.kind == "box":
                scene.add_box(path, color=color, dimensions=tuple(2 * s for s in g.size), **pose)
            elif g.kind == "sphere":
                scene.add_icosphere(path, radius=g.size[0], color=color, subdivisions=2, **pose)
            elif g.kind == "cylinder":
                scene.add_cylinder(path, radius=g.size[0], height=2 * g.size[1], color=color, **pose)
            else:  # capsule: a mesh (viser has no capsule primitive); MuJoCo's axis is z, as trimesh's
                import trimesh
                mesh = trimesh.creation.capsule(height=2 * g.size[1], radius=g.size[0], count=(12, 12))
                scene.add_mesh_simple(path, mesh.vertices, mesh.faces, color=color, **pose)
        return frames

    def _add_plot(self, labels, colors, dashed):
        from viser import uplot

        series = (uplot.Series(label="t (s)"),) + tuple(
            uplot.Series(label=label, stroke=color, width=2, **({"dash": [6, 4]} if d else {}))
            for label, color, d in zip(labels, colors, dashed))
        data = tuple(np.zeros(2) for _ in range(len(labels) + 1))
        return self.server.gui.add_uplot(data=data, series=series, aspect=2.0,
                                         scales={"x": uplot.Scale(time=False)})

    # ------------------------------------------------------------------ drawing
    def draw(self, f: ViewFrame, samples) -> None:
        scene = self.server.scene
        with self.server.atomic():
            for b, frame in self.bodies.items():
                frame.position, frame.wxyz = f.body_pos[b], f.body_wxyz[b]
            if f.robot_seen != self._robot_visible:
                for frame in self.robot:
                    frame.visible = f.robot_seen
                self._robot_visible = f.robot_seen
            self._draw_unknown_objects()
            for i, handle in enumerate(self.hand_targets):
                if f.hand_target_pos is not None:
                    handle.position, handle.wxyz = f.hand_target_pos[i], f.hand_target_wxyz[i]
                handle.visible = f.hand_target_pos is not None
            self._draw_footsteps(f)
            pts = f.chunk_hands if f.chunk_hands is not None else f.chunk_trail   # [n, 2 hands, 3]
            if pts is not None and len(pts) >= 2:
                segments = np.concatenate([np.stack([pts[:-1, h], pts[1:, h]], axis=1) for h in (0, 1)])
                colors = np.concatenate([np.tile(HAND_COLORS[h], (len(pts) - 1, 2, 1)) for h in (0, 1)])
                self.chunk_lines = scene.add_line_segments("/targets/chunk", segments.astype(np.float32),
                                                           colors.astype(np.uint8), thickness=0.006)
            if f.chunk_base is not None and len(f.chunk_base) >= 2:
                b = f.chunk_base + [0.0, 0.0, 0.01]      # just above the floor
                self.chunk_base_line = scene.add_line_segments(
                    "/targets/chunk_base", np.stack([b[:-1], b[1:]], axis=1).astype(np.float32),
                    np.tile(CHUNK_BASE_COLOR, (len(b) - 1, 2, 1)).astype(np.uint8), thickness=0.01)
        if self.follow.value and f.robot_seen:
            self._follow(f.trunk_pos)
        self._draws += 1
        if self._draws % self._plot_every == 0:
            self.status.content = "```\n" + f.text + "\n```"
            self._draw_plots(samples)

    def _follow(self, trunk_pos) -> None:
        """Keep every browser's camera on the trunk (x, y): it looks at the trunk from where the user
        orbited it to (the initial camera's view at first)."""
        xy = np.asarray(trunk_pos[:2], dtype=float)
        initial = self.server.initial_camera
        target = np.array([xy[0], xy[1], initial.look_at[2]])
        for cid, client in self.server.get_clients().items():
            if cid not in self._camera_known:   # until the browser reports its camera, its pose reads zero
                continue
            camera = client.camera
            if cid in self._followed and np.hypot(*(xy - self._followed[cid])) < 0.01:
                continue
            offset = camera.position - camera.look_at if cid in self._followed else initial.position - initial.look_at
            camera.position = target + offset
            camera.look_at = target
            self._followed[cid] = xy

    def _draw_footsteps(self, f: ViewFrame) -> None:
        def place(handle, step):
            handle.position = step["pos"] + np.array([0.0, 0.0, FOOT_SIZE[2] / 2])
            handle.wxyz = (math.cos(step["yaw"] / 2), 0.0, 0.0, math.sin(step["yaw"] / 2))
            handle.color = SWING_COLORS[step["swing"]]
            handle.visible = True

        if f.footstep:
            place(self.footstep, f.footstep)
        self.footstep.visible = bool(f.footstep)
        old = f.footsteps[-len(self.old_footsteps):]
        for i, handle in enumerate(self.old_footsteps):
            if i < len(old):
                place(handle, old[i])
            else:
                handle.visible = False

    def _draw_unknown_objects(self) -> None:
        """Tracked objects the scene model does not have: small axes with their name."""
        for name, (pos, wxyz) in self.state.objects.items():
            if name in self.state.object_joints:
                continue
            handle = self.unknown_objects.get(name)
            if handle is None:
                handle = self.server.scene.add_frame(f"/objects/{name}", axes_length=0.1, axes_radius=0.008,
                                                     origin_color=UNKNOWN_OBJECT_COLOR)
                self.server.scene.add_label(f"/objects/{name}/label", name)
                self.unknown_objects[name] = handle
            handle.position, handle.wxyz = pos, wxyz

    def _draw_plots(self, samples) -> None:
        c = plot_arrays(samples)
        if len(c["t"]) < 2:
            return
        self.velocity_plot.data = (c["t"], c["vx_cmd"], c["vx_walked"], c["vy_cmd"], c["vy_walked"])
        self.hand_plot.data = (c["t"], np.nan_to_num(c["left_hand_error_m"]),
                               np.nan_to_num(c["right_hand_error_m"]))

    def url(self) -> str:
        host = self.server.get_host()
        return f"http://{'localhost' if host in ('0.0.0.0', '') else host}:{self.server.get_port()}"


# ---------------------------------------------------------------------- live (ROS)
def main(args=None) -> None:
    """The live view as a ROS node: parameters port, scene, rate_hz, trunk_object (and use_sim_time)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from refine_dp_planner.bags import PLANNER_TOPICS, message_class
    from refine_dp.view_state import CHUNK_TOPICS, VIEW_TOPICS

    rclpy.init(args=args)
    node = rclpy.create_node("refine_dp_view")
    port = int(node.declare_parameter("port", 8080).value)
    scene = str(node.declare_parameter("scene", "table_box").value)
    rate_hz = float(node.declare_parameter("rate_hz", 25.0).value)
    trunk_object = str(node.declare_parameter("trunk_object", "t1_trunk").value)
    state, lock = ViewState(scene, trunk_object=trunk_object), threading.Lock()
    topics = dict(PLANNER_TOPICS, planner_status="refine_dp_msgs/msg/PlannerStatus",
                  **{t: "geometry_msgs/msg/PoseArray" for t in CHUNK_TOPICS})
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.BEST_EFFORT)  # hears reliable publishers too
    counts = {t: 0 for t in VIEW_TOPICS}

    def on_message(topic, msg):
        t = node.get_clock().now().nanoseconds * 1e-9
        with lock:
            state.on_message(topic, msg, t)
            counts[topic] += 1

    for topic in VIEW_TOPICS:
        node.create_subscription(message_class(topics[topic]), topic, lambda m, t=topic: on_message(t, m), qos)
    view = ViserView(state, port=port)
    print(f"[view] {view.url()}  (scene {scene}; open it in a browser)", flush=True)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    spinner.start()
    try:
        period = 1.0 / rate_hz
        next_t = time.monotonic()
        while rclpy.ok() and spinner.is_alive():
            with lock:
                frame = state.frame(node.get_clock().now().nanoseconds * 1e-9)
                samples = list(state.history)
            view.draw(frame, samples)
            next_t = max(next_t + period, time.monotonic())
            time.sleep(max(0.0, next_t - time.monotonic()))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        print(f"[view] messages received: {counts}", flush=True)
        view.server.stop()
        node.destroy_node()
        rclpy.try_shutdown()


def _spin(executor) -> None:
    from rclpy.executors import ExternalShutdownException
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


# ---------------------------------------------------------------------- replay
def replay(replay: Replay, port: int = 8080, rate_hz: float = 25.0, stop: threading.Event | None = None) -> None:
    """Serve a loaded recording with a timeline slider, play/pause and speed."""
    frames = replay.frames
    view = ViserView(replay.state, port=port)
    gui = view.server.gui
    with gui.add_folder("Timeline", order=-1):
        slider = gui.add_slider("t (s)", min=0.0, max=round(frames[-1].t, 2), step=1.0 / rate_hz, initial_value=0.0)
        playing = gui.add_checkbox("play", initial_value=True)
        speed = gui.add_dropdown("speed", options=("0.25", "0.5", "1", "2", "4"), initial_value="1")
    period = frames[1].t - frames[0].t if len(frames) > 1 else 1.0 / rate_hz
    print(f"[view] {view.url()}  (replay of {len(replay.bags)} bag(s), {frames[-1].t:.1f} s, "
          f"{len(frames)} frames)", flush=True)
    shown, t_play = -1, 0.0
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            if playing.value:
                t_play = slider.value + float(speed.value) / rate_hz
                if t_play > frames[-1].t:
                    t_play = 0.0
                slider.value = round(t_play, 3)
            i = min(len(frames) - 1, max(0, int(round(slider.value / period))))
            if i != shown:
                view.draw(frames[i], replay.window(i))
                shown = i
            time.sleep(1.0 / rate_hz)
    except KeyboardInterrupt:
        pass
    finally:
        view.server.stop()


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="HTTP port of the page (default 8080)")
    parser.add_argument("--scene", default="table_box",
                        help="MuJoCo scene drawn around the robot (t1_description scene_<name>.xml; default table_box, "
                             "the pickup task's; floor for none)")
    parser.add_argument("--bag", type=Path, default=None,
                        help="replay this rosbag2 recording (a bag or a folder of `refine-dp record` segments)")
    parser.add_argument("--sim-time", action="store_true",
                        help="live: follow /clock (use_sim_time), as the nodes of a simulated graph do")
    parser.add_argument("--rate", type=float, default=25.0, help="redraws per second (default 25)")


def cli(args: argparse.Namespace) -> int:
    if args.bag is not None:
        print(f"[view] reading {args.bag} ...", flush=True)
        replay(load_bag(args.bag, scene=args.scene, rate_hz=args.rate), port=args.port, rate_hz=args.rate)
        return 0
    main(["--ros-args", "-p", f"port:={args.port}", "-p", f"scene:={args.scene}", "-p", f"rate_hz:={args.rate}",
          "-p", f"use_sim_time:={str(bool(args.sim_time)).lower()}"])
    return 0


if __name__ == "__main__":
    main()
