"""The chaos checker: from what the producers sent and were told, what the consumers read during
the run and what a final read finds, count (issue 6):

  sent, acknowledged, indeterminate (delivery failed: may or may not be in the log)
  lost          acknowledged but never found by the final read
  duplicated    one value at two different offsets (in any read)
  unexpected    a value read that was never sent
  inconsistent  one (partition, offset) with two values across reads, or an acknowledged offset
                that holds another value
  non-monotonic a consumer session whose offsets on a partition went backwards or repeated
  skipping      a consumer session that jumped over a data offset the final log holds, or (group
                mode) an offset below the group's final committed offset that no member read
  committed-backwards   the group's committed offset (OffsetFetch) decreased

Availability: for each fault and each partition with a replica on a faulted broker, the time from
the injection (and from the heal) to the next acknowledged write that was sent after that point.
"""

import bisect


def percentile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


class Result:
    def __init__(self):
        self.counts = {}
        self.examples = {}
        self.duplicates = []   # (value, sorted places) of every duplicated value

    def add(self, name, example=None, n=1):
        self.counts[name] = self.counts.get(name, 0) + n
        if example is not None:
            self.examples.setdefault(name, [])
            if len(self.examples[name]) < 5:
                self.examples[name].append(example)


def check(producers, consumers, final, monitor, partitions):
    """final: {tp: [(offset, value)]}. Returns a Result with every count (zeros included)."""
    r = Result()
    for name in ("sent", "acknowledged", "indeterminate", "indeterminate found",
                 "lost", "duplicated", "unexpected", "inconsistent offsets",
                 "non-monotonic positions", "skipping positions", "committed offsets backwards",
                 "fetch out of range", "consumer reads"):
        r.counts[name] = 0
    sent, acked, failed = {}, {}, {}
    for p in producers:
        with p.lock:
            sent.update(p.sent)
            acked.update(p.acked)
            failed.update(p.failed)
    r.counts["sent"] = len(sent)
    r.counts["acknowledged"] = len(acked)
    r.counts["indeterminate"] = len(failed)
    r.counts["unanswered"] = len(sent) - len(acked) - len(failed)

    # Every read, by (tp, offset) -> set of values, and by value -> set of (tp, offset).
    at_offset = {}
    where = {}

    def saw(tp, offset, value, source):
        at_offset.setdefault((tp, offset), {}).setdefault(value, source)
        where.setdefault(value, set()).add((tp, offset))

    final_values = {}
    for tp, records in final.items():
        for offset, value in records:
            saw(tp, offset, value, "final read")
            final_values.setdefault(value, []).append((tp, offset))
    for c in consumers:
        with c.lock:
            reads = list(c.reads)
        r.counts["consumer reads"] += len(reads)
        for _, tp, offset, value in reads:
            saw(tp, offset, value, "consumer %d" % c.index)

    for (tp, offset), values in at_offset.items():
        if len(values) > 1:
            r.add("inconsistent offsets", "%s offset %d holds %s" % (tp, offset, values))
    # An acknowledgement without an offset (the client reported none) can still be checked for
    # loss and duplication, not for its offset; how many there were is reported.
    r.counts["acknowledged without offset"] = sum(
        1 for (_, offset, _) in acked.values() if offset is None or offset < 0)
    final_at = {(tp, offset): value for tp, records in final.items() for offset, value in records}
    final_end = {tp: (records[-1][0] + 1 if records else 0) for tp, records in final.items()}
    for value, (tp, offset, acked_at) in acked.items():
        if value not in final_values:
            r.add("lost", "%s acknowledged at %s offset %s, not in the final read (%s)" % (
                value, tp, offset, lost_detail(value, tp, offset, acked_at, sent, acked,
                                               final_at, final_end, where, at_offset)))
            other = final_at.get((tp, offset)) if offset is not None else None
            if other is not None:
                r.add("inconsistent offsets", "%s acknowledged at %s offset %d, which holds %s" % (
                    value, tp, offset, other))
        elif offset is None or offset < 0:
            continue
        elif (tp, offset) not in final_values[value]:
            r.add("inconsistent offsets", "%s acknowledged at %s offset %d, read at %s" % (
                value, tp, offset, final_values[value]))
    for value, places in where.items():
        if len(places) > 1:
            r.add("duplicated", "%s at %s" % (value, sorted(places)))
            r.duplicates.append((value, sorted(places)))
        if value not in sent:
            r.add("unexpected", "%s at %s" % (value, sorted(places)))
        elif any(tp != sent[value][0] for tp, _ in places):
            r.add("unexpected", "%s sent to %s, read at %s" % (value, sent[value][0],
                                                             sorted(places)))
    for value in failed:
        if value in final_values:
            r.counts["indeterminate found"] += 1

    for c in consumers:
        with c.lock:
            events = list(getattr(c, "out_of_range", []))
        for _, tp, position in events:
            r.add("fetch out of range", "consumer %d %s: OFFSET_OUT_OF_RANGE at position %d, "
                  "which it had reached by reading" % (c.index, tp, position))
    check_positions(r, consumers, final)
    check_commits(r, consumers, monitor, final)
    return r


