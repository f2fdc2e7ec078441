"""`simfarm verify SOURCE`."""

from __future__ import annotations

import argparse
import json

from ..verify import verify


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify")
    p.add_argument("source", help="a video file, a /dev/video node or an rtsp:// URL")
    p.add_argument("--frames", type=int, help="frames to read (live sources default to 60; files: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_verify)


def _verify(args: argparse.Namespace) -> int:
    report = verify(args.source, args.frames)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0 if report.decoded else 1
    print(f"{args.source}: {report.received} frames, {report.undecodable} undecodable, "
          f"cameras {sorted(report.cameras)}")
    for cam in report.per_camera.values():
        print(f"  camera {cam.camera}: received {cam.received}, missing {len(cam.missing)}, "
              f"duplicated {len(cam.duplicated)}, out of order {len(cam.out_of_order)}, "
              f"fps {_num(cam.fps)}, jitter {_num(cam.jitter_ms)} ms, latency {_latency(cam.latency_ms)}")
        if cam.missing:
            print(f"    missing: {_brief(cam.missing)}")
    return 0 if report.decoded else 1


def _brief(seqs: tuple[int, ...] | list[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, seqs[:limit]))
    return shown + (f", ... ({len(seqs)} in all)" if len(seqs) > limit else "")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _latency(latency) -> str:
    if latency is None:
        return "- (no receive times)"
    return f"p50 {latency.p50:.1f} / p95 {latency.p95:.1f} / max {latency.max:.1f} ms"
