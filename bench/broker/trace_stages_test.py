#!/usr/bin/python3
"""bench/broker/trace_stages.py on synthetic traces of three brokers: the stages of an entry,
the tail's breakdown and the flusher's rounds (parallel syncs paired by thread)."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace_stages as t  # noqa: E402

US = 1000  # the traces are in ns


def write(path, events):
    with open(path, "w") as f:
        for ns, st, a, b in events:
            f.write(f"{ns} {st} {a} {b}\n")


def entry(leader, followers, g, i, t0, d):
    """Events of entry (g, i) proposed at t0 on `leader`; d: stage durations in µs."""
    ready = t0 + d["ready"] * US
    l_app = ready + d["l_app"] * US
    leader += [(t0, t.PROPOSE, i, g), (ready, t.READY, g, i), (l_app, t.APPENDED, g, i),
               (l_app + d["l_dur"] * US, t.ON_DURABLE, g, i)]
    f_durs = []
    for k, f in enumerate(followers):
        fa = ready + d["f_app"][k] * US
        fd = fa + d["f_dur"][k] * US
        f += [(fa, t.APPENDED, g, i), (fd, t.ON_DURABLE, g, i)]
        f_durs.append(fd)
    majority = sorted([l_app + d["l_dur"] * US] + f_durs)[1]
    leader.append((majority + d["commit"] * US, t.COMMIT, g, i))


class StagesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.prefix = os.path.join(self.dir.name, "tr")

    def tearDown(self):
        self.dir.cleanup()

    def test_stages_of_one_entry(self):
        b1, b2, b3 = [], [], []
        entry(b1, [b2, b3], 7, 1, 1_000_000,
              {"ready": 5, "l_app": 2, "l_dur": 100, "f_app": [30, 50], "f_dur": [20, 10],
               "commit": 4})
        for n, ev in ((1, b1), (2, b2), (3, b3)):
            write(f"{self.prefix}.{n}", ev)
        es = t.entries(t.load(self.prefix))
        self.assertEqual(len(es), 1)
        e = es[0]
        self.assertEqual(e["propose->ready"], 5 * US)
        self.assertEqual(e["ready->L_appended"], 2 * US)
        self.assertEqual(e["ready->F_appended"], 30 * US)       # the first follower to append
        self.assertEqual(e["F_appended->F_durable"], 20 * US)
        self.assertEqual(e["L_appended->L_durable"], 100 * US)
        # Durable: leader at 5+2+100=107, followers at 5+30+20=55 and 5+50+10=65 -> majority 65.
        self.assertEqual(e["majority->commit"], 4 * US)
        self.assertEqual(e["total"], 69 * US)
        self.assertFalse(e["leader_completed_majority"])  # two followers were first

    def test_later_entries_match_later_events_and_the_tail_is_found(self):
        b1, b2, b3 = [], [], []
        for i in range(1, 101):
            slow = i == 100
            entry(b1, [b2, b3], 3, i, i * 10_000_000,
                  {"ready": 1, "l_app": 1, "l_dur": 50, "f_app": [900 if slow else 10, 950 if slow else 12],
                   "f_dur": [5, 5], "commit": 2})
        for n, ev in ((1, b1), (2, b2), (3, b3)):
            write(f"{self.prefix}.{n}", ev)
        es = t.entries(t.load(self.prefix))
        self.assertEqual(len(es), 100)
        totals = sorted(e["total"] for e in es)
        self.assertEqual(totals[0], 1 * US + 12 * US + 5 * US + 2 * US)  # second follower durable
        # The slow one: leader durable at 52 µs, followers at 906 and 956: majority at 906.
        self.assertEqual(totals[-1], 1 * US + 900 * US + 5 * US + 2 * US)
        slow = max(es, key=lambda e: e["total"])
        self.assertFalse(slow["leader_completed_majority"])
        self.assertEqual(slow["ready->F_appended"], 900 * US)
        self.assertEqual(t.pct([e["total"] for e in es], 99), totals[-1])

    def test_the_leader_completes_the_majority_when_a_follower_is_slow(self):
        b1, b2, b3 = [], [], []
        entry(b1, [b2, b3], 5, 1, 1_000_000,
              {"ready": 1, "l_app": 1, "l_dur": 30, "f_app": [5, 500], "f_dur": [5, 5],
               "commit": 3})
        for n, ev in ((1, b1), (2, b2), (3, b3)):
            write(f"{self.prefix}.{n}", ev)
        (e,) = t.entries(t.load(self.prefix))
        self.assertTrue(e["leader_completed_majority"])  # leader at 32, followers at 11, 506
        self.assertEqual(e["total"], 35 * US)

    def test_an_entry_without_its_commit_is_left_out(self):
        b1, b2, b3 = [], [], []
        entry(b1, [b2, b3], 3, 1, 1_000_000,
              {"ready": 1, "l_app": 1, "l_dur": 5, "f_app": [3, 4], "f_dur": [5, 5], "commit": 2})
        b1 = [e for e in b1 if e[1] != t.COMMIT]
        for n, ev in ((1, b1), (2, b2), (3, b3)):
            write(f"{self.prefix}.{n}", ev)
        self.assertEqual(t.entries(t.load(self.prefix)), [])

    def test_flusher_rounds_pair_parallel_syncs_by_thread(self):
        ev = [(0, t.FLUSHER_WAKE, 0, 0),
              (10 * US, t.SYNC_START, 0, 0), (12 * US, t.SYNC_START, 1, 0),
              (200 * US, t.SYNC_END, 1, 0), (300 * US, t.SYNC_END, 0, 0),
              (1000 * US, t.FLUSHER_WAKE, 0, 0),
              (1010 * US, t.SYNC_START, 0, 0), (1110 * US, t.SYNC_END, 0, 0),
              (5000 * US, t.FLUSHER_WAKE, 0, 0)]
        spr, sync_us, round_us = t.flusher_rounds(ev)
        self.assertEqual(spr, [2, 1])
        self.assertEqual(sorted(sync_us), [100.0, 188.0, 290.0])
        self.assertEqual(round_us, [300.0, 110.0])


if __name__ == "__main__":
    unittest.main()
