"""``python -m ccasim.fuzz``: the adversarial campaign (see :mod:`ccasim.fuzz`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ccasim.fuzz import Campaign
from ccasim.rmm.profile import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ccasim.fuzz",
        description="A hostile host against the stack, every SMC checked against its invariants.",
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="how long (default 1)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--sequences", type=int, default=10**9, help="at most this many seeds")
    parser.add_argument("--length", type=int, default=200, help="steps per sequence")
    parser.add_argument("--profile", choices=list(PROFILES), default="spec",
                        help="the RMM (default spec: it must never stop)")  # fmt: skip
    parser.add_argument("--regressions", metavar="DIR", default="fuzz-regressions",
                        help="where failures are written as test files")  # fmt: skip
    parser.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster ('auto', host:port)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.workers < 1 or args.sequences < 1 or args.length < 1:
        parser.error("--minutes, --workers, --sequences and --length must be positive")
    if args.seed < 0:
        parser.error("--seed must not be negative")
    if Path(args.regressions).exists() and not Path(args.regressions).is_dir():
        parser.error(f"--regressions: {args.regressions} is not a directory")
    campaign = Campaign(
        range(args.seed, args.seed + args.sequences), length=args.length,
        seconds=args.minutes * 60, workers=args.workers, profile=args.profile, ray=args.ray,
    )  # fmt: skip
    try:
        campaign.run()
    except RuntimeError as e:
        print(f"ccasim fuzz: error: {e}", file=sys.stderr)
        return 2
    print(campaign.text())
    try:
        for path in campaign.write_regressions(args.regressions) if campaign.failures else []:
            print(f"wrote {path}")
    except OSError as e:
        print(f"ccasim fuzz: error: cannot write {args.regressions}: {e.strerror or e}",
              file=sys.stderr)  # fmt: skip
        return 2
    return 1 if campaign.failures else 0


if __name__ == "__main__":
    sys.exit(main())
