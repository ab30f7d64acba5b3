#!/usr/bin/env python3
"""Where a single in-flight produce's time goes: merges the trace files that brokers started
with RAFTMQ_TRACE_FILE=<prefix> write at exit (src/base/trace.h; "<prefix>.<pid>", one per
broker, CLOCK_MONOTONIC nanoseconds shared by the processes of one machine) and prints the
median of each stage over the produces found (docs/benchmarks.md).

Usage: tools/trace_produce.py PREFIX [--group G]
Only meaningful for one produce in flight at a time (raftmq-loadgen latency): events are
attributed to a produce by time order within [Kafka request read, Kafka response written]."""
import argparse
import bisect
import glob
import statistics
import sys

S = dict(kafka_read=1, propose=2, ready=3, msgs_sent=4, appended=5, parked=6,
         flush_enqueue=7, flusher_wake=8, sync_start=9, sync_end=10, on_durable=11,
         after_persist_sent=12, tx_enqueue=13, tx_write=14, tx_recv=15, step=16, apply=17,
         produce_done=18, kafka_written=19)
APPEND, APPEND_RESP = 0, 1


def load(prefix):
    procs = {}
    for path in sorted(glob.glob(prefix + ".*")):
        ev = []
        with open(path) as f:
            for line in f:
                ns, st, a, b = line.split()
                ev.append((int(ns), int(st), int(a), int(b)))
        ev.sort()
        procs[path] = ev
    return procs


class Proc:
    def __init__(self, ev):
        self.ev = ev
        self.ts = [e[0] for e in ev]

    def first(self, t0, t1, stage, pred=lambda e: True):
        """The first event of `stage` in [t0, t1] matching pred."""
        i = bisect.bisect_left(self.ts, t0)
        while i < len(self.ev) and self.ev[i][0] <= t1:
            e = self.ev[i]
            if e[1] == stage and pred(e):
                return e
            i += 1
        return None


def analyse(procs, group):
    # The leader: the process with Propose events.
    leader_path = max(procs, key=lambda p: sum(1 for e in procs[p] if e[1] == S["propose"]))
    L = Proc(procs[leader_path])
    followers = [Proc(procs[p]) for p in procs if p != leader_path]
    rows = []
    proposes = [e for e in L.ev if e[1] == S["propose"]]
    for pe in proposes:
        t_prop, index = pe[0], pe[2]
        # The Kafka read that led to it: the last before the proposal.
        i = bisect.bisect_left(L.ts, t_prop)
        read = None
        while i > 0:
            i -= 1
            if L.ev[i][1] == S["kafka_read"]:
                read = L.ev[i]
                break
        if read is None or t_prop - read[0] > 5_000_000:
            continue
        t0 = read[0]
        horizon = t0 + 50_000_000
        apply = L.first(t_prop, horizon, S["apply"], lambda e: e[2] == index)
        if apply is None:
            continue
        written = L.first(apply[0], horizon, S["kafka_written"])
        if written is None:
            continue
        t1 = written[0]
        r = {"total": t1 - t0, "read->propose": t_prop - t0}
        ready = L.first(t_prop, t1, S["ready"], lambda e: e[3] >= index)
        sent = L.first(t_prop, t1, S["msgs_sent"])
        txw = L.first(t_prop, t1, S["tx_write"])
        enq = L.first(t_prop, t1, S["flush_enqueue"])
        wake = L.first(t_prop, t1, S["flusher_wake"])
        ss = L.first(t_prop, t1, S["sync_start"])
        se = L.first(t_prop, t1, S["sync_end"])
        dur = L.first(t_prop, t1, S["on_durable"], lambda e: e[3] >= index)
        if ready: r["L propose->ready"] = ready[0] - t_prop
        if ready and sent: r["L ready->msgs to transport"] = sent[0] - ready[0]
        if sent and txw: r["L transport queue->socket write"] = txw[0] - sent[0]
        if ready and enq: r["L ready->flusher enqueue"] = enq[0] - ready[0]
        if enq and wake: r["L flusher wake"] = wake[0] - enq[0]
        if ss and se: r["L fdatasync (sync_internal)"] = se[0] - ss[0]
        if se and dur: r["L durable->loop"] = dur[0] - se[0]
        if ready and dur: r["L ready->own durable on loop"] = dur[0] - ready[0]
        # Followers: the one whose ack reached the leader first.
        best = None
        for F in followers:
            rv = F.first(t_prop, t1, S["tx_recv"], lambda e: e[3] == APPEND)
            if rv is None:
                continue
            fr = {}
            st = F.first(rv[0], t1, S["step"], lambda e: e[3] == APPEND)
            fready = F.first(rv[0], t1, S["ready"], lambda e: e[3] >= index)
            fenq = F.first(rv[0], t1, S["flush_enqueue"])
            fwake = F.first(rv[0], t1, S["flusher_wake"])
            fss = F.first(rv[0], t1, S["sync_start"])
            fse = F.first(rv[0], t1, S["sync_end"])
            fdur = F.first(rv[0], t1, S["on_durable"], lambda e: e[3] >= index)
            fsent = F.first(rv[0], t1, S["after_persist_sent"])
            ftxw = F.first(fsent[0] if fsent else rv[0], t1, S["tx_write"])
            if txw: fr["wire L->F (write->recv)"] = rv[0] - txw[0]
            if st: fr["F recv->step (loop hop)"] = st[0] - rv[0]
            if st and fready: fr["F step->ready"] = fready[0] - st[0]
            if fready and fenq: fr["F ready->flusher enqueue"] = fenq[0] - fready[0]
            if fenq and fwake: fr["F flusher wake"] = fwake[0] - fenq[0]
            if fss and fse: fr["F fdatasync (sync_internal)"] = fse[0] - fss[0]
            if fse and fdur: fr["F durable->loop"] = fdur[0] - fse[0]
            if fdur and fsent: fr["F durable->ack to transport"] = fsent[0] - fdur[0]
            if fsent and ftxw: fr["F transport queue->socket write"] = ftxw[0] - fsent[0]
            if ftxw is None:
                continue
            lrv = L.first(ftxw[0], t1, S["tx_recv"], lambda e: e[3] == APPEND_RESP)
            if lrv is None:
                continue
            fr["wire F->L (write->recv)"] = lrv[0] - ftxw[0]
            lst = L.first(lrv[0], t1, S["step"], lambda e: e[3] == APPEND_RESP)
            if lst: fr["L recv->step (loop hop)"] = lst[0] - lrv[0]
            if lst: fr["L step->apply"] = apply[0] - lst[0]
            fr["_ack_at"] = lrv[0]
            if best is None or fr["_ack_at"] < best["_ack_at"]:
                best = fr
        if best:
            best.pop("_ack_at")
            r.update(best)
        r["L apply->response written"] = t1 - apply[0]
        if dur: r["(L own durable on loop, from read)"] = dur[0] - t0
        rows.append(r)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("--group", type=int, default=0)
    a = ap.parse_args()
    procs = load(a.prefix)
    if len(procs) < 2:
        sys.exit(f"need the trace files of the brokers ({a.prefix}.<pid>), found {len(procs)}")
    rows = analyse(procs, a.group)
    if not rows:
        sys.exit("no complete produce found")
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    print(f"{len(rows)} produces; median (p90) in microseconds")
    for k in keys:
        vals = sorted(r[k] for r in rows if k in r)
        med = statistics.median(vals) / 1000
        p90 = vals[int(len(vals) * 0.9)] / 1000
        print(f"  {k:40s} {med:8.1f}  ({p90:.1f})  n={len(vals)}")


if __name__ == "__main__":
    main()
