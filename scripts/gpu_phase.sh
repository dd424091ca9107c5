# Sourced by scripts/gpu_check.sh and scripts/gpu_train.sh: print their --help, run one phase of a
# time-boxed GPU run. phase needs BUDGET (s, the whole run), PHASES (",a,b," or empty for all), LOGS
# and OUT set by the caller.
#
# usage: the calling script's header comment (from line 2 to the first line not starting with #).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
#
# phase NAME LIMIT_S COMMAND...: run under `timeout`, cut to what is left of BUDGET (30 s kept for
# the summary); log to LOGS/NAME.log, append "NAME rc=.. .. s" to LOGS/phases.txt (copied to
# OUT), print the log's tail. A phase that fails is reported and the next one runs.
phase() {
  local name=$1 limit=$2; shift 2
  [ -z "$PHASES" ] || [[ "$PHASES" == *",$name,"* ]] || return 0
  local start=$SECONDS left=$((BUDGET - 30 - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "$name skipped: budget spent" | tee -a "$LOGS/phases.txt"; cp "$LOGS/phases.txt" "$OUT/"; return
  fi
  echo "== $name (limit ${limit} s)"
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - start)) s" | tee -a "$LOGS/phases.txt"
  cp "$LOGS/phases.txt" "$OUT/"
  grep -v "it/s\]\|s/it\]" "$LOGS/$name.log" | tail -4
}
