#!/usr/bin/python3
"""Self-test of the chaos checker (no cluster): histories with planted anomalies must be
counted exactly, and a clean history must count zero everywhere."""

import threading
import unittest

import checker

TP = ("t", 0)
TP1 = ("t", 1)


class FakeProducer:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent, self.acked, self.failed = {}, {}, {}
        self.failed_at, self.eos_trail = {}, []
        self.route_trail = []

    def send(self, value, tp=TP, at=0.0):
        self.sent[value] = (tp, at)

    def ack(self, value, offset, at):
        self.acked[value] = (self.sent[value][0], offset, at)

    def ack_times(self):
        return [(tp, self.sent[v][1], t) for v, (tp, _, t) in self.acked.items()]


def timed_out_producer(index):
    """A producer whose one message, sent at 80.0, timed out at 95.0 (a one-message burst)."""
    p = FakeProducer()
    p.index = index
    p.send("v0", tp=TP, at=80.0)
    p.failed["v0"] = "_MSG_TIMED_OUT"
    p.failed_at["v0"] = 95.0
    return p


class FakeConsumer:
    def __init__(self, index, reads, commits=()):
        self.lock = threading.Lock()
        self.index = index
        self.reads = list(reads)   # (session, tp, offset, value)
        self.commits = list(commits)


class FakeMonitor:
    def __init__(self, group_mode=False, committed_log=()):
        self.lock = threading.Lock()
        self.group_mode = group_mode
        self.committed_log = list(committed_log)


class FakeEpisode:
    def __init__(self, kind, t_inject, t_heal, partitions):
        self.kind, self.t_inject, self.t_heal, self.partitions = kind, t_inject, t_heal, \
            partitions


def clean_history(n=10):
    p = FakeProducer()
    final = {TP: []}
    for i in range(n):
        v = "v%d" % i
        p.send(v, at=float(i))
        p.ack(v, 2 * i, float(i) + 0.5)   # offsets 0, 2, 4...: gaps are control batches
        final[TP].append((2 * i, v))
    return p, final


