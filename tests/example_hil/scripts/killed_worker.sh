#!/bin/sh
# A pytest worker killed with SIGKILL mid-test leaves its farm (the supervisor
# outlives it); the next run removes it, passes, and leaves nothing behind.
# simfarm vm -- sh tests/example_hil/scripts/killed_worker.sh
cd "$(dirname "$0")/../../.." || exit 1
leases=/run/simfarm/pytest-leases
hold=$(mktemp -d)
# Says when it holds its camera: killed while provisioning, a worker leaves
# nothing (the supervisor abandons a start whose provisioner has gone).
printf 'import pathlib, time\n\ndef test_hold(simfarm_camera):\n    pathlib.Path("%s/ready").touch()\n    time.sleep(600)\n' \
    "$hold" > "$hold/test_hold.py"
python3 -m pytest -q -p no:cacheprovider -n 1 "$hold/test_hold.py" > /tmp/killed.log 2>&1 &
runner=$!
for _ in $(seq 600); do [ -e "$hold/ready" ] && break; sleep 1; done
lease=$(ls "$leases"/*.lease | head -1)
farm=$(basename "$lease" .lease)
worker=$(cat "$lease")
echo "killing worker $worker, which holds farm $farm"
kill -9 "$worker"
wait "$runner"
echo "first run exited $?; its farm is still there:"; ls /run/simfarm/farms/
[ -d "/run/simfarm/farms/$farm" ] || { echo "expected $farm to be left behind"; exit 1; }
python3 -m pytest -q -p no:cacheprovider -n 2 tests/example_hil; status=$?
[ -d "/run/simfarm/farms/$farm" ] && { echo "$farm was not reclaimed"; exit 1; }
sh tests/example_hil/scripts/leftovers.sh && [ "$status" = 0 ]
