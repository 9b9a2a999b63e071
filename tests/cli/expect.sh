# Sourced by the CLI tests: expect <exit: zero|nonzero> <text the output must contain> <command...>
# runs the command, checks its exit status and that its output (stdout and stderr) contains the
# text, prints ok/FAIL and counts failures in $failures.
failures=0

expect() {
  local want="$1" text="$2"
  shift 2
  local output status
  output="$("$@" 2>&1)"
  status=$?
  if { [ "$want" = zero ] && [ $status -ne 0 ]; } || { [ "$want" = nonzero ] && [ $status -eq 0 ]; }; then
    echo "FAIL: exit $status ($want expected): $*"; echo "$output" | tail -5; failures=$((failures + 1))
  elif [[ "$output" != *"$text"* ]]; then
    echo "FAIL: no '$text' in the output of: $*"; echo "$output" | tail -5; failures=$((failures + 1))
  else
    echo "ok: $*"
  fi
}