class CheckerTest(unittest.TestCase):
    def counts(self, producers, consumers, final, monitor=None):
        return checker.check(producers, consumers, final, monitor or FakeMonitor(),
                             list(final)).counts

    def test_clean_history_counts_zero(self):
        p, final = clean_history()
        reads = [(1, TP, o, v) for o, v in final[TP]]
        c = self.counts([p], [FakeConsumer(0, reads)], final)
        self.assertEqual(c["sent"], 10)
        self.assertEqual(c["acknowledged"], 10)
        for name in ("lost", "duplicated", "unexpected", "inconsistent offsets",
                     "non-monotonic positions", "skipping positions", "indeterminate"):
            self.assertEqual(c[name], 0, name)

    def test_lost_duplicated_unexpected(self):
        p, final = clean_history()
        final[TP] = [r for r in final[TP] if r[1] != "v3"]   # acked v3 lost
        final[TP].append((40, "v5"))                          # v5 twice
        final[TP].append((42, "never-sent"))
        c = self.counts([p], [], final)
        self.assertEqual((c["lost"], c["duplicated"], c["unexpected"]), (1, 1, 1))

    def test_inconsistent_offsets(self):
        p, final = clean_history()
        reads = [(1, TP, 4, "v9")]                  # offset 4 held v2 in the final read
        c = self.counts([p], [FakeConsumer(0, reads)], final)
        self.assertEqual(c["inconsistent offsets"], 1)
        p.acked["v1"] = (TP, 6, 1.5)               # acknowledged at 6, found at 2
        c = self.counts([p], [FakeConsumer(0, reads)], final)
        self.assertEqual(c["inconsistent offsets"], 2)

    def test_lost_write_whose_offset_holds_another_value(self):
        # v3 acknowledged at offset 6, but the final log holds another acknowledged value there
        # (a committed entry overwritten): lost AND inconsistent, and the example says what is
        # there and when each was acknowledged.
        p, final = clean_history()
        p.send("w", at=20.0)
        p.ack("w", 6, 20.5)
        final[TP] = [(o, "w" if o == 6 else v) for o, v in final[TP]]
        r = checker.check([p], [], final, FakeMonitor(), [TP])
        self.assertEqual((r.counts["lost"], r.counts["inconsistent offsets"]), (1, 1))
        example = r.examples["lost"][0]
        self.assertIn("sent at 3.000", example)
        self.assertIn("acknowledged at 3.500", example)
        self.assertIn("holds w there, acknowledged at offset 6 at 20.500", example)
        self.assertIn("never read by a consumer", example)
        # Beyond the end of the final read: nothing there.
        p2, final2 = clean_history()
        final2[TP] = final2[TP][:-1]   # v9 at offset 18 lost with the tail
        reads = [(1, TP, 18, "v9")]   # a consumer read it during the run
        r2 = checker.check([p2], [FakeConsumer(0, reads)], final2, FakeMonitor(), [TP])
        self.assertEqual((r2.counts["lost"], r2.counts["inconsistent offsets"]), (1, 0))
        self.assertIn("read during the run at [(('t', 0), 18)] by ['consumer 0']",
                      r2.examples["lost"][0])
        self.assertIn("no record at that offset (it ends at 17)", r2.examples["lost"][0])

    def test_indeterminate_may_appear(self):
        p, final = clean_history()
        p.send("x")
        p.failed["x"] = "_MSG_TIMED_OUT"
        final[TP].append((20, "x"))
        c = self.counts([p], [], final)
        self.assertEqual((c["indeterminate"], c["indeterminate found"], c["unexpected"]),
                         (1, 1, 0))

    def test_wrong_partition_is_unexpected(self):
        p, final = clean_history()
        final[TP1] = [(0, "v1")]
        c = self.counts([p], [], final)
        self.assertEqual(c["unexpected"], 1)

    def test_positions(self):
        p, final = clean_history()
        reads = [(1, TP, 0, "v0"), (1, TP, 2, "v1"), (1, TP, 2, "v1"),   # repeat
                 (1, TP, 6, "v3"),                                        # skips offset 4
                 (2, TP, 0, "v0")]                                        # new session: ok
        c = self.counts([p], [FakeConsumer(0, reads)], final)
        self.assertEqual(c["non-monotonic positions"], 1)
        self.assertEqual(c["skipping positions"], 1)

    def test_committed_offsets(self):
        p, final = clean_history()
        log = [(1.0, TP, 4), (2.0, TP, 8), (3.0, TP, 6)]            # 8 -> 6: backwards
        commits = [(1.5, TP, 8)]
        reads = [(1, TP, o, v) for o, v in final[TP] if o < 8]
        c = self.counts([p], [FakeConsumer(0, reads, commits)], final,
                        FakeMonitor(True, log))
        self.assertEqual(c["committed offsets backwards"], 2)      # the drop, the undone ack
        self.assertEqual(c["skipping positions"], 0)
        # An answer within 1 s of the acknowledged commit may predate it: only the drop counts.
        c = self.counts([p], [FakeConsumer(0, reads, [(2.5, TP, 8)])], final,
                        FakeMonitor(True, log))
        self.assertEqual(c["committed offsets backwards"], 1)
        # A committed offset above offsets nobody read: skipped by the group.
        c = self.counts([p], [FakeConsumer(0, reads[:2])], final,
                        FakeMonitor(True, [(1.0, TP, 8)]))
        self.assertEqual(c["skipping positions"], 2)                # offsets 4 and 6

    def test_fetch_out_of_range(self):
        p, final = clean_history()
        c = FakeConsumer(0, [(1, TP, 0, "v0")])
        c.out_of_range = [(3.0, TP, 1)]
        self.assertEqual(self.counts([p], [c], final)["fetch out of range"], 1)

    def test_availability(self):
        p = FakeProducer()
        for i, (sent, acked) in enumerate([(0.0, 0.1), (1.0, 3.0), (2.0, 2.5), (5.0, 5.2)]):
            p.send("v%d" % i, at=sent)
            p.ack("v%d" % i, i, acked)
        eps = [FakeEpisode("kill-leader", 0.5, 4.0, [TP, TP1])]
        a = checker.availability(eps, [p])["kill-leader"]
        self.assertEqual([round(x, 2) for x in a["inject"]], [2.0])   # first ack of a write
        self.assertEqual([round(x, 2) for x in a["heal"]], [1.2])     # sent after the point
        self.assertEqual(a["missing"], 2)                             # TP1: no writes at all


