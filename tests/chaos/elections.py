"""What the brokers' logs say about an extra leader change (issue 6, FINDINGS F2).

An extra leader change is a term increase after a heal or a restart on a partition that had a
leader at the heal. Raft elects anew when the followers stop hearing from their leader for an
election timeout; PreVote and CheckQuorum keep a broker that comes back from forcing one. So
for each extra change this module finds, in the broker logs:
- the election: which broker became leader at the new term, when, and how long before that
  its last message from a leader was (its PreCandidate line);
- the old leader's event loop in the second before the election: the longest gap it logged
  (`no tick for N ms`, `loop stall: ... held the loop N ms`) with the detector's verdict
  (starved: waiting for a CPU; blocked: off the CPU in the kernel; busy: on the CPU).

A change is "after a leader loop stall" when that gap is at least STALL_MS: the leader could
not send heartbeats for that long, so its followers' election timers (300-600 ms) ran out, an
election Raft requires. Otherwise, when the harness's proxy process (which carries every
broker-to-broker link) logged a stall of its own of at least STALL_MS in that second
(proxy.log, proxy.py's watchdog), the cause is "proxy stall": every link was silent. Without
that log, a broker (the old leader first) that heard from none of two or more peers for its
liveness timeout around the election, or replicas of at least SILENT_GROUPS other groups on at least two brokers
standing as candidates in the same second, point to the links too: "links silent (inferred)".
Before all that: when no broker's log shows a leader of the heal's term, an election was still
open at the heal (Metadata named the survivor expected to win it) and the cause is "no leader at
the heal"; when the logs show another broker than the one Metadata named at the heal
leading the term of the heal, the harness's premise was stale (Metadata lagged an election
just before the fault, or named the survivor expected to win the fault's failover), and the
cause is "stale leader at the heal": the election replaced that other leader, usually one the
fault stopped. Anything else is "unexplained" and needs a look.

Times: the brokers' bracketed times and the harness's are the same CLOCK_MONOTONIC; lines with
only a wall-clock prefix are placed with the wall-minus-monotonic offset of the same log.
"""
import os
import re

STALL_MS = 250       # a leader loop gap this long can let a follower's election timer expire
LOOKBACK_S = 1.0     # how far before the election the old leader's gaps are looked for
SILENT_GROUPS = 3    # other groups' candidates in that second that point to silent links

_STATE = re.compile(r"^(\d+\.\d+) cluster\[broker (\d+)\] (\S+) \[(\d+\.\d+)\]: (State\w+) at "
                    r"term (\d+)(?:, leader node \d+)?; last leader message (never|\d+ ms ago)")
_NO_TICK = re.compile(r"^(\d+\.\d+) cluster\[broker (\d+)\] \S+: no tick for (\d+) ms \(until "
                      r"(\d+\.\d+)\).*?; (\w+): loop thread over (\d+) ms: cpu (\d+) ms, "
                      r"run-queue wait (\d+) ms, off-cpu (\d+) ms")
_STALL = re.compile(r"^(\d+\.\d+) cluster\[broker (\d+)\] loop stall: (\S+) held the loop (\d+) "
                    r"ms.*?; (\w+): loop thread over (\d+) ms: cpu (\d+) ms, run-queue wait "
                    r"(\d+) ms, off-cpu (\d+) ms")


def group_name(tp):
    """('chaos-rf3', 1) -> 'chaos-rf3-1', the group's name in the brokers' logs."""
    return "%s-%d" % (tp[0], tp[1])


