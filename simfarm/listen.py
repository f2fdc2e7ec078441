"""Listen addresses given by users: ``[ADDR][:PORT]``, IPv4 or IPv6, as text and back.

Shared by every server a farm runs for other machines (the USB/IP server,
the metrics endpoint), so they take and print addresses alike.
"""

from __future__ import annotations

import ipaddress

from .errors import BadInput

LOOPBACK = "127.0.0.1"


def parse_address(text: str, what: str, default_port: int | None) -> tuple[str, int]:
    """``[ADDR][:PORT]`` as (address, port), the address 127.0.0.1 when left out. An IPv6 address
    takes brackets to carry a port (``[::1]:3240``); bare (``::``, ``::1``) it is the address alone.
    Port 0 picks a free port. ``default_port`` None: the port must be given. ``what`` names the
    option in the one-line error (BadInput)."""
    host, port = text.strip(), ""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:] if end >= 0 else ""
        if end < 0 or (rest and not rest.startswith(":")):
            raise BadInput(f"{what} {text!r}: expected [IPV6]:PORT")
        host, port = host[1:end], rest[1:] if rest else ""
        if ":" not in host:
            raise BadInput(f"{what} {text!r}: brackets are for IPv6 addresses")
        if rest and not port:
            raise BadInput(f"{what} {text!r}: a port is missing after the colon")
    elif host.count(":") == 1:
        host, port = host.split(":")
        if not port:
            raise BadInput(f"{what} {text!r}: a port is missing after the colon")
    host = host or LOOPBACK
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadInput(f"{what} {text!r}: {host!r} is not an IP address") from None
    if not port:
        if default_port is None:
            raise BadInput(f"{what} {text!r}: a port is needed, e.g. {endpoint(host, 9100)}")
        return host, default_port
    if not port.isdigit() or int(port) > 0xFFFF:
        raise BadInput(f"{what} {text!r}: the port must be a number from 0 to 65535")
    return host, int(port)


def endpoint(host: str, port: int) -> str:
    """``host``:``port`` as text, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
