"""One recipe step process: `python bench/_bench_step.py SIDE MODE PREFETCH IN OUT`.

SIDE is `raw` or `zocalo`, MODE `tx` or `plain`. Only the side's own module is
imported, so the raw step's memory holds pika and nothing of Zocalo.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    side, mode, prefetch, in_queue, out_queue = argv
    transactional = mode == "tx"
    if side == "raw":
        from _bench_raw import run_raw_step

        return run_raw_step(
            in_queue, out_queue, transactional=transactional, prefetch=int(prefetch)
        )
    from _bench_zocalo import run_zocalo_step

    return run_zocalo_step(
        in_queue, out_queue, transactional=transactional, prefetch=int(prefetch)
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