class BrokerLog:
    """The state changes and loop gaps of one broker's log (all its runs appended)."""

    def __init__(self, broker_id, lines):
        self.broker_id = broker_id
        self.states = []  # (mono, group, state, term, last leader message ms or None)
        self.gaps = []    # (start mono, end mono, ms, what, verdict, cpu, run-queue wait, off-cpu)
        self.silent = []  # (mono, peer): a peer found silent for the liveness timeout
        self.produce_errors = []  # (mono, "topic/partition ERROR xN [client] ...") per key
        offset = None
        pending = []      # wall-clock-only lines seen before any line gave the clock offset
        for line in lines:
            m = _STATE.match(line)
            if m:
                wall, mono = float(m.group(1)), float(m.group(4))
                offset = wall - mono
                last = m.group(7)
                self.states.append((mono, m.group(3), m.group(5), int(m.group(6)),
                                    None if last == "never" else int(last.split()[0])))
                continue
            m = _NO_TICK.match(line)
            if m:
                ms, end = int(m.group(3)), float(m.group(4))
                self.gaps.append((end - ms / 1000.0, end, ms, "no tick", m.group(5),
                                  int(m.group(7)), int(m.group(8)), int(m.group(9))))
                continue
            m = _STALL.match(line)
            if m:
                item = (float(m.group(1)), int(m.group(4)), "loop stall in " + m.group(3),
                        m.group(5), int(m.group(7)), int(m.group(8)), int(m.group(9)))
            else:
                m = _SILENT.match(line)
                item = (float(m.group(1)), int(m.group(3))) if m else None
                if item is None:
                    m = _PRODUCE_ERRORS.match(line)
                    item = (float(m.group(1)), "errors", m.group(2)) if m else None
            if item is None:
                continue
            if offset is None:
                pending.append(item)
            else:
                self._add_timed(item, offset)
        for item in pending:
            if offset is not None:
                self._add_timed(item, offset)

    def _add_timed(self, item, offset):
        if len(item) == 3:
            for key in item[2].split("; "):
                self.produce_errors.append((item[0] - offset, key))
            return
        if len(item) == 2:
            self.silent.append((item[0] - offset, item[1]))
            return
        wall, ms, what, verdict, cpu, wait, off = item
        end = wall - offset
        self.gaps.append((end - ms / 1000.0, end, ms, what, verdict, cpu, wait, off))

    def silent_peers(self, t_from, t_to):
        """Peers this broker found silent for the liveness timeout within [t_from, t_to]."""
        return {peer for mono, peer in self.silent if t_from <= mono <= t_to}

    def became_leader(self, group, low_term, high_term, t_from, t_to):
        """(mono, term) of the first StateLeader of `group` at a term in (low, high] within
        [t_from, t_to], or None."""
        for mono, g, state, term, _ in self.states:
            if g == group and state == "StateLeader" and low_term < term <= high_term and \
                    t_from <= mono <= t_to:
                return mono, term
        return None

    def led_term(self, group, term, before):
        """Whether this broker became leader of `group` at `term` at or before `before`."""
        return any(g == group and state == "StateLeader" and t == term and mono <= before
                   for mono, g, state, t, _ in self.states)

    def last_leader_message_ms(self, group, before):
        """The 'last leader message' of this broker's last PreCandidate/Candidate line for
        `group` at or before `before`."""
        found = None
        for mono, g, state, _, last in self.states:
            if g == group and mono <= before and state in ("StatePreCandidate", "StateCandidate"):
                found = last
        return found

    def longest_gap(self, t_from, t_to):
        """The longest logged loop gap overlapping [t_from, t_to], or None."""
        best = None
        for gap in self.gaps:
            if gap[1] >= t_from and gap[0] <= t_to and (best is None or gap[2] > best[2]):
                best = gap
        return best


_SILENT = re.compile(r"^(\d+\.\d+) cluster\[broker (\d+)\] broker (\d+) considered down \(it "
                     r"was silent for the liveness timeout\)")
_PROXY = re.compile(r"^proxy stall (\d+) ms \(until (\d+\.\d+)\)")
# The broker's summary of Produce answers with an error (src/kafka/produce_errors.h).
_PRODUCE_ERRORS = re.compile(r"^(\d+\.\d+) kafka:\d+ produce errors \(\d+ ms\): (.*)$")
PROXY = "proxy"  # the key of the proxy's stalls in read_logs' result


class ProxyLog:
    """The proxy process's own stalls (proxy.log)."""

    def __init__(self, lines):
        self.gaps = []
        for line in lines:
            m = _PROXY.match(line)
            if m:
                ms, end = int(m.group(1)), float(m.group(2))
                self.gaps.append((end - ms / 1000.0, end, ms, "proxy stall", "late", 0, 0, 0))

    longest_gap = BrokerLog.longest_gap


