#!/usr/bin/env bash
# One-command setup of refine-dp: creates .venv (Python 3.11), installs pinned
# dependencies (torch CPU first, ROS 2 Kilted wheels, MuJoCo, ...), builds the two
# message packages with ament_cmake against the wheels, installs every workspace
# package into the venv, and checks the result. Idempotent: re-running only redoes
# what is missing or out of date.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REFINE_DP_VENV:-$ROOT/.venv}"
BUILD="$ROOT/build"
PY_VERSION=3.11
# message packages under ros2_ws/ (no deps between them; booster_msgs: the SDK's RPC types); vendor/tf2_msgs: TFMessage only (no wheel)
MSG_PACKAGES=(src/booster_interface src/booster_msgs src/refine_dp_msgs vendor/tf2_msgs)
PY_PACKAGES=(t1_description t1_sim t1_hardware_interface mocap_bridge loco_manip_controller refine_dp_planner refine_dp_training refine_dp)
START=$(date +%s)
# the view test's browser: auto = apt-get install chromium when missing and apt can (root or sudo -n),
# 1 = must install it (--with-browser), 0 = never (--without-browser)
WITH_BROWSER="${REFINE_DP_WITH_BROWSER:-auto}"
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    --without-browser) WITH_BROWSER=0 ;;
    *) echo "[setup] unknown option $arg (known: --with-browser, --without-browser)" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m[setup %3ss] %s\033[0m\n' "$(( $(date +%s) - START ))" "$*"; }
die()  { printf '\n[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
step "checking prerequisites (python$PY_VERSION, gcc, g++, cmake, make)"
PYTHON_BIN="${PYTHON:-$(command -v python$PY_VERSION || true)}"
[ -n "$PYTHON_BIN" ] || die "python$PY_VERSION not found. On Debian 12: apt-get install python3.11 python3.11-venv python3.11-dev"
"$PYTHON_BIN" -c "import sys; assert sys.version_info[:2]==(3,11)" 2>/dev/null \
  || die "$PYTHON_BIN is not Python 3.11 (set PYTHON=/path/to/python3.11)"
for tool in gcc g++ cmake make; do
  command -v "$tool" >/dev/null || die "$tool not found. On Debian 12: apt-get install build-essential cmake"
done
PY_INCLUDE="$("$PYTHON_BIN" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[ -f "$PY_INCLUDE/Python.h" ] || die "Python headers missing ($PY_INCLUDE/Python.h). On Debian 12: apt-get install python3.11-dev"

# ---------------------------------------------------------------- venv + pip deps
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV"
  "$PYTHON_BIN" -m venv "$VENV" || die "could not create the venv. On Debian 12: apt-get install python3.11-venv"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# pip here warns about every local package index folder it skips: keep only real messages
pip_quiet() { "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; return "${PIPESTATUS[0]}"; }
export PIP_CONSTRAINT="$ROOT/scripts/constraints.txt"   # torch stays the CPU build

REQ_HASH="$(cat "$ROOT/requirements.txt" "$ROOT/scripts/constraints.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" != "$REQ_HASH" ]; then
  step "installing torch==2.13.0 (CPU build, from local disk)"
  pip_quiet install --quiet torch==2.13.0
  step "installing pinned requirements (requirements.txt)"
  pip_quiet install --quiet -r "$ROOT/requirements.txt"
  # REFINE_DP_ALLOW_CUDA_TORCH=1: a CUDA torch installed beforehand is wanted (docker/train.Dockerfile)
  if [ "${REFINE_DP_ALLOW_CUDA_TORCH:-0}" = 1 ] \
     || "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.version.cuda is None else 1)"; then :; else
    die "a CUDA build of torch got installed; remove .venv and check requirements for packages that pull torch"
  fi
  echo "$REQ_HASH" > "$VENV/.requirements-hash"
else
  step "pinned requirements already installed"
fi

# ---------------------------------------------------------------- fix wheel cmake exports
# The ROS wheels were built in a manylinux image: their exported cmake targets name
# /opt/python/cp311-cp311 include paths. Point them at this venv's Python and numpy.
NP_INCLUDE="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
mapfile -t STALE < <(grep -rl "/opt/python/cp311-cp311" "$VENV/share" --include='*.cmake' 2>/dev/null || true)
if [ "${#STALE[@]}" -gt 0 ]; then
  step "rewriting build-machine Python include paths in ${#STALE[@]} exported cmake files"
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INCLUDE#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INCLUDE#g" "${STALE[@]}"
fi

# ---------------------------------------------------------------- message packages
export PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
for rel in "${MSG_PACKAGES[@]}"; do
  src="$ROOT/ros2_ws/$rel" pkg="$(basename "$rel")"
  hash="$(cd "$src" && find . -type f \( -name '*.msg' -o -name '*.srv' -o -name CMakeLists.txt -o -name package.xml \) | sort | xargs cat | sha256sum | cut -c1-16)"
  if [ "$(cat "$VENV/share/$pkg/.refine-dp-hash" 2>/dev/null)" = "$hash" ]; then
    step "message package $pkg is up to date"; continue
  fi
  step "building message package $pkg (ament_cmake + rosidl against the wheels)"
  rm -rf "$BUILD/$pkg"; mkdir -p "$BUILD/$pkg"
  log="$BUILD/$pkg/build.log"
  ( cd "$BUILD/$pkg" \
    && cmake "$src" -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
         -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
    && make -j"$(nproc)" && make install ) > "$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "building $pkg failed (full log: $log)"; }
  echo "$hash" > "$VENV/share/$pkg/.refine-dp-hash"
done

# ---------------------------------------------------------------- workspace python packages
PKG_HASH="$(cd "$ROOT/ros2_ws/src" && { echo "${PY_PACKAGES[*]}"; cat */setup.py */setup.cfg */pyproject.toml 2>/dev/null; } | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.packages-hash" 2>/dev/null)" != "$PKG_HASH" ]; then
  step "installing workspace packages (editable): ${PY_PACKAGES[*]}"
  args=()
  for pkg in "${PY_PACKAGES[@]}"; do args+=(-e "$ROOT/ros2_ws/src/$pkg"); done
  pip_quiet install --quiet --no-deps --no-build-isolation "${args[@]}"
  echo "$PKG_HASH" > "$VENV/.packages-hash"
else
  step "workspace packages already installed"
fi

# ---------------------------------------------------------------- headless browser (the view test)
# tests/test_view.py looks at `refine-dp view` in a headless Chromium (WebGL on the CPU through
# SwiftShader); without one that test skips. Debian's package, the only system package setup installs:
# when missing and apt-get can run (root, or sudo without a password), unless REFINE_DP_WITH_BROWSER=0.
SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo -n)
can_apt() { command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; }
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  step "headless browser for the view test: $(command -v chromium || command -v chromium-browser)"
elif [ "$WITH_BROWSER" = 1 ] || { [ "$WITH_BROWSER" = auto ] && can_apt; }; then
  step "installing Debian's chromium (the view test's headless browser; REFINE_DP_WITH_BROWSER=0 skips this)"
  if ! { "${SUDO[@]}" apt-get install -y chromium || { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y chromium; }; }; then
    [ "$WITH_BROWSER" = 1 ] && die "apt-get install -y chromium failed; install it yourself, or leave --with-browser out (the view's browser test then skips)"
    step "apt-get install chromium failed: the view's browser test will skip"
  fi
else
  step "no chromium: the view's browser test will skip (apt-get install -y chromium, or scripts/setup.sh --with-browser as root)"
fi

# ---------------------------------------------------------------- check
step "checking the installation"
"$VENV/bin/python" - <<'PY'
import importlib, sys
mods = ["rclpy", "torch", "mujoco", "onnxruntime", "booster_robotics_sdk_python",
        "refine_dp_msgs.msg", "booster_interface.msg", "booster_msgs.msg", "tf2_msgs.msg", "visualization_msgs.msg",
        "t1_description", "t1_sim", "t1_hardware_interface", "mocap_bridge", "loco_manip_controller",
        "refine_dp_planner", "refine_dp_training", "refine_dp", "refine_dp.view", "viser"]
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:  # name the module and the fix
        sys.exit(f"[setup] import of {m} failed: {e!r}. Remove .venv and build/ and run make setup again.")
from refine_dp_msgs.msg import HighLevelCommand, FootstepCommand, ObjectStateArray, JointCommand, RobotState  # noqa
from booster_interface.msg import LowCmd, LowState  # noqa
from booster_msgs.msg import RpcReqMsg, RpcRespMsg  # noqa
import torch
import os
assert torch.version.cuda is None or os.environ.get("REFINE_DP_ALLOW_CUDA_TORCH") == "1", "CUDA torch found"
print(f"[setup] ok: torch {torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU'}), all {len(mods)} modules import")
PY
step "done in $(( $(date +%s) - START )) s"
