#!/usr/bin/env bash
# The workflow tests (make test) as two pytest sessions at once, one per core: a snakemake run leaves
# a core idle for much of its time (one job at the head of its DAG, a dry run, Python starting).
# The modules that share a finished study (the session fixtures of tests/conftest.py) run in one
# session, so each study is built once; every other workflow module in the other. (pytest-xdist's
# --dist loadgroup would do this, but with pytest 9.2 and xdist 3.8.0 it does not group.)
#
#     bash tests/run_workflow_tests.sh [BIN]      # BIN: the venv's bin folder (default .venv/bin)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.venv/bin}"
SHARED=(tests/test_workflow.py tests/test_reruns.py tests/test_predict_cli.py tests/test_test_set_reruns.py
        tests/test_heldout.py tests/test_binary_workflow.py tests/test_generic_workflow.py)
IGNORE=()
for module in "${SHARED[@]}"; do IGNORE+=(--ignore "$module"); done
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
run() {  # name, then the paths and options of one session
    local name="$1"
    shift
    "$BIN/pytest" -q -ra --durations=15 -p no:cacheprovider --basetemp="$TMP/$name" \
        -m "workflow and not slurm" "$@" >"$TMP/$name.log" 2>&1
}
run shared "${SHARED[@]}" &
shared=$!
run others "${IGNORE[@]}" tests &
others=$!
wait "$shared"
shared_rc=$?
wait "$others"
others_rc=$?
for name in shared others; do
    echo "===== workflow tests: $name studies (session exit $([[ $name == shared ]] && echo $shared_rc || echo $others_rc)) ====="
    cat "$TMP/$name.log"
done
exit $((shared_rc != 0 || others_rc != 0))
