"""`just faults`: the fault harness's long run (see harness.py for the faults).

python -m bench.faults --minutes 10 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.faults.checker import History, judge
from bench.faults.harness import FAULTS, QUEUE, Config, run_faults
from workflow_worker.local.devstack import RedisServer


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--lease", type=float, default=3.0, help="WORKER_LEASE_SECONDS")
    parser.add_argument("--rate", type=float, default=40.0, help="jobs enqueued per second")
    parser.add_argument("--every", type=float, default=2.5, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--fanout", type=int, default=0, help="members of a group (with a callback) enqueued"
    )
    parser.add_argument(
        "--steps",
        type=float,
        default=0.0,
        help="share of the load that is the durable-steps workflow (0 to 1)",
    )
    parser.add_argument("--only", nargs="*", choices=FAULTS, help="inject only these faults")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and data here")
    parser.add_argument("--rejudge", type=Path, default=None, help="judge a kept run again")
    args = parser.parse_args(argv)
    if args.rejudge:
        return rejudge(args.rejudge)
    cfg = Config(
        seconds=args.minutes * 60,
        workers=args.workers,
        concurrency=args.concurrency,
        lease=args.lease,
        rate=args.rate,
        every=args.every,
        settle=180.0,
        seed=args.seed,
        faults=tuple(args.only or FAULTS),
        fanout=args.fanout,
        steps=args.steps,
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-"))
    report = run_faults(cfg, workdir)
    print(report.table())
    verdict = report.verdict
    for label, items in (
        ("lost", verdict.lost),
        ("uncounted duplicates", verdict.uncounted),
        ("id-less groups short", verdict.short_groups),
        ("started early", verdict.early),
        ("oversized not dead-lettered whole", verdict.huge_wrong),
        ("slow drains", report.slow_drains),
        ("step jobs wrong", verdict.steps.wrong),
        ("sleeps wrong", verdict.steps.sleep_wrong),
        ("step re-runs unexplained", verdict.steps.unexplained),
    ):
        if items:
            print(f"{label}: {', '.join(items[:20])}")
    print(f"logs and data: {workdir}")
    return 0 if report.ok() else 1


def rejudge(workdir: Path) -> int:
    """Judge the data and history a run left in `workdir` again (after a checker change)."""
    newest = max(
        workdir.glob("redis-*"), key=lambda d: max(f.stat().st_mtime for f in d.rglob("*"))
    )
    server = RedisServer(newest, appendonly=True)
    server.start()
    try:
        verdict = judge(server.url, QUEUE, History.load(workdir / "history.json"))
    finally:
        server.stop()
    width = max(len(name) for name, _ in verdict.rows())
    for name, value in verdict.rows():
        print(f"| {name:<{width}} | {value} |")
    if verdict.uncounted:
        print("uncounted duplicates:", ", ".join(verdict.uncounted[:20]))
    for label, items in (
        ("step jobs wrong", verdict.steps.wrong),
        ("sleeps wrong", verdict.steps.sleep_wrong),
        ("step re-runs unexplained", verdict.steps.unexplained),
    ):
        if items:
            print(f"{label}: {', '.join(items[:20])}")
    return 0 if verdict.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
