# Sourced by the reproduce scripts: run_stage LIMIT COMMAND... runs one training stage, time-boxed
# to LIMIT seconds (0: no limit). A stage that hits its limit (exit 124) still leaves its
# checkpoints (they are written atomically) and the script goes on with the next stage.
# TERM, not INT: a job started in the background (&, nohup) inherits SIGINT ignored.
run_stage() {
  local limit=$1; shift
  timeout --signal=TERM "$limit" "$@" || { rc=$?; [ "$rc" -eq 124 ] || exit "$rc"; echo "stage stopped at its ${limit}s limit"; }
}
