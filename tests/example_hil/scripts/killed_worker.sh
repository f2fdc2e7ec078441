#!/bin/sh
# A pytest worker killed with SIGKILL mid-test leaves its farm (the supervisor
# outlives it); the next run removes it, passes, and leaves nothing behind.
# simfarm vm -- sh tests/example_hil/scripts/killed_worker.sh
cd "$(dirname "$0")/../../.." || exit 1
leases=/run/simfarm/pytest-leases
hold=$(mktemp -d)
printf 'import time\n\ndef test_hold(simfarm_camera):\n    time.sleep(600)\n' > "$hold/test_hold.py"
python3 -m pytest -q -p no:cacheprovider -n 1 "$hold/test_hold.py" > /tmp/killed.log 2>&1 &
runner=$!
for _ in $(seq 600); do  # until the worker holds a farm (provisioning takes a while under TCG)
    lease=$(ls "$leases"/*.lease 2>/dev/null | head -1)
    [ -n "$lease" ] && [ -d "/run/simfarm/farms/$(basename "$lease" .lease)" ] && break
    sleep 1
done
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