class ClientLogTest(unittest.TestCase):
    """The report's use of librdkafka's own log (FINDINGS.md F6, F7)."""

    def test_offsetless_acks_explained_by_the_client_log(self):
        import report
        p = FakeProducer()
        p.no_offset_acks = [("a", TP, 100.0), ("b", TP1, 100.0), ("c", TP, 200.0)]
        # An implicit ack for TP at 110 s explains "a" (10 s apart), not "c" (90 s) nor
        # "b" (another partition).
        p.offsetless_by_client = [(110.0, TP)]
        self.assertEqual(report.explained_offsetless([p]), 1)

    def test_only_the_known_client_desync_is_excused(self):
        import report
        p = FakeProducer()
        p.fatal_errors = [
            (1.0, 'KafkaError{FATAL,code=OUT_OF_ORDER_SEQUENCE_NUMBER,val=45,str="ProduceRequest '
                  'for chaos [1] with 48 message(s) failed due to sequence desynchronization '
                  'with broker 1"}'),
            (2.0, "... failed with rewound sequence number on broker 2 ..."),
            (3.0, "KafkaError{FATAL,code=INVALID_PRODUCER_EPOCH}")]
        self.assertEqual(report.unexplained_fatal_errors([p]),
                         ["KafkaError{FATAL,code=INVALID_PRODUCER_EPOCH}"])

    def test_fatal_client_error_replaces_the_producer(self):
        import workload
        w = workload.ProducerWorker(0, "127.0.0.1:1", [TP], 10, True, "run")
        first = w.producer
        w.replace_after_fatal("sequence desynchronization (planted)")
        self.assertIsNot(w.producer, first)
        self.assertIsNotNone(w.producer)
        self.assertEqual([t for _, t in w.fatal_errors], ["sequence desynchronization (planted)"])
        self.assertFalse(w.stop_flag.is_set())
        # Bounded: past FATAL_REPLACEMENTS_MAX the worker stops instead of looping.
        w.FATAL_REPLACEMENTS_MAX = 3
        for _ in range(w.FATAL_REPLACEMENTS_MAX):
            w.replace_after_fatal("again")
        self.assertTrue(w.stop_flag.is_set())


