#!/bin/sh
# Prints every simfarm farm record, lease, node and supervisor on this machine; fails if there is any.
# Run as root (state in /run/simfarm), e.g. inside `simfarm vm`.
found=0
for item in /run/simfarm/farms/* /run/simfarm/pytest-leases/*; do
    [ -e "$item" ] && { echo "left behind: $item"; found=1; }
done
for name in /sys/class/video4linux/video*/name; do
    grep -q '^simfarm-' "$name" 2>/dev/null && { echo "left behind: node $(dirname "$name") $(cat "$name")"; found=1; }
done
if pgrep -f simfarm.farm.supervisor >/dev/null; then
    echo "left behind: supervisors $(pgrep -f simfarm.farm.supervisor | tr '\n' ' ')"; found=1
fi
[ "$found" = 0 ] && echo "nothing of simfarm left"
exit "$found"
