#!/usr/bin/env bash
# Run the whole test suite. Sets up the environment first (idempotent, see setup_env.sh).
# Usage: scripts/test.sh [pytest args...]     e.g. scripts/test.sh -k geometry -x, or -m "not slow"
set -uo pipefail
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh" || { echo "[test] environment set-up failed" >&2; exit 1; }
source "$ROOT/scripts/local_dds.sh"
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
cd "$ROOT"
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID, DDS: shared memory, localhost discovery" >&2
"$ROOT/.venv/bin/python" -m pytest test "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "[test] pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit $rc