class OperatorCutTest(unittest.TestCase):
    """cluster.cut_unopenable_segments (FINDINGS.md F8): cuts exactly the segment and position
    the broker's own error names, once."""

    def test_cuts_the_named_segment_at_the_damaged_entry(self):
        import os
        import tempfile
        import cluster as chaos_cluster
        with tempfile.TemporaryDirectory() as d:
            seg = os.path.join(d, "00000000000000000001.log")
            other = os.path.join(d, "00000000000000000099.log")
            for path in (seg, other):
                with open(path, "wb") as f:
                    f.write(b"z" * 1000)
            log = os.path.join(d, "broker-1.log")
            with open(log, "w") as f:
                f.write("cluster[broker 1] cannot open chaos-2: Corruption: log chaos-2 segment "
                        "%s position 700: entry 9 fails its checksum but a valid entry follows "
                        "at position 800 (corruption, not a torn write)\n" % seg)
                f.write("cluster[broker 1] cannot open chaos-2: Corruption: log chaos-2 segment "
                        "%s position 400: entry 5 fails its checksum but a valid entry follows "
                        "at position 500 (corruption, not a torn write)\n" % seg)
                f.write("cluster[broker 1] chaos-3: replica stopped: NoSpace: %s\n" % other)

            class B:
                log_path = log
            self.assertEqual(chaos_cluster.cut_unopenable_segments(B()), ["chaos-2 at 400"])
            self.assertEqual(os.path.getsize(seg), 400)      # the latest message counts
            self.assertEqual(os.path.getsize(other), 1000)   # other errors: untouched
            self.assertEqual(chaos_cluster.cut_unopenable_segments(B()), [])  # already cut
            # A later run of the broker: the segment grew again; the old message must not cut
            # it a second time (that would remove acknowledged entries the replica got back).
            with open(seg, "ab") as f:
                f.write(b"y" * 600)
            with open(log, "a") as f:
                f.write("==== chaos: start at 12.000 ====\nraftmq serve: broker 1 up\n")
            self.assertEqual(chaos_cluster.cut_unopenable_segments(B()), [])
            self.assertEqual(os.path.getsize(seg), 1000)


    def test_duplicates_are_classified_by_their_producers_epoch_bumps(self):
        import contextlib
        import io
        import report
        p = FakeProducer()
        p.send("bumped", at=10.0)
        p.ack("bumped", 7, 14.0)
        p.send("plain", at=50.0)
        p.ack("plain", 9, 50.5)
        p.send("failed", at=80.0)
        p.failed["failed"] = "_MSG_TIMED_OUT"
        p.failed_at["failed"] = 95.0
        # A bump between the first value's send and its acknowledgement, another one 20 s after
        # the second value's (outside its window), one inside the failed value's window.
        p.eos_trail = [(12.0, "NEWPID", "NEWPID ... epoch 1"), (70.0, "NEWPID", "late"),
                       (90.0, "DRAIN", "drain: timed out"), (90.1, "RESETSEQ", "reset")]
        r = checker.check([p], [], {TP: [(1, "bumped"), (7, "bumped"), (8, "plain"),
                                         (9, "plain"), (10, "failed"), (11, "failed")]},
                          FakeMonitor(), [TP])
        self.assertEqual(len(r.duplicates), 3)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_duplicate_detail(r, [p])
        text = out.getvalue()
        self.assertIn("between send and answer: 2 of 3", text)
        self.assertIn("plain sent at 50.000, acknowledged at offset 9 at 50.500", text)
        self.assertIn("delivery failed (_MSG_TIMED_OUT) at 95.000", text)
        self.assertNotIn("late", text)


    def test_delivery_failures_are_grouped_into_bursts(self):
        import report
        p = FakeProducer()
        p.index = 0
        for i, at in enumerate((10.0, 11.0, 14.5, 40.0)):
            p.send("v%d" % i, tp=TP if i < 3 else TP1, at=at - 15)
            p.failed["v%d" % i] = "_MSG_TIMED_OUT"
            p.failed_at["v%d" % i] = at
        bursts = report.failure_bursts([p])
        self.assertEqual([(b[0], b[1], b[2]) for b in bursts], [(10.0, 14.5, 3), (40.0, 40.0, 1)])
        self.assertEqual(bursts[0][3], {TP: 3})
        self.assertEqual(bursts[1][3], {TP1: 1})

    def test_a_bursts_report_shows_which_leader_the_client_was_told(self):
        import contextlib
        import io
        import report
        import workload
        p = timed_out_producer(1)
        p.metadata_from = None
        # librdkafka's debug lines as its logger receives them (workload.ProducerWorker).
        lines = [(70.0, "[thrd:main]: 127.0.0.1:9092/1: ===== Received metadata (for 1 "
                        "requested topics): periodic topic and broker list refresh ====="),
                 (70.0, "[thrd:main]:   Topic t partition 0 Leader 1"),
                 (70.0, "[thrd:main]:   Topic t partition 1 Leader 3"),
                 (81.0, "[thrd:main]: 127.0.0.1:9092/1: ===== Received metadata ====="),
                 (81.0, "[thrd:main]:   Topic t partition 0 Leader 1"),
                 (82.0, "[thrd:main]: 127.0.0.1:9094/3: ===== Received metadata ====="),
                 (82.0, "[thrd:main]:   Topic t partition 0 Leader 3"),
                 (82.0, "[thrd:main]: Topic t [0]: migrating from broker 1 to 3 (leader is 3): "
                        "leader updated"),
                 (83.0, "[thrd:main]: 127.0.0.1:9092/1: ===== Received metadata ====="),
                 (83.0, "[thrd:main]:   Topic t partition 0 Leader 1"),
                 (84.0, "[thrd:main]: some other line")]
        for at, line in lines:
            self.assertEqual(workload.ProducerWorker.note_route(p, at, line),
                             "other" not in line)
        self.assertEqual(report.route_summary(p, TP, 0, 100), [
            "70.000-81.000: broker 1 named leader 1 x2",
            "82.000-82.000: broker 3 named leader 3 x1",
            "82.000: moved from broker 1 to 3",
            "83.000-83.000: broker 1 named leader 1 x1"])
        self.assertEqual(report.route_summary(p, TP, 82.5, 100),
                         ["83.000-83.000: broker 1 named leader 1 x1"])
        # Cut to the last `most` lines, but every move stays.
        self.assertEqual(report.route_summary(p, TP, 0, 100, most=1), [
            "... 2 earlier", "82.000: moved from broker 1 to 3",
            "83.000-83.000: broker 1 named leader 1 x1"])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report.print_failure_bursts([p])
        # From one message timeout (15 s) before the burst: the 70.0 answer is left out.
        self.assertIn("p1's metadata for t/0: 81.000-81.000: broker 1 named leader 1 x1; "
                      "82.000-82.000: broker 3 named leader 3 x1; ", out.getvalue())

    def test_a_bursts_report_shows_what_the_brokers_answered_its_partitions(self):
        import contextlib
        import io
        import os
        import tempfile
        import report
        p = timed_out_producer(2)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "broker-1.log"), "w") as f:
                # wall = mono + 5000 (the state line gives the offset)
                f.write("5070.000 cluster[broker 1] t-0 [70.000]: StateLeader at term 3, "
                        "leader node 2; last leader message 0 ms ago, longest tick gap 0 ms\n"
                        "5082.000 kafka:9092 produce errors (1000 ms): t/0 NOT_LEADER_OR_FOLLOWER"
                        " x7 [chaos-p2] \"t-0 is not led here\"; t/10 REQUEST_TIMED_OUT x1 "
                        "[chaos-p1]\n"
                        "5050.000 kafka:9092 produce errors (1000 ms): t/0 NOT_ENOUGH_REPLICAS x1 "
                        "[chaos-p2]\n")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                report.print_failure_bursts([p], d)
            text = out.getvalue()
            self.assertIn("broker 1 at 82.000: t/0 NOT_LEADER_OR_FOLLOWER x7 [chaos-p2]", text)
            self.assertNotIn("t/10", text)                 # another partition
            self.assertNotIn("NOT_ENOUGH_REPLICAS", text)  # before the message timeout
            p.failed_at["v0"] = 200.0
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                report.print_failure_bursts([p], d)
            self.assertIn("brokers: no error answer to these partitions' Produce requests",
                          out.getvalue())