def read_logs(log_dir):
    """{broker id: BrokerLog} from broker-<id>.log files, and PROXY: ProxyLog from proxy.log
    when the run wrote one."""
    logs = {}
    for name in sorted(os.listdir(log_dir)):
        m = re.match(r"broker-(\d+)\.log$", name)
        if m:
            with open(os.path.join(log_dir, name), errors="replace") as f:
                logs[int(m.group(1))] = BrokerLog(int(m.group(1)), f)
        elif name == "proxy.log":
            with open(os.path.join(log_dir, name), errors="replace") as f:
                logs[PROXY] = ProxyLog(f)
    return logs


def produce_errors(logs, tps, t_from, t_to):
    """[(mono, broker, "topic/partition ERROR xN [client] ...")] of the brokers' produce error
    lines for the partitions `tps` ((topic, partition) pairs) logged from t_from to t_to, in
    time order (a line is logged up to one interval after its answers)."""
    names = {"%s/%d " % (topic, partition) for topic, partition in tps}
    out = []
    for bid, log in logs.items():
        for mono, key in getattr(log, "produce_errors", []):
            if t_from <= mono <= t_to and any(key.startswith(n) for n in names):
                out.append((mono, bid, key))
    return sorted(out)


def other_candidates(logs, group, t_from, t_to):
    """(groups, brokers): other groups whose replicas stood as (pre-)candidates in
    [t_from, t_to], and on how many brokers."""
    groups, brokers = set(), set()
    for bid, blog in logs.items():
        if bid == PROXY:
            continue
        for mono, g, state, _, _ in blog.states:
            if g != group and state == "StatePreCandidate" and t_from <= mono <= t_to:
                groups.add(g)
                brokers.add(bid)
    return groups, brokers


def explain(logs, tp, before, after, old_leader, t_heal, t_end):
    """What the logs say about one extra change of `tp` (term `before` at the heal, `after`
    at t_end) whose leader at the heal was broker `old_leader`. Returns a dict: winner,
    elected_at, winner_silence_ms (its last leader message before it stood), gap (the old
    leader's longest loop gap in the LOOKBACK_S before the election) and cause
    ('leader loop stall' or 'unexplained')."""
    group = group_name(tp)
    found = None
    for bid, blog in logs.items():
        if bid == PROXY:
            continue
        hit = blog.became_leader(group, before, after, t_heal - 1.0, t_end + 1.0)
        if hit and (found is None or hit[0] < found[1]):
            found = (bid, hit[0], hit[1])
    out = {"winner": None, "elected_at": None, "term": None, "before": before,
           "winner_silence_ms": None,
           "gap": None, "proxy_gap": None, "others": (set(), set()), "silent_peers": set(),
           "silent_at": None, "stale_leader": None, "cause": "unexplained"}
    if found is None:
        out["cause"] = "unexplained (no election found in the logs)"
        return out
    winner, at, term = found
    out.update(winner=winner, elected_at=at, term=term,
               winner_silence_ms=logs[winner].last_leader_message_ms(group, at))
    # The harness took the leader at the heal from Metadata. When the logs show another broker
    # leading the term of the heal, Metadata was stale (or named the survivor expected to win
    # a failover): the election replaced that other leader, usually one the fault stopped.
    led = [bid for bid, blog in logs.items()
           if bid != PROXY and blog.led_term(group, before, at)]
    if led and old_leader not in led:
        out["stale_leader"] = led[-1]
        out["cause"] = "stale leader at the heal"
        return out
    if not led and any(bid != PROXY and blog.states for bid, blog in logs.items()):
        # Nobody led the heal's term: an election was still open at the heal (Metadata named
        # the survivor expected to win), so the one after it was required.
        out["cause"] = "no leader at the heal"
        return out
    # The old leader's loop first, then the proxy process: (log key, field, cause).
    for key, field, cause in ((old_leader, "gap", "leader loop stall"),
                              (PROXY, "proxy_gap", "proxy stall")):
        if key not in logs:
            continue
        gap = logs[key].longest_gap(at - LOOKBACK_S, at)
        out[field] = gap
        if gap is not None and gap[2] >= STALL_MS:
            out["cause"] = cause
            return out
        if key == PROXY:
            return out  # the proxy was measured: no inference from other groups
    # Without the proxy's log: the old leader hearing from none of several peers around the
    # election (liveness), or many other groups' replicas standing at once, point to the links.
    # The old leader first, then any other broker (a follower that heard from nobody).
    silent, listener = set(), None
    for bid in [old_leader] + sorted(b for b in logs if b not in (PROXY, old_leader)):
        if bid in logs:
            peers = logs[bid].silent_peers(at - LOOKBACK_S, at + 0.5)
            if len(peers) >= 2:
                silent, listener = peers, bid
                break
    out["silent_peers"], out["silent_at"] = silent, listener
    groups, brokers = other_candidates(logs, group, at - LOOKBACK_S, at)
    out["others"] = (groups, brokers)
    if silent or (len(groups) >= SILENT_GROUPS and len(brokers) >= 2):
        out["cause"] = "links silent (inferred)"
    return out