def lost_detail(value, tp, offset, acked_at, sent, acked, final_at, final_end, where, at_offset):
    """Where and when a lost write was: its send and acknowledgement times (time.monotonic, the
    clock of the harness lines and of the brokers' bracketed log times), whether a consumer read
    it during the run (then the log lost it later, or the final read skipped it), and what the
    final read holds at its offset (another value, acknowledged or not, or nothing)."""
    parts = []
    seen = sorted(where.get(value, ()))
    if seen:
        parts.append("read during the run at %s by %s" % (
            seen, sorted({at_offset[place][value] for place in seen})))
    else:
        parts.append("never read by a consumer")
    if value in sent:
        parts.append("sent at %.3f" % sent[value][1])
    parts.append("acknowledged at %.3f" % acked_at)
    if offset is None or offset < 0:
        return ", ".join(parts)
    other = final_at.get((tp, offset))
    if other is None:
        parts.append("the final read has no record at that offset (it ends at %d)" %
                     final_end.get(tp, 0))
    else:
        where = acked.get(other)
        if where is None:
            parts.append("the final read holds the unacknowledged %s there" % other)
        else:
            parts.append("the final read holds %s there, acknowledged at offset %s at %.3f" % (
                other, where[1], where[2]))
    return ", ".join(parts)


def check_positions(r, consumers, final):
    data_offsets = {tp: sorted(o for o, _ in records) for tp, records in final.items()}
    for c in consumers:
        with c.lock:
            reads = list(c.reads)
        last = {}
        for session, tp, offset, _ in reads:
            key = (session, tp)
            prev = last.get(key)
            last[key] = offset
            if prev is None:
                continue
            if offset <= prev:
                r.add("non-monotonic positions", "consumer %d session %d %s: offset %d after %d"
                      % (c.index, session, tp, offset, prev))
                continue
            offs = data_offsets.get(tp, [])
            i = bisect.bisect_right(offs, prev)
            if i < len(offs) and offs[i] < offset:
                r.add("skipping positions", "consumer %d session %d %s: offset %d after %d "
                      "skips data offset %d" % (c.index, session, tp, offset, prev, offs[i]))


def check_commits(r, consumers, monitor, final):
    if not monitor.group_mode:
        return
    with monitor.lock:
        log = list(monitor.committed_log)
    highest = {}
    for t, tp, offset in log:
        if offset < highest.get(tp, -1):
            r.add("committed offsets backwards", "%s: committed %d after %d" % (
                tp, offset, highest[tp]))
        highest[tp] = max(highest.get(tp, -1), offset)
    # Acknowledged commits must never be undone by a later OffsetFetch answer.
    # Per partition: the OffsetFetch answers in time order and the minimum of every suffix,
    # so that each acknowledged commit costs one bisection (a 2 h run has ~10^5 of each).
    times, suffix_min = {}, {}
    for t, tp, offset in sorted(log):
        times.setdefault(tp, []).append(t)
        suffix_min.setdefault(tp, []).append(offset)
    for tp, mins in suffix_min.items():
        for i in range(len(mins) - 2, -1, -1):
            mins[i] = min(mins[i], mins[i + 1])
    acked_commits = sorted((t, tp, o) for c in consumers for t, tp, o in c.commits)
    for t, tp, offset in acked_commits:
        i = bisect.bisect_right(times.get(tp, []), t + 1.0)
        if i < len(times.get(tp, [])) and suffix_min[tp][i] < offset:
            r.add("committed offsets backwards", "%s: commit of %d acknowledged, later "
                  "OffsetFetch %d" % (tp, offset, suffix_min[tp][i]))
    # At-least-once: every data offset below the final committed offset was read by a member.
    read_by_group = {}
    for c in consumers:
        for _, tp, offset, _ in c.reads:
            read_by_group.setdefault(tp, set()).add(offset)
    for tp, top in highest.items():
        missed = [o for o, _ in final.get(tp, []) if o < top and o not in
                  read_by_group.get(tp, set())]
        if missed:
            r.add("skipping positions", "%s: group committed %d but never read offsets %s" % (
                tp, top, missed[:5]), n=len(missed))


def availability(episodes, producers):
    """{kind: {"inject": [seconds], "heal": [seconds], "missing": n}} over the episodes'
    affected partitions; "missing" counts (partition, point) pairs with no later ack at all."""
    acks = {}
    for p in producers:
        for tp, sent_at, acked_at in p.ack_times():
            acks.setdefault(tp, []).append((sent_at, acked_at))
    for tp in acks:
        acks[tp].sort()

    def first_ack_after(tp, t):
        items = acks.get(tp, [])
        best = None
        for i in range(bisect.bisect_left(items, (t, float("-inf"))), len(items)):
            sent_at, acked_at = items[i]
            if best is not None and sent_at >= best:
                break   # an ack is never earlier than its send
            if best is None or acked_at < best:
                best = acked_at
        return None if best is None else best - t

    out = {}
    for ep in episodes:
        if ep.t_inject is None:
            continue
        entry = out.setdefault(ep.kind, {"inject": [], "heal": [], "missing": 0})
        for tp in ep.partitions:
            for what, t in (("inject", ep.t_inject), ("heal", ep.t_heal)):
                d = first_ack_after(tp, t)
                if d is None:
                    entry["missing"] += 1
                else:
                    entry[what].append(d)
    return out
