#!/usr/bin/env python3
"""Benchmark: how long `simfarm provision --cameras 4` takes, beside the bare kernel cost, and where it goes.

Needs v4l2loopback >= 0.13: run it as `simfarm vm -- scripts/bench/bench_provision.py`
on a machine whose kernel cannot load the module.

    provision   command start to "every camera verified" (CLI, supervisor start, pattern rendering,
                node creation, first frames read back and decoded); teardown likewise
    bare        the same four ADD ioctls, S_FMT on each output, one frame written and read back,
                then REMOVE: the floor any tool pays for the same nodes

Then each part of provisioning on its own, measured in the same run (medians):

    interpreter       python3 -c pass
    CLI imports       what `simfarm provision` imports beyond the interpreter (-X importtime)
    validation        what the provisioning process checks before anything is made
    supervisor start  the supervisor's own interpreter and imports (-X importtime)
    nodes             ADD + S_FMT of every camera's node (from the bare run)
    pattern render    one cycle of the pattern in the raw format (cameras alike share it)
    verify frames     reading frames back from every camera and decoding their codes

Both import figures come from one more provision, run first with
PYTHONPROFILEIMPORTTIME set (the CLI's report on its stderr, the
supervisor's in its log), so they count what each process really imports,
however lazily; what `python3 -c pass` imports by itself is left out.

Target (issue 11): provision <= 3x (interpreter + bare); teardown <= 2x the interpreter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from simfarm.devices.loopback import nodes as loopback_nodes
from simfarm.devices.loopback.control import LoopbackConfig, LoopbackControl
from simfarm.devices.v4l2 import nodes
from simfarm.spec import CameraSpec, PixelFormat, Size

from _common import SIMFARM, medians, run_seconds, where

SIZE, FPS = Size(640, 480), Fraction(30)
FARM = "bench"


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def provision_argv(cameras: int) -> list[str]:
    return [*SIMFARM, "provision", "--cameras", str(cameras), "--farm", FARM, "--size", str(SIZE), "--fps", str(FPS)]


def top_level(report: str) -> dict[str, int]:
    """The imports a -X importtime ``report`` shows at top level (not made by another import): name -> cumulative us."""
    found: dict[str, int] = {}
    for line in report.splitlines():
        fields = line.split("|")
        if line.startswith("import time:") and len(fields) == 3 and fields[1].strip().isdigit():
            if fields[2].startswith(" ") and not fields[2].startswith("  "):
                found[fields[2].strip()] = found.get(fields[2].strip(), 0) + int(fields[1])
    return found


def imported_s(report: str, startup: dict[str, int]) -> float:
    """Seconds the top-level imports in ``report`` took, leaving out those ``startup`` (python3 -c pass) made."""
    return sum(us for name, us in top_level(report).items() if name not in startup) / 1e6


def imports(cameras: int) -> dict[str, float]:
    """One provision with every process's imports timed: the CLI's, and the supervisor's (from its log)."""
    from simfarm import Farm

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    bare_python = subprocess.run([sys.executable, "-c", "pass"], env=env, stderr=subprocess.PIPE, text=True)
    startup = top_level(bare_python.stderr)
    cli = subprocess.run(provision_argv(cameras), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, check=True)
    supervisor = (Farm.attach(FARM).state_dir / "supervisor.log").read_text()
    subprocess.run([*SIMFARM, "teardown", "--farm", FARM], check=True, stdout=subprocess.DEVNULL)
    return {"CLI imports": imported_s(cli.stderr, startup), "supervisor imports": imported_s(supervisor, startup)}


def provision_and_parts(cameras: int) -> dict[str, float]:
    """One provision and teardown through the CLI, with the in-process parts measured on the live farm."""
    from simfarm import Farm

    times = {"provision": run_seconds(provision_argv(cameras))[0]}
    farm = Farm.attach(FARM)
    times["verify frames"] = seconds(farm.verify_frames)
    times["teardown"] = run_seconds([*SIMFARM, "teardown", "--farm", FARM])[0]
    return times


