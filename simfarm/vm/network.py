"""The VM's network (`simfarm vm --net`, `--forward`): QEMU user networking, nothing else.

Without these options the guest has no network at all (virtme-ng passes
``-net none``). With them it gets one virtio NIC on QEMU's user-mode stack
(slirp): the guest is 10.0.2.15 and reaches the host's own addresses at
10.0.2.2, needing no privileges, bridges or tap devices on the host. A
forward makes a host TCP port lead to a guest port, which is how one VM's
server becomes reachable from the host and from other VMs (they dial
10.0.2.2:HOSTPORT).

The NIC is made here rather than with vng's ``--network user`` because
virtme-ng offers no way to add ``hostfwd`` to its own netdev; the kernel
options are the ones vng adds for its NICs (DHCP by virtme's init, the
name eth0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import BadInput

HOST_FROM_GUEST = "10.0.2.2"
NETDEV = "simfarm0"
_FORWARD = re.compile(r"(?:(?P<addr>[0-9.]+):)?(?P<host>[0-9]+):(?P<guest>[0-9]+)")
KERNEL_OPTIONS = ("virtme.dhcp", "net.ifnames=0", "biosdevname=0")


@dataclass(frozen=True)
class Forward:
    """Host ``address:host_port`` (TCP) leads to the guest's ``guest_port``."""

    host_port: int
    guest_port: int
    address: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> Forward:
        """``[HOSTADDR:]HOSTPORT:GUESTPORT``; the host address defaults to loopback so that
        nothing outside this machine reaches the guest unless asked."""
        found = _FORWARD.fullmatch(text)
        if found is None:
            raise BadInput(f"--forward {text!r}: expected [HOSTADDR:]HOSTPORT:GUESTPORT, e.g. 13240:3240")
        forward = cls(int(found["host"]), int(found["guest"]), found["addr"] or "127.0.0.1")
        if not (0 < forward.host_port < 65536 and 0 < forward.guest_port < 65536):
            raise BadInput(f"--forward {text!r}: ports must be 1-65535")
        return forward

    def qemu(self) -> str:
        return f"hostfwd=tcp:{self.address}:{self.host_port}-:{self.guest_port}"


def vng_options(net: bool, forwards: Sequence[Forward]) -> list[str]:
    """The vng arguments for user networking with ``forwards`` (which imply it); none without."""
    if not net and not forwards:
        return []
    netdev = ",".join([f"user,id={NETDEV}", *(forward.qemu() for forward in forwards)])
    return [f"--qemu-opts=-netdev {netdev} -device virtio-net-pci,netdev={NETDEV}",
            "--append", " ".join(KERNEL_OPTIONS)]
