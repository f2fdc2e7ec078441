"""`simfarm attach` and `detach`: a farm's webcam imported over USB/IP onto this machine (see
simfarm.publishers.usbip.importer)."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from ..publishers.usbip.attachments import Attachment
from ..publishers.usbip.client import parse_server


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("attach", description="Import a webcam that a farm (simfarm provision --usbip-listen) or "
                                             "any usbipd exports, plug it into this machine's vhci-hcd and print "
                                             "the node uvcvideo makes of it.")
    a.add_argument("server", metavar="HOST[:PORT]", help="the USB/IP server, a name or an address (port 3240 by default; [IPV6]:PORT)")
    which = a.add_mutually_exclusive_group()
    which.add_argument("--busid", help="the export's busid (usbip list -r HOST)")
    which.add_argument("--camera", metavar="LABEL", help="the farm camera's label, e.g. simfarm-lab-0")
    a.add_argument("--watch", action="store_true",
                   help="stay in the foreground: attach again after each unplug and replug, print each new node; "
                        "detach on SIGINT or SIGTERM")
    a.add_argument("--json", action="store_true", help="one JSON object per attachment")
    a.set_defaults(run=_attach)

    d = sub.add_parser("detach", description="Unplug what simfarm attach plugged in (never another port).")
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--busid", help="the export's busid")
    g.add_argument("--all", action="store_true", help="every attachment simfarm attach made")
    d.set_defaults(run=_detach)


def _attach(args: argparse.Namespace) -> int:
    from ..publishers.usbip import importer  # here: udev and the USB room load only when attaching

    host, port = parse_server(args.server)
    attached = importer.attach(host, port, busid=args.busid, camera=args.camera)
    _show(attached, args.json)
    if args.watch:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        importer.watch(attached, stop, lambda again: _show(again, args.json))
    return 0


def _detach(args: argparse.Namespace) -> int:
    from ..publishers.usbip import importer

    ended = importer.detach(None if args.all else args.busid)
    print(f"detached: {', '.join(f'{a.busid} (vhci port {a.vhci_port})' for a in ended) or 'nothing to do'}")
    return 0


def _show(attached: Attachment, as_json: bool) -> None:
    if as_json:
        print(json.dumps(attached.to_json()), flush=True)
    else:
        label = f" {attached.label}" if attached.label else ""
        print(f"{attached.node} {attached.by_id or '-'} ({attached.busid}{label} on vhci port {attached.vhci_port})",
              flush=True)
