#!/usr/bin/env python3
"""Cuts a small, valid BTF blob out of a kernel's BTF, for the `btf` fuzz target's seeds.

/sys/kernel/btf/vmlinux is megabytes; zoneprof reads only a few structs and prototypes.
This keeps those (the roots below) and every type they embed, renumbered; a struct or union
reached only through a pointer becomes a forward declaration, as in C, so the cut stays
small while every lookup zoneprof makes still resolves the way it does on the full blob.

    python3 fuzz/cut-btf.py /sys/kernel/btf/vmlinux fuzz/corpus/btf/vmlinux-cut
"""
import struct
import sys

STRUCT_ROOTS = ["zone", "pglist_data", "per_cpu_pages", "sk_buff"]
FUNC_ROOTS = ["free_pcppages_bulk", "rmqueue_bulk", "__rmqueue_pcplist", "skb_attempt_defer_free"]
TRACE_ROOTS = [
    "btf_trace_contention_begin",
    "btf_trace_contention_end",
    "btf_trace_mm_page_alloc_zone_locked",
    "btf_trace_mm_page_pcpu_drain",
    "btf_trace_kfree_skb",
    "btf_trace_consume_skb",
]

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}


def trailing(kind, vlen):
    return {INT: 4, ARRAY: 12, STRUCT: 12 * vlen, UNION: 12 * vlen, ENUM: 8 * vlen,
            FUNC_PROTO: 8 * vlen, VAR: 4, DATASEC: 12 * vlen, DECL_TAG: 4,
            ENUM64: 12 * vlen}.get(kind, 0)


def main(src, dst):
    data = open(src, "rb").read()
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data)
    assert magic == 0xEB9F and version == 1, "little-endian BTF version 1 expected"
    tstart, sstart = hdr_len + type_off, hdr_len + str_off
    strs = data[sstart:sstart + str_len]

    def name(off):
        return strs[off:strs.index(b"\0", off)].decode()

    types = [None]  # id 0 is void
    pos = tstart
    while pos < tstart + type_len:
        name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        tail = data[pos + 12:pos + 12 + trailing(kind, vlen)]
        types.append((name_off, info, size_or_type, tail))
        pos += 12 + len(tail)

    by_name = {}
    for i, t in enumerate(types[1:], 1):
        by_name.setdefault((t[1] >> 24 & 0x1F, name(t[0])), []).append(i)

    new_id = {}   # old id -> new id
    fwds = {}     # (name, is_union) -> new id
    out = []      # new records: [name, info, size_or_type, tail words]
    roots = set()

    def fwd(nm, is_union):
        key = (nm, is_union)
        if key not in fwds:
            out.append([nm, (FWD << 24) | (int(is_union) << 31), 0, []])
            fwds[key] = len(out)
        return fwds[key]

    def ref(old, via_ptr):
        if old == 0:
            return 0
        name_off, info, size_or_type, tail = types[old]
        kind = info >> 24 & 0x1F
        nm = name(name_off)
        if via_ptr and kind in (STRUCT, UNION) and nm and old not in roots:
            return fwd(nm, kind == UNION)
        if old in new_id:
            return new_id[old]
        rec = [nm, info, size_or_type, []]
        out.append(rec)
        me = new_id[old] = len(out)
        words = list(struct.unpack(f"<{len(tail) // 4}I", tail))
        if kind == PTR:
            rec[2] = ref(size_or_type, True)
        elif kind in MODIFIERS:
            rec[2] = ref(size_or_type, via_ptr)
        elif kind == ARRAY:
            words[0] = ref(words[0], via_ptr)
            words[1] = ref(words[1], False)
        elif kind in (STRUCT, UNION):
            for i in range(0, len(words), 3):
                words[i] = name(words[i])
                words[i + 1] = ref(words[i + 1], False)
        elif kind in (ENUM, ENUM64):
            step = 2 if kind == ENUM else 3
            for i in range(0, len(words), step):
                words[i] = name(words[i])
        elif kind == FUNC_PROTO:
            rec[2] = ref(size_or_type, True)
            for i in range(0, len(words), 2):
                words[i] = name(words[i])
                words[i + 1] = ref(words[i + 1], True)
        elif kind == FUNC:
            rec[2] = ref(size_or_type, False)
        elif kind in (INT, FWD, FLOAT):
            pass
        else:
            raise SystemExit(f"unexpected kind {kind} reached from the roots")
        rec[3] = words
        return me

    for nm in STRUCT_ROOTS:
        roots.update(by_name.get((STRUCT, nm), [])[:1])
    for nm in STRUCT_ROOTS:
        for old in by_name.get((STRUCT, nm), [])[:1]:
            ref(old, False)
    for nm in FUNC_ROOTS:
        for old in by_name.get((FUNC, nm), [])[:1]:
            ref(old, False)
    for nm in TRACE_ROOTS:
        for old in by_name.get((TYPEDEF, nm), [])[:1]:
            ref(old, False)

    table = bytearray(b"\0")
    offsets = {"": 0}

    def s(nm):
        if nm not in offsets:
            offsets[nm] = len(table)
            table.extend(nm.encode() + b"\0")
        return offsets[nm]

    body = bytearray()
    for nm, info, size_or_type, words in out:
        kind = info >> 24 & 0x1F
        if kind in (STRUCT, UNION):
            words = [s(w) if i % 3 == 0 else w for i, w in enumerate(words)]
        elif kind in (ENUM, ENUM64):
            step = 2 if kind == ENUM else 3
            words = [s(w) if i % step == 0 else w for i, w in enumerate(words)]
        elif kind == FUNC_PROTO:
            words = [s(w) if i % 2 == 0 else w for i, w in enumerate(words)]
        body += struct.pack(f"<III{len(words)}I", s(nm), info, size_or_type, *words)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(table))
    open(dst, "wb").write(header + body + table)
    print(f"{dst}: {len(out)} types, {len(header) + len(body) + len(table)} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:3])
