#!/bin/sh
# Two `pytest -n 2` runs of the example suite started together on one machine
# must both pass and leave nothing behind.  simfarm vm -- sh tests/example_hil/scripts/two_runs_at_once.sh
cd "$(dirname "$0")/../../.." || exit 1
run() { python3 -m pytest -q -p no:cacheprovider -n 2 tests/example_hil > "/tmp/example-$1.log" 2>&1; }
run a & a=$!
run b & b=$!
wait "$a"; status_a=$?
wait "$b"; status_b=$?
for log in /tmp/example-a.log /tmp/example-b.log; do echo "== $log"; tail -4 "$log"; done
echo "exit codes: $status_a $status_b"
sh tests/example_hil/scripts/leftovers.sh && [ "$status_a" = 0 ] && [ "$status_b" = 0 ]