def describe(info, old_leader):
    """One line for the report."""
    if info["winner"] is None:
        return info["cause"]
    text = "won by broker %d at term %d (%.2f; its last leader message %s before)" % (
        info["winner"], info["term"], info["elected_at"],
        "never" if info["winner_silence_ms"] is None else "%d ms" % info["winner_silence_ms"])
    if info["stale_leader"] is not None:
        return text + "; the logs show broker %d leading term %d, not broker %s as Metadata said " \
            "at the heal -> %s" % (info["stale_leader"], info["before"], old_leader,
                                   info["cause"])
    gap = info["gap"]
    if gap is None:
        text += "; old leader broker %s logged no loop gap in the %.1f s before" % (
            old_leader, LOOKBACK_S)
    else:
        _, end, ms, what, verdict, cpu, wait, off = gap
        text += "; old leader broker %s: %s %d ms ending %.2f (%s: cpu %d ms, run-queue wait " \
                "%d ms, off-cpu %d ms)" % (old_leader, what, ms, end, verdict, cpu, wait, off)
    if info["proxy_gap"] is not None:
        text += "; the proxy process stalled %d ms ending %.2f" % (info["proxy_gap"][2],
                                                                 info["proxy_gap"][1])
    if info["silent_peers"]:
        text += "; %s heard nothing from brokers %s for its liveness timeout" % (
            "the old leader" if info["silent_at"] == old_leader else
            "broker %s" % info["silent_at"], sorted(info["silent_peers"]))
    groups, brokers = info["others"]
    if groups:
        text += "; %d other groups had candidates on %d brokers in that second" % (
            len(groups), len(brokers))
    return text + " -> " + info["cause"]


def parse_harness_output(lines):
    """[(episode, kind, tp, before, after, old leader, heal time, summary time)] from a chaos
    run's printed log: each 'EXTRA LEADER CHANGE [...]' episode line with its at-heal leaders.
    The heal time is approximated by the episode's injection line time plus its hold."""
    import ast
    out = []
    start = {}
    inj = re.compile(r"^\[harness (\d+\.\d+)\] nemesis #(\d+) ([a-z-]+): .* \(hold (\d+\.\d+)s\)$")
    summ = re.compile(r"^\[harness (\d+\.\d+)\] nemesis #(\d+) ([a-z-]+): .*EXTRA LEADER CHANGE "
                      r"(\[.*?\])(?:;.*?)? \(at heal: leaders (\{.*?\}) terms")
    for line in lines:
        m = inj.match(line.rstrip("\n"))
        if m:
            start[int(m.group(2))] = float(m.group(1)) + float(m.group(4))
            continue
        m = summ.match(line)
        if m:
            number = int(m.group(2))
            changes = ast.literal_eval(m.group(4))
            leaders = ast.literal_eval(m.group(5))
            for tp, before, after in changes:
                out.append((number, m.group(3), tp, before, after, leaders.get(tp),
                            start.get(number, float(m.group(1)) - 10), float(m.group(1))))
    return out


def main(argv):
    """elections.py HARNESS_OUTPUT LOG_DIR: explains every extra leader change of a run."""
    with open(argv[1], errors="replace") as f:
        extra = parse_harness_output(f)
    logs = read_logs(argv[2])
    causes = {}
    for number, kind, tp, before, after, old, t_heal, t_end in extra:
        info = explain(logs, tp, before, after, old, t_heal, t_end)
        causes[info["cause"]] = causes.get(info["cause"], 0) + 1
        print("episode #%d %s: %s term %d -> %d: %s" % (number, kind, tp, before, after,
                                                        describe(info, old)))
    print("%d extra leader change(s): %s" % (len(extra), ", ".join(
        "%d %s" % (n, c) for c, n in sorted(causes.items())) or "none"))
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