def against(cameras: int, checkout: str) -> dict[str, float]:
    """Provision and teardown through the CLI of the simfarm in ``checkout``, in the same run as this one's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([checkout, os.environ.get("PYTHONPATH", "")])}
    return {"against provision": run_seconds(provision_argv(cameras), env)[0],
            "against teardown": run_seconds([*SIMFARM, "teardown", "--farm", FARM], env)[0]}


def bare(cameras: int) -> dict[str, float]:
    frame = np.zeros(SIZE.width * SIZE.height * 2, np.uint8)
    start = time.perf_counter()
    with LoopbackControl() as control:
        numbers = [control.add(LoopbackConfig(label=f"bench-bare-{i}")) for i in range(cameras)]
        outputs = [nodes.open_output(n, PixelFormat.YUYV, SIZE, FPS) for n in numbers]
        made = time.perf_counter()
        for n, fd in zip(numbers, outputs):
            os.write(fd, frame)
            reader = os.open(nodes.node_path(n), os.O_RDONLY)
            assert len(os.read(reader, frame.nbytes)) == frame.nbytes
            os.close(reader)
        end = time.perf_counter()
    for i, (n, fd) in enumerate(zip(numbers, outputs)):
        os.close(fd)
        loopback_nodes.remove(n, f"bench-bare-{i}")  # waits, as teardown does, for udev's probe to close the node
    return {"bare": end - start, "nodes": made - start}


def in_process_parts(cameras: int) -> dict[str, float]:
    from simfarm.farm.farm import _validate
    from simfarm.frames.stamp import working_format
    from simfarm.patterns import PatternLibrary
    from simfarm.producers.sources import Cycle

    spec = CameraSpec.parse(size=str(SIZE), fps=str(FPS))
    library = PatternLibrary()
    pattern = library.get(spec.pattern)
    return {
        "validation": seconds(lambda: _validate(FARM, [spec] * cameras, None, [], "loopback")),
        "pattern render": seconds(lambda: Cycle.render(pattern.render(spec.size, spec.fps),
                                                       working_format(spec.format), spec.size, pattern)),
    }


def interpreter() -> dict[str, float]:
    return {"interpreter": run_seconds([sys.executable, "-c", "pass"])[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", metavar="CHECKOUT",
                        help="also time provision and teardown with the simfarm of another checkout (e.g. the "
                             "commit before a change), taking turns with this one's; copy it into the guest's "
                             "memory first (/var/tmp) for a fair comparison in the VM")
    args = parser.parse_args()
    imported = imports(args.cameras)  # first: it also warms the page cache for the timed runs
    runs: list[dict[str, float]] = []
    for _ in range(args.runs):  # the parts take turns with the whole, so load hits them alike
        runs.append({**provision_and_parts(args.cameras), **bare(args.cameras), **in_process_parts(args.cameras),
                     **interpreter(), **(against(args.cameras, args.against) if args.against else {})})
    med = medians(runs)
    med["CLI imports"] = imported["CLI imports"]
    med["supervisor start"] = med["interpreter"] + imported["supervisor imports"]
    print(f"{args.cameras} cameras {SIZE}@{FPS}, {args.runs} runs, medians; where: {where()}")
    print(f"  provision (CLI, to all verified): {med['provision']:7.3f} s")
    print(f"  bare ioctls + first frame:        {med['bare']:7.3f} s")
    print(f"  teardown (CLI):                   {med['teardown']:7.3f} s")
    print("  where provisioning goes (each part on its own):")
    parts = ["interpreter", "CLI imports", "validation", "supervisor start", "nodes", "pattern render",
             "verify frames"]
    for part in parts:
        print(f"    {part:<17} {med[part]:7.3f} s  {100 * med[part] / med['provision']:5.1f} %")
    rest = med["provision"] - sum(med[part] for part in parts)
    print(f"    {'the rest':<17} {rest:7.3f} s  {100 * rest / med['provision']:5.1f} %")
    floor = med["interpreter"] + med["bare"]
    print(f"  provision / (interpreter + bare): {med['provision'] / floor:.1f}x (target <= 3x)")
    print(f"  teardown / interpreter:           {med['teardown'] / med['interpreter']:.1f}x (target <= 2x)")
    if args.against:
        print(f"  {args.against}, same runs: provision {med['against provision']:.3f} s "
              f"({med['against provision'] / floor:.1f}x), teardown {med['against teardown']:.3f} s "
              f"({med['against teardown'] / med['interpreter']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
