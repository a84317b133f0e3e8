#!/usr/bin/env python3
"""Writes recordings whose numbers sit at u64::MAX, one table at a time, from a seed.

Every such file parses (the format allows any u64), and the views then add the numbers up;
the sums saturate at u64::MAX (before that fix they panicked with overflow checks on and
wrapped in release builds). The `recording_views` target did not reach these values by
mutation in 10 minutes; see docs/fuzzing.md, "Bugs found and fixed".
`profiler/tests/extreme.rs` builds the same recordings in memory for `cargo test`.

    python3 fuzz/extreme-recordings.py fuzz/corpus/recording/synthetic-4cpu.json OUT_DIR
    fuzz/target/x86_64-unknown-linux-gnu/release/recording_views OUT_DIR/*.json
"""
import copy
import json
import os
import sys

MAX = 2**64 - 1
MAX_U32 = 2**32 - 1
# Indices and identifiers, not quantities: left alone.
KEEP = {"cpu", "alloc_cpu", "free_cpu", "stack", "bucket", "node", "zone_idx", "lock_addr",
        "lock_flags", "stack_error"}
# Quantities the format holds in a u32: at u32::MAX, so that the file still parses.
U32 = {"sample_one_in", "rounds", "calls_per_round"}


def saturate(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and k not in KEEP:
                obj[k] = MAX_U32 if k in U32 else MAX
            elif k == "lifetime_hist":
                # (bucket: u32, pages: u64) pairs.
                obj[k] = [[MAX_U32, MAX] for _ in v]
            else:
                saturate(v)
    elif isinstance(obj, list):
        for v in obj:
            saturate(v)


def main(seed, out):
    base = json.load(open(seed))
    os.makedirs(out, exist_ok=True)
    for table in ["lock_waits", "wait_hist", "pcp", "counters", "skb_sites", "skb_matrix",
                  "skb_defer", "page_matrix", "page_tracking", "observer"]:
        if not base.get(table):
            continue
        rec = copy.deepcopy(base)
        saturate(rec[table])
        path = os.path.join(out, f"{table}.json")
        json.dump(rec, open(path, "w"))
        print(path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
