# Sourced by the bench scripts (from the repo root, with $work set): waiting for the agent they
# started, whose pid is in $work/aisled.pid. Each fails the bench, showing the agent's log,
# when the agent exits or the time runs out, rather than measuring nothing.
SHARED=${SHARED:-../shared}

# until_logged LOG SECONDS PATTERN...: until every PATTERN (grep) is in LOG.
until_logged() {
  local log=$1 seconds=$2
  shift 2
  wait_for "$seconds" "$log" "$* in the log" all_logged "$log" "$@"
}

# until_answering SECONDS SOCKET LOG [CURL ARGS...]: until the agent answers the request (by
# default GET /v1/health) with a success.
until_answering() {
  local seconds=$1 sock=$2 log=$3
  shift 3
  [ $# -gt 0 ] || set -- http://aisle/v1/health
  wait_for "$seconds" "$log" "an answer to $* on $sock" curl -sf -o /dev/null --unix-socket "$sock" "$@"
}

# wait_for SECONDS LOG WHAT COMMAND...: until COMMAND succeeds, checking every 0.1 s that the
# agent still runs.
wait_for() {
  local seconds=$1 log=$2 what=$3 pid
  shift 3
  pid=$(cat "$work/aisled.pid")
  for _ in $(seq $((seconds * 10))); do
    "$@" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || agent_failed "$log" "aisled exited"
    sleep 0.1
  done
  agent_failed "$log" "$what: not within $seconds s"
}

all_logged() {
  local log=$1 pattern
  shift
  for pattern in "$@"; do grep -q -- "$pattern" "$log" || return 1; done
}

agent_failed() {
  echo "bench: $2; the agent's log ($1) ends:" >&2
  tail -n 20 "$1" >&2
  exit 1
}