class ElectionsTest(unittest.TestCase):
    """elections.py: an extra leader change is explained from the brokers' logs."""

    # Broker 2 led chaos-1 at term 41; broker 3 won term 42 at 1000.35. Wall = mono + 5000.
    LOGS = {
        2: ["==== chaos: start at 990.000 ====",
            "5990.000 cluster[broker 2] chaos-1 [990.000]: StateLeader at term 41, leader node 3; "
            "last leader message 0 ms ago, longest tick gap 0 ms",
            "6000.480 cluster[broker 2] loop stall: drain_pumps held the loop 467 ms (most in "
            "ready chaos-1 > apply: 467 ms); starved: loop thread over 485 ms: cpu 1 ms, "
            "run-queue wait 472 ms, off-cpu 12 ms; sampled R x6",
            "6000.481 cluster[broker 2] controller: no tick for 300 ms (until 1000.481); "
            "meanwhile on this loop 28 messages stepped; starved: loop thread over 300 ms: "
            "cpu 1 ms, run-queue wait 290 ms, off-cpu 9 ms; sampled R x6",
            "6005.000 cluster[broker 2] chaos-2 [1005.000]: StateLeader at term 6, leader node "
            "3; last leader message 300 ms ago, longest tick gap 0 ms"],
        3: ["6000.340 cluster[broker 3] chaos-1 [1000.340]: StatePreCandidate at term 41; "
            "last leader message 340 ms ago, longest tick gap 99 ms",
            "6000.341 cluster[broker 3] chaos-1 [1000.341]: StateCandidate at term 42; last "
            "leader message 341 ms ago, longest tick gap 0 ms",
            "6000.350 cluster[broker 3] chaos-1 [1000.350]: StateLeader at term 42, leader node "
            "4; last leader message 350 ms ago, longest tick gap 0 ms",
            "6010.000 cluster[broker 3] chaos-2 [1010.000]: StateLeader at term 7, leader node "
            "4; last leader message 20 ms ago, longest tick gap 0 ms"],
    }

    def write_logs(self, d):
        import os
        for bid, lines in self.LOGS.items():
            with open(os.path.join(d, "broker-%d.log" % bid), "w") as f:
                f.write("\n".join(lines) + "\n")

    def logs(self, extra=None):
        """elections.read_logs of LOGS plus `extra` ({file name: lines appended})."""
        import os
        import tempfile
        import elections
        with tempfile.TemporaryDirectory() as d:
            self.write_logs(d)
            for name, lines in (extra or {}).items():
                with open(os.path.join(d, name), "a") as f:
                    f.write("".join(line + "\n" for line in lines))
            return elections.read_logs(d)

    @staticmethod
    def episode(number, kind, t_inject, t_heal, leaders_at_heal, extra, down_at_heal=()):
        """A nemesis.Episode that recovered 1 s after its heal with one extra change."""
        import nemesis
        e = nemesis.Episode(number, kind)
        e.t_inject, e.t_heal, e.recovered = t_inject, t_heal, 1.0
        e.leaders_at_heal = dict(leaders_at_heal)
        e.extra_elections = [extra]
        e.down_at_heal = set(down_at_heal)
        return e

    def leader_changes(self, episodes, monitor):
        """report.print_leader_changes over LOGS: (its result, what it printed)."""
        import contextlib
        import io
        import tempfile
        import report
        out = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(out):
            self.write_logs(d)
            got = report.print_leader_changes(episodes, monitor, d)
        return got, out.getvalue()

    def test_an_election_after_the_old_leaders_loop_stall_is_explained_by_it(self):
        import elections
        logs = self.logs()
        info = elections.explain(logs, ("chaos", 1), 41, 42, 2, 999.5, 1003.0)
        self.assertEqual((info["winner"], info["term"], info["winner_silence_ms"]), (3, 42, 341))
        self.assertEqual(info["cause"], "leader loop stall")
        # The loop stall (wall clock only) is placed with the log's wall-minus-mono offset and
        # is the longer of the two gaps.
        self.assertAlmostEqual(info["gap"][1], 1000.48, places=2)
        self.assertEqual(info["gap"][2:5], (467, "loop stall in drain_pumps", "starved"))
        text = elections.describe(info, 2)
        self.assertIn("won by broker 3 at term 42", text)
        self.assertIn("run-queue wait 472 ms", text)

    def test_an_election_without_a_stall_of_the_old_leader_is_unexplained(self):
        import elections
        logs = self.logs()
        # chaos-2's election at 1010.0: broker 2 logged no gap in the second before it.
        info = elections.explain(logs, ("chaos", 2), 6, 7, 2, 1008.0, 1012.0)
        self.assertEqual(info["winner"], 3)
        self.assertIsNone(info["gap"])
        self.assertEqual(info["cause"], "unexplained")
        # A term the logs never show.
        info = elections.explain(logs, ("chaos", 1), 50, 51, 2, 999.5, 1003.0)
        self.assertTrue(info["cause"].startswith("unexplained"))
        self.assertIsNone(info["winner"])

    def test_a_heal_term_nobody_led_means_no_leader_at_the_heal(self):
        import elections
        logs = self.logs()
        # Term 40 of chaos-1 was never led (the logs show 41 and 42); broker 3 won 42.
        info = elections.explain(logs, ("chaos", 1), 40, 42, 2, 999.5, 1003.0)
        self.assertEqual(info["winner"], 3)
        self.assertEqual(info["cause"], "no leader at the heal")

    def test_a_stall_of_the_proxy_process_explains_an_election_without_a_leader_gap(self):
        import elections
        logs = self.logs({"proxy.log": ["proxy stall 180 ms (until 1005.000)",  # long before
                                        "proxy stall 400 ms (until 1009.900)"]})
        info = elections.explain(logs, ("chaos", 2), 6, 7, 2, 1008.0, 1012.0)
        self.assertEqual(info["cause"], "proxy stall")
        self.assertEqual(info["proxy_gap"][2], 400)
        self.assertIn("the proxy process stalled 400 ms", elections.describe(info, 2))
        # The old leader's own stall comes first.
        info = elections.explain(logs, ("chaos", 1), 41, 42, 2, 999.5, 1003.0)
        self.assertEqual(info["cause"], "leader loop stall")

    def test_an_old_leader_that_heard_from_no_peer_points_to_silent_links(self):
        import elections
        logs = self.logs({"broker-2.log": [
            "6009.950 cluster[broker 2] broker %d considered down (it was silent for the liveness "
            "timeout): waking the groups it leads and those led here" % peer for peer in (1, 3)]})
        info = elections.explain(logs, ("chaos", 2), 6, 7, 2, 1008.0, 1012.0)
        self.assertEqual(info["silent_peers"], {1, 3})
        self.assertEqual(info["cause"], "links silent (inferred)")
        self.assertIn("heard nothing from brokers [1, 3]", elections.describe(info, 2))

    def test_a_term_led_by_another_broker_than_metadata_named_is_a_stale_leader(self):
        import elections
        logs = self.logs()
        # Metadata named broker 1 at the heal; broker 2 led term 6 (broker 3 won term 7).
        info = elections.explain(logs, ("chaos", 2), 6, 7, 1, 1008.0, 1012.0)
        self.assertEqual((info["cause"], info["stale_leader"]), ("stale leader at the heal", 2))
        self.assertIn("the logs show broker 2 leading term 6, not broker 1",
                      elections.describe(info, 1))

    def test_the_report_explains_each_extra_change_and_counts_the_causes(self):
        class Monitor:
            terms = {("chaos", 1): 42}
            lock = threading.Lock()
            term_log = [(990.0, ("chaos", 1), 41), (1000.35, ("chaos", 1), 42)]
        e = self.episode(72, "kill-random", 995.0, 999.5, {("chaos", 1): 2}, (("chaos", 1), 41, 42))
        (extra, causes, required), text = self.leader_changes([e], Monitor())
        self.assertEqual((len(extra), required), (1, []))
        self.assertEqual(causes, {"leader loop stall": 1})
        self.assertIn("won by broker 3 at term 42", text)
        self.assertIn("by cause: 1 leader loop stall", text)
        self.assertIn("1 within recovery", text)

    def test_an_election_the_fault_required_is_not_counted(self):
        class Monitor:
            terms = {("chaos", 1): 42, ("chaos", 2): 7}
            lock = threading.Lock()
            term_log = []

        def run(down_at_heal):
            # chaos-2: Metadata named broker 1 at the heal, the logs show broker 2 leading term
            # 6 (broker 3 won term 7); chaos-1: term 40 at the heal, led by nobody.
            e = self.episode(80, "kill-leader", 1005.0, 1008.0, {("chaos", 2): 1},
                             (("chaos", 2), 6, 7), down_at_heal)
            f = self.episode(81, "pause", 995.0, 999.5, {("chaos", 1): 2}, (("chaos", 1), 40, 42))
            return self.leader_changes([e, f], Monitor())

        # The logs' leader of chaos-2's heal term (broker 2) was killed: the election was the
        # fault's own. Nobody led chaos-1's term 40: required as well.
        (extra, causes, required), text = run({2})
        self.assertEqual((extra, causes), ([], {}))
        self.assertEqual([r[0] for r in required], [80, 81])
        self.assertIn("REQUIRED by the fault, not counted: term 6's leader, broker 2, was down "
                      "at the heal", text)
        self.assertIn("REQUIRED by the fault, not counted: no broker led term 40", text)
        # Broker 2 alive at the heal: a stale Metadata answer alone does not excuse the change.
        (extra, causes, required), text = run(set())
        self.assertEqual([x[0] for x in extra], [80])
        self.assertEqual(causes, {"stale leader at the heal": 1})
        self.assertEqual([r[0] for r in required], [81])

    def test_the_harness_output_gives_each_extra_change_with_its_old_leader(self):
        import elections
        lines = [
            "[harness 995.0] nemesis #72 kill-random: SIGKILL broker 1 (hold 1.9s)\n",
            "[harness 1003.0] nemesis #72 kill-random: SIGKILL broker 1; recovered in 1.9s EXTRA "
            "LEADER CHANGE [(('chaos', 1), 41, 42)] (at heal: leaders {('chaos', 0): 2, "
            "('chaos', 1): 2} terms {('chaos', 0): 45, ('chaos', 1): 41}; after: leaders "
            "{('chaos', 1): 3} terms {('chaos', 1): 42})\n",
            "[harness 1004.0] nemesis #73 pause: SIGSTOP broker 2 (hold 1.0s)\n",
            "[harness 1010.0] nemesis #73 pause: SIGSTOP broker 2; recovered in 0.1s EXTRA LEADER "
            "CHANGE [(('chaos', 0), 45, 46)]; no leader elected yet at the heal for [('chaos', 1)] "
            "(old leader down, term unchanged: the election after it is the fault's failover) (at "
            "heal: leaders {('chaos', 0): 3} terms {('chaos', 0): 45}; after: leaders {} terms {})\n",
        ]
        self.assertEqual(elections.parse_harness_output(lines),
                         [(72, "kill-random", ("chaos", 1), 41, 42, 2, 996.9, 1003.0),
                          (73, "pause", ("chaos", 0), 45, 46, 3, 1005.0, 1010.0)])


