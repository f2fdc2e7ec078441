"""`simfarm profiles list` and `simfarm profiles show`: the USB webcam profiles of the uvc backend."""

from __future__ import annotations

import argparse

from ..backends.uvc import profiles
from ..devices.usb.profile import Profile
from . import table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles")
    p.add_argument("--profiles-dir", action="append", default=[], help="extra directory of profile files")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="built-in and user profiles").set_defaults(run=_list)
    show = actions.add_parser("show", help="one profile's formats, sizes, rates and controls")
    show.add_argument("name", help="a profile name, or a .yaml file")
    show.set_defaults(run=_show)


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name, path in profiles.available(args.profiles_dir).items():
        profile = profiles.find(str(path))
        rows.append([name, f"{profile.vendor_id:04x}:{profile.product_id:04x}", profile.product,
                     ", ".join(fmt.format.name for fmt in profile.formats), path])
    print(table.render(["profile", "usb id", "product", "formats", "file"], rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    known = profiles.available(args.profiles_dir)
    profile = profiles.find(str(known[args.name]) if args.name in known else args.name)
    print(_describe(profile))
    return 0


def _describe(profile: Profile) -> str:
    lines = [f"{profile.name}: {profile.manufacturer} {profile.product} "
             f"(usb {profile.vendor_id:04x}:{profile.product_id:04x})"]
    lines += [f"  {fmt.format.name} {frame.size} @ {', '.join(str(rate) for rate in frame.rates)} fps"
              for fmt in profile.formats for frame in fmt.sizes]
    lines += [f"  control {c.name}: {c.minimum}..{c.maximum} step {c.step}, default {c.default}"
              for c in profile.controls]
    return "\n".join(lines)



