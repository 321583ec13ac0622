#!/usr/bin/env python3
"""Measures what the machine itself takes from a busy program: one process per CPU
(pinned) spins on the clock for SECONDS and reports the time it did not get, in gaps
over 50 us, and how many gaps exceeded 1 ms. No Vigil involved.
  python3 scripts/hiccups.py [SECONDS] [CPUS, e.g. 0,1 or 0]"""
import multiprocessing as mp
import os
import sys
import time


def spin(cpu, seconds, out):
    os.sched_setaffinity(0, {cpu})
    clock = time.perf_counter
    start = last = clock()
    lost, over_1ms, worst = 0.0, 0, 0.0
    while last - start < seconds:
        now = clock()
        gap = now - last
        if gap > 50e-6:
            lost += gap
            over_1ms += gap > 1e-3
            worst = max(worst, gap)
        last = now
    out.put((cpu, lost, over_1ms, worst, seconds))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    cpus = ([int(c) for c in sys.argv[2].split(",")] if len(sys.argv) > 2
            else sorted(os.sched_getaffinity(0)))
    out = mp.Queue()
    procs = [mp.Process(target=spin, args=(c, seconds, out)) for c in cpus]
    for p in procs:
        p.start()
    for _ in procs:
        cpu, lost, over, worst, secs = out.get()
        print(f"cpu {cpu}: lost {lost * 1e3:.0f} ms of {secs * 1e3:.0f} "
              f"({100 * lost / secs:.1f} %), {over} gaps over 1 ms, longest {worst * 1e3:.2f} ms")
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
