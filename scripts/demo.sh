#!/usr/bin/env bash
# The main job: the node with the bundled model on the bundled synthetic camera stream.
# Sets up the environment first (idempotent). Extra arguments go to `cad-perception demo`
# (see `scripts/demo.sh --help`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "${1:-}" != "-h" && "${1:-}" != "--help" ]]; then
  "$ROOT/scripts/setup_env.sh"
fi
source "$ROOT/scripts/local_dds.sh"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
exec "$ROOT/.venv/bin/cad-perception" demo "$@"
