# Sourced by scripts/isolation-suite and scripts/isolation-expected (not run).
#
# start_throwaway_db BIN WHO: starts `BIN db` (a throwaway server) in the
# background, sets server_pid to it and dsn to the DSN it prints; WHO names
# the script in the one line printed if it does not start. Needs $work, a
# scratch directory; the caller stops server_pid when it is done.
start_throwaway_db() {
  local bin=$1 who=$2 line
  mkfifo "$work/db.out"
  "$bin" db > "$work/db.out" 2>"$work/db.err" &
  server_pid=$!
  # The fifo stays open for reading (fd 3) until the drain below holds it:
  # lockstep db writes after the DSN too, and a write to a fifo nobody
  # reads ends it (SIGPIPE) — the server gone before the first psql.
  exec 3< "$work/db.out"
  while IFS= read -r line <&3; do
    case "$line" in postgres://*) dsn=$line; break ;; esac
  done
  [ -n "$dsn" ] || { echo "$who: lockstep db did not start: $(cat "$work/db.err")" >&2; exit 1; }
  cat <&3 > /dev/null &
  exec 3<&-
}