class ProxyWatchdogTest(unittest.TestCase):
    def test_a_stopped_proxy_logs_its_stall_on_the_monotonic_clock(self):
        import os
        import signal
        import socket
        import subprocess
        import tempfile
        import time
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "proxy.log")
            proxy = subprocess.Popen(
                ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "proxy.py"),
                 "127.0.0.1", "1:2:%d:1" % port], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, env=dict(os.environ, RAFTMQ_PROXY_STALL_LOG=path))
            try:
                self.assertTrue(proxy.stdout.readline().startswith("ready"))
                time.sleep(0.2)
                proxy.send_signal(signal.SIGSTOP)
                time.sleep(0.6)
                proxy.send_signal(signal.SIGCONT)
                resumed = time.monotonic()
                deadline = resumed + 5
                lines = []
                while time.monotonic() < deadline and not lines:
                    time.sleep(0.1)
                    with open(path) as f:
                        # (a loaded machine may add shorter stalls of its own)
                        lines = [l for l in f if l.startswith("proxy stall") and
                                 int(l.split()[2]) >= 500]
            finally:
                proxy.stdin.write("quit\n")
                proxy.stdin.close()
                proxy.wait(5)
        self.assertTrue(lines, "no stall of 500 ms or more logged")
        words = lines[0].split()
        until = float(words[5].rstrip(")"))
        self.assertLess(abs(until - resumed), 0.5)


