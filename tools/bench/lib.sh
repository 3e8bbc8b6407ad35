# Sourced by the bench scripts (from the repo root, with $work set): waiting for the agent they
# started, whose pid is in $work/aisled.pid. Each fails the bench, showing the agent's log,
# when the agent exits or the time runs out, rather than measuring nothing.
SHARED=${SHARED:-../shared}

# until_logged LOG SECONDS PATTERN...: until every PATTERN (grep) is in LOG.
until_logged() {
  local log=$1 seconds=$2 pattern missing pid
  shift 2
  pid=$(cat "$work/aisled.pid")
  for _ in $(seq $((seconds * 10))); do
    missing=0
    for pattern in "$@"; do grep -q -- "$pattern" "$log" 2>/dev/null || { missing=1; break; }; done
    [ $missing = 0 ] && return 0
    kill -0 "$pid" 2>/dev/null || agent_failed "$log" "aisled exited"
    sleep 0.1
  done
  agent_failed "$log" "not logged within $seconds s: $*"
}

# until_answering SECONDS SOCKET LOG [CURL ARGS...]: until the agent answers the request (by
# default GET /v1/health) with a success.
until_answering() {
  local seconds=$1 sock=$2 log=$3 pid
  shift 3
  [ $# -gt 0 ] || set -- http://aisle/v1/health
  pid=$(cat "$work/aisled.pid")
  for _ in $(seq $((seconds * 10))); do
    curl -sf --unix-socket "$sock" "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || agent_failed "$log" "aisled exited"
    sleep 0.1
  done
  agent_failed "$log" "no answer to $* on $sock within $seconds s"
}

agent_failed() {
  echo "bench: $2; the agent's log ($1) ends:" >&2
  tail -n 20 "$1" >&2
  exit 1
}
