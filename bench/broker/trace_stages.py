#!/usr/bin/python3
"""Where a Raft entry's time goes under load (docs/benchmarks.md, "e2e tail"): reads the trace
files that brokers started with RAFTMQ_TRACE_FILE=<prefix> write at exit (src/base/trace.h,
"<prefix>.<pid>", one per broker; CLOCK_MONOTONIC ns shared by the processes of a machine)
and follows every proposed partition entry (g, i) from its proposal on the leader to its
commit there:

  propose -> Ready         the group's previous Ready is parked on its fsync (no new Ready
                           is taken until the flusher reports; the pipelining limit)
  Ready -> L appended      the leader's own write to the page cache
  Ready -> F appended      first follower has it in its page cache (wire, follower loop,
                           follower's own parked Ready)
  F appended -> F durable  that follower's flusher queue and fdatasync
  L appended -> L durable  the leader's flusher queue and fdatasync
  majority -> commit       second of the three durable times -> applied on the leader
                           (the acknowledgement back over the wire and the leader's loop)
  total                    propose -> applied on the leader (the produce answer follows)

Prints percentiles of each stage over all entries, the median of each stage over the entries
whose total is at or above the total's p99 (the breakdown of the tail), and the flushers'
rounds (fdatasyncs per round, one sync's duration, a round's duration).

Usage: bench/broker/trace_stages.py PREFIX [--json OUT]
Tracing under load: RAFTMQ_TRACE_EVENTS (capacity) and RAFTMQ_TRACE_DELAY_MS (skip start-up)."""
import argparse
import bisect
import glob
import json
import sys

PROPOSE, READY, APPENDED, FLUSHER_WAKE, SYNC_START, SYNC_END, ON_DURABLE, COMMIT = (
    2, 3, 5, 8, 9, 10, 11, 20)


def load(prefix):
    procs = []
    for path in sorted(glob.glob(prefix + ".*")):
        ev = []
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4:
                    ev.append((int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])))
        ev.sort()
        procs.append((path, ev))
    return procs


class Series:
    """(ns, index) events of one group on one broker; first(t, i): the first event at or
    after t whose index is >= i (indexes only grow within a term, a running max keeps the
    search valid across a leader change)."""

    def __init__(self):
        self.ns, self.idx = [], []

    def add(self, ns, idx):
        self.ns.append(ns)
        self.idx.append(max(idx, self.idx[-1]) if self.idx else idx)

    def first(self, t, i):
        a = bisect.bisect_left(self.ns, t)
        b = bisect.bisect_left(self.idx, i)
        k = max(a, b)
        return self.ns[k] if k < len(self.ns) else None


def index_proc(ev):
    per = {READY: {}, APPENDED: {}, ON_DURABLE: {}, COMMIT: {}}
    proposes = []
    for ns, st, a, b in ev:
        if st == PROPOSE:
            proposes.append((ns, b, a))  # (ns, group, index)
        elif st in per:
            if st == READY and b == 0:
                continue  # a Ready with nothing to persist
            per[st].setdefault(a, Series()).add(ns, b)
    return proposes, per


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]


STAGES = ("propose->ready", "ready->L_appended", "ready->F_appended", "F_appended->F_durable",
          "L_appended->L_durable", "majority->commit", "total")


def entries(procs):
    idx = [index_proc(ev) for _, ev in procs]
    out = []
    for li, (proposes, per) in enumerate(idx):
        for t0, g, i in proposes:
            def first(pi, st):
                s = idx[pi][1][st].get(g)
                return s.first(t0, i) if s else None
            ready = first(li, READY)
            l_app = first(li, APPENDED)
            l_dur = first(li, ON_DURABLE)
            commit = first(li, COMMIT)
            if None in (ready, l_app, l_dur, commit):
                continue  # the window ended first
            f_app, durs = [], [l_dur]
            for fi in range(len(idx)):
                if fi == li:
                    continue
                fa, fd = first(fi, APPENDED), first(fi, ON_DURABLE)
                if fa is not None and fd is not None:
                    f_app.append((fa, fd))
                    durs.append(fd)
            if not f_app or len(durs) < 2:
                continue
            fa, fd = min(f_app)
            majority = sorted(durs)[1]
            out.append({"propose->ready": ready - t0, "ready->L_appended": l_app - ready,
                        "ready->F_appended": fa - ready, "F_appended->F_durable": fd - fa,
                        "L_appended->L_durable": l_dur - l_app,
                        "majority->commit": max(0, commit - majority), "total": commit - t0,
                        "leader_completed_majority": l_dur == majority})
    return out