class SegmentCutTest(unittest.TestCase):
    """The corrupt nemeses measure their cut from the end of the entries, not of the file: a
    tail segment carries pre-written zeros (FINDINGS.md F11)."""

    def write_segment(self, path, payloads, zeros):
        with open(path, "wb") as f:
            f.write(b"MQSG" + bytes(28))  # 32-byte segment header (contents not checked)
            for n in payloads:
                header = bytearray(56)
                header[0:4] = b"\x01\x02\x03\x04"  # a header CRC: not all zeros
                header[8:12] = n.to_bytes(4, "little")
                f.write(bytes(header) + b"x" * n)
            f.write(bytes(zeros))

    def test_entries_end_before_the_zero_tail_and_cuts_stay_inside_them(self):
        import os
        import random
        import tempfile

        import cluster
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "00000000000000000001.log")
            self.write_segment(path, [100, 3000, 40], zeros=2 << 20)
            end = 32 + 3 * 56 + 100 + 3000 + 40
            self.assertEqual(cluster.segment_data_end(path), end)
            what = cluster.corrupt_segment(path, random.Random(1), truncate=True)
            size = os.path.getsize(path)
            self.assertGreaterEqual(size, end * 3 // 4, what)
            self.assertLess(size, end, what)
            # A segment without a zero tail, and one cut inside an entry.
            self.write_segment(path, [10, 20], zeros=0)
            self.assertEqual(cluster.segment_data_end(path), 32 + 2 * 56 + 30)
            with open(path, "r+b") as f:
                f.truncate(32 + 56 + 10 + 30)
            self.assertEqual(cluster.segment_data_end(path), 32 + 56 + 10)


if __name__ == "__main__":
    unittest.main()