def flusher_rounds(ev):
    """Rounds of the flusher of one broker: from its wake-up to the last sync that ended before
    the next wake-up. A sync's start and end carry the syncing thread's number (0: the
    flusher thread, 1..: the helpers of parallel rounds), so overlapping syncs pair up."""
    syncs_per_round, sync_us, round_us = [], [], []
    start = {}
    n = 0
    last_end = None
    begin = None
    for ns, st, a, _ in ev:
        if st == FLUSHER_WAKE:
            if begin is not None and last_end is not None:
                syncs_per_round.append(n)
                round_us.append((last_end - begin) / 1000)
            begin, n, last_end = ns, 0, None
        elif st == SYNC_START:
            start[a] = ns
        elif st == SYNC_END and a in start:
            sync_us.append((ns - start.pop(a)) / 1000)
            n += 1
            last_end = ns
    return syncs_per_round, sync_us, round_us


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix")
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args()
    procs = load(a.prefix)
    if not procs:
        sys.exit(f"no trace files {a.prefix}.*")
    es = entries(procs)
    if not es:
        sys.exit("no proposed entry followed to its commit (tracing on? RAFTMQ_TRACE_FILE)")
    summary = {"entries": len(es), "stages_us": {}, "tail_us": {}, "flushers": {}}
    print(f"{len(es)} entries followed from proposal to commit on the leader")
    print(f"{'stage':24} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}   (µs)")
    for st in STAGES:
        xs = [e[st] / 1000 for e in es]
        row = {q: pct(xs, q) for q in (50, 90, 99, 100)}
        summary["stages_us"][st] = row
        print(f"{st:24} {row[50]:9.0f} {row[90]:9.0f} {row[99]:9.0f} {row[100]:9.0f}")
    p99 = pct([e["total"] for e in es], 99)
    tail = [e for e in es if e["total"] >= p99]
    print(f"\nthe tail: {len(tail)} entries with total >= p99 ({p99 / 1000:.0f} µs), median of "
          f"each stage; the leader's own fsync completed the majority in "
          f"{sum(e['leader_completed_majority'] for e in tail)} of them")
    for st in STAGES:
        v = pct([e[st] / 1000 for e in tail], 50)
        summary["tail_us"][st] = v
        print(f"{st:24} {v:9.0f}")
    print(f"\n{'flusher (per broker)':24} {'rounds':>7} {'syncs/round':>12} {'sync p50/p99 µs':>16} "
          f"{'round p50/p99 µs':>17}")
    for path, ev in procs:
        spr, sus, rus = flusher_rounds(ev)
        if not spr:
            continue
        f = {"rounds": len(spr), "syncs_per_round_avg": sum(spr) / len(spr),
             "syncs_per_round_max": max(spr), "sync_p50_us": pct(sus, 50),
             "sync_p99_us": pct(sus, 99), "round_p50_us": pct(rus, 50), "round_p99_us": pct(rus, 99)}
        summary["flushers"][path] = f
        print(f"{path[-12:]:24} {f['rounds']:7} {f['syncs_per_round_avg']:7.2f} (max {f['syncs_per_round_max']})"
              f" {f['sync_p50_us']:7.0f}/{f['sync_p99_us']:<7.0f} {f['round_p50_us']:8.0f}/{f['round_p99_us']:<8.0f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
