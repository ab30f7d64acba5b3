#!/usr/bin/python3
"""Tests of the scripts/bench instrument itself (ctest: bench_harness_test): the ratio
arithmetic and the exact `ratio NAME=X` lines, results files, failure reporting, the /proc
readings, and the machine probe's JSON. Usage: harness_test.py BIN_DIR"""
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402

BIN = sys.argv.pop(1) if len(sys.argv) > 1 else "build/bin"


def lat(p50, p99, p999=0):
    return {"p50_us": p50, "p99_us": p99, "p999_us": p999, "cdf_us": [p50] * 100 + [p999]}


def results():
    return {
        "kind": "quick", "started": "2026-01-01T00:00:00Z", "elapsed_s": 1.0,
        "machine": {"nproc": 2, "loadavg_start": 0.5, "disk_write_mb_s": 900.0,
                    "loopback_mb_s": 3000.0, "ceiling_mb_s": 300.0, "floor_us": 300.0,
                    "fsync": {"syncs_per_s": 4000, "p50_us": 200, "p99_us": 400},
                    "rtt": {"p50_us": 50, "p99_us": 90}},
        "raftmq": {"system": "raftmq",
                   "produce_1KiB": {"msgs_per_s": 100000.0, "mb_per_s": 102.4,
                                    "cpu_us_per_msg": 4.0},
                   "produce_100B": {"msgs_per_s": 300000.0, "mb_per_s": 30.0,
                                    "cpu_us_per_msg": 1.0, "in_flight_at_exit": 1234},
                   "consume": {"msgs_per_s": 400000.0, "mb_per_s": 409.6},
                   "latency": lat(450.0, 1000.0, 2000.0),
                   "e2e_light": {"rate": 200, "sent": 5, "received": 4, **lat(2000.0, 3000.0)},
                   "e2e": [{"load_pct": 50, "rate": 50000, "sent": 12, "received": 10,
                            "acked_p50_us": 2900.0, "acked_p99_us": 4900.0,
                            "send_lag_p99_us": 100.0,
                            "rdkafka": {"rtt_p50_us": 2500.0, "rtt_p99_us": 4000,
                                        "waitresp_max": 7, "batch_msgs_avg": 4.25},
                            "broker_cpu_us_per_msg": 12.5, "loadgen_cpu_us_per_msg": 9.0,
                            "broker_runq_wait_pct": {"a": 20.0, "b": 61.0},
                            "cpu_demand_pct": 53.8,
                            **lat(3000.0, 5000.0, 9000.0)},
                           {"load_pct": 75, "failed": "boom", "rate": 75000}]},
        "nats": {"system": "nats", "produce_1KiB": {"msgs_per_s": 20000.0, "mb_per_s": 20.5,
                                                    "cpu_us_per_msg": 50.0},
                 "produce_100B": {"failed": "nats-bench publish timed out"},
                 "consume": {"msgs_per_s": 100000.0, "mb_per_s": 102.4},
                 "latency": lat(500.0, 2000.0)},
        "rabbitmq": {"system": "rabbitmq", "skipped": "rabbitmq-server is not installed"},
    }


class RatioTest(unittest.TestCase):
    def test_values_and_targets(self):
        got = {n: (v, ok) for n, v, _, ok in report.ratios(results())}
        self.assertAlmostEqual(got["produce_1KiB raftmq/nats"][0], 5.0)
        self.assertTrue(got["produce_1KiB raftmq/nats"][1])
        self.assertIsNone(got["produce_1KiB raftmq/rabbitmq"][0])  # peer skipped: n/a
        self.assertIsNone(got["produce_100B raftmq/nats"][0])      # peer phase failed: n/a
        self.assertAlmostEqual(got["cpu_per_msg nats/raftmq"][0], 12.5)
        self.assertTrue(got["cpu_per_msg nats/raftmq"][1])
        self.assertAlmostEqual(got["produce_p50 raftmq/floor"][0], 1.5)
        self.assertTrue(got["produce_p50 raftmq/floor"][1])        # <= 1.5 is met
        self.assertAlmostEqual(got["produce_p99 raftmq/nats"][0], 0.5)
        self.assertAlmostEqual(got["consume raftmq/nats"][0], 4.0)
        self.assertFalse(got["consume raftmq/nats"][1])
        self.assertAlmostEqual(got["produce_1KiB raftmq/ceiling"][0], 102.4 / 300)
        self.assertFalse(got["produce_1KiB raftmq/ceiling"][1])
        self.assertAlmostEqual(got["e2e_p99_at_50pct raftmq/10ms"][0], 0.5)

    def test_floor_uses_the_fdatasync_probed_next_to_the_latency_run(self):
        r = results()
        r["raftmq"]["fsync_adjacent"] = {"p50_us": 400.0}
        got = {n: v for n, v, _, _ in report.ratios(r)}
        self.assertAlmostEqual(got["produce_p50 raftmq/floor"], 450.0 / (2 * 50 + 400))

    def test_shared_disk_floor_is_information_from_the_majority_probe(self):
        r = results()
        got = {n: (v, ok) for n, v, _, ok in report.ratios(r)}
        self.assertEqual(got["produce_p50 raftmq/shared_disk_floor"], (None, None))  # no probe
        r["raftmq"]["fsync_majority"] = {"p50_us": 350.0, "any_sync_p50_us": 300.0}
        got = {n: (v, ok) for n, v, _, ok in report.ratios(r)}
        # latency p50 450 µs against 2 round trips (2 x 50) + 2 of 3 syncs (350): 1.0, no target
        self.assertAlmostEqual(got["produce_p50 raftmq/shared_disk_floor"][0], 450.0 / 450.0)
        self.assertIsNone(got["produce_p50 raftmq/shared_disk_floor"][1])
        rows = dict((row[0], row[1]) for row in report.machine_rows(r))
        self.assertEqual(rows["shared-disk floor: 2 round trips + 2 of 3 fdatasyncs"], "450 µs")

    def test_emit_prints_exact_ratio_lines_and_writes_files(self):
        with tempfile.TemporaryDirectory() as d:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                report.emit(results(), d)
            lines = out.getvalue().splitlines()
            for want in ("ratio produce_1KiB raftmq/nats=5.00",
                         "ratio produce_1KiB raftmq/rabbitmq=n/a",
                         "ratio cpu_per_msg nats/raftmq=12.50",
                         "ratio produce_p50 raftmq/floor=1.50"):
                self.assertIn(want, lines)
            self.assertTrue(lines[-1].startswith("ratio "))  # the ratios come last
            text = out.getvalue()
            self.assertIn("RabbitMQ: skipped: rabbitmq-server is not installed", text)
            self.assertIn("produce_100B FAILED: nats-bench publish timed out", text)
            self.assertIn("e2e at 75% of max FAILED: boom", text)
            self.assertIn("e2e at 200 msgs/s: 1 of 5 messages not consumed", text)
            self.assertIn("end-to-end p50 / p99 / p99.9 µs at 200 msgs/s (light load)", text)
            self.assertIn("produce_100B: 1,234 messages still unacknowledged", text)
            self.assertIn("e2e at 50% of max: 2 of 12 messages not consumed", text)
            self.assertIn("; Produce rtt p50/p99 2,500 / 4,000, ≤7 in flight, 4.2 msgs/batch"
                          "; CPU µs/msg brokers 12.5, loadgen 9.0; brokers' run-queue wait 61% "
                          "max; the load needs 54% of the machine's CPUs", text)
            names = sorted(os.listdir(d))
            # The chart needs python3-matplotlib (scripts/deps --bench); scripts/test does not
            # install it, and the report says "no chart" without it.
            try:
                import matplotlib  # noqa: F401
                chart = ["png"]
            except ImportError:
                chart = []
            self.assertEqual([n.rsplit(".", 1)[1] for n in names], ["json", "md"] + chart)
            with open(os.path.join(d, names[0])) as f:
                self.assertEqual(json.load(f)["ratios"]["produce_1KiB raftmq/nats"], 5.0)


class ProcTest(unittest.TestCase):
    def test_cpu_and_memory_of_a_child_tree(self):
        # A shell whose live child burns 0.4 s of CPU and then sleeps: the shell itself uses
        # almost none, so the reading must come from the live descendant.
        import time
        p = subprocess.Popen(["/bin/sh", "-c", "/usr/bin/python3 -c 'import time\n"
                              "while time.process_time() < 0.4: pass\ntime.sleep(30)'; true"])
        try:
            deadline = time.time() + 30
            cpu = 0.0
            while time.time() < deadline and cpu < 0.35:
                time.sleep(0.2)
                cpu = procs.cpu_seconds(p.pid)
            self.assertGreaterEqual(cpu, 0.35)
            self.assertLess(cpu, 5.0)
            self.assertGreater(procs.mem_kib(p.pid, "VmHWM"), 1000)  # python's, not only sh's
            self.assertEqual(len(procs.descendants(p.pid)), 1)
        finally:
            procs.stop_server(p, grace=2)
        self.assertIsNotNone(p.poll())
        self.assertEqual(procs.descendants(p.pid), [])

    def test_client_failure_is_reported_with_its_stderr(self):
        with self.assertRaises(RuntimeError) as e:
            procs.run_client([os.path.join(BIN, "raftmq-bench-machine"), "bogus"], 10)
        self.assertIn("unknown mode", str(e.exception))


class MachineProbeTest(unittest.TestCase):
    def test_fsync_and_rtt(self):
        with tempfile.TemporaryDirectory() as d:
            f = procs.run_client([os.path.join(BIN, "raftmq-bench-machine"), "fsync", "--dir", d,
                                  "--seconds", "1"], 30)
            self.assertGreater(f["syncs_per_s"], 0)
            self.assertGreater(f["p50_us"], 0)
            self.assertEqual(os.listdir(d), [])  # its probe file is removed
        r = procs.run_client([os.path.join(BIN, "raftmq-bench-machine"), "rtt", "--seconds", "1"],
                             30)
        self.assertGreater(r["samples"], 100)
        self.assertLessEqual(r["p50_us"], r["p99_us"])
        self.assertEqual(len(r["cdf_us"]), 101)

    def test_fsync_majority(self):
        with tempfile.TemporaryDirectory() as d:
            f = procs.run_client([os.path.join(BIN, "raftmq-bench-machine"), "fsync-majority",
                                  "--dir", d, "--seconds", "1", "--replicas", "3"], 30)
            self.assertEqual((f["replicas"], f["majority"]), (3, 2))
            self.assertGreater(f["rounds"], 0)
            self.assertEqual(f["samples"], f["rounds"])  # one majority time per round
            self.assertGreater(f["p50_us"], 0)
            self.assertLessEqual(f["p50_us"], f["p99_us"])
            self.assertGreater(f["any_sync_p50_us"], 0)
            self.assertEqual(os.listdir(d), [])  # its files are removed

    def test_bad_flag_is_an_error(self):
        r = subprocess.run([os.path.join(BIN, "raftmq-bench-machine"), "rtt", "--seconds", "x"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--seconds must be an integer", r.stderr)


def rdkafka_report(in_window, brokers, batchcnt=None):
    """One line of loadgen e2e --stats-file: librdkafka's statistics JSON, reduced to the
    fields the summary reads (the real one has many more)."""
    stats = {"name": "rdkafka#producer-1", "brokers": {}, "topics": {}}
    for name, (nodeid, waitresp, hists) in brokers.items():
        b = {"nodeid": nodeid, "waitresp_cnt": waitresp}
        for k, (cnt, p50, p99) in hists.items():
            b[k] = {"cnt": cnt, "p50": p50, "p99": p99, "avg": p50}
        stats["brokers"][name] = b
    if batchcnt:
        stats["topics"]["e2e"] = {"batchcnt": {"cnt": batchcnt[0], "avg": batchcnt[1]}}
    return json.dumps({"t_ms": 1000, "in_window": in_window, "stats": stats})


class RdkafkaStatsTest(unittest.TestCase):
    def test_summary_of_the_reports_inside_the_window(self):
        lines = [
            # warm-up: ignored, whatever it says
            rdkafka_report(False, {"a/1": (1, 900, {"rtt": (10, 99999, 99999)})}, (5, 100)),
            rdkafka_report(True, {
                "a/1": (1, 3, {"rtt": (100, 1000, 5000), "int_latency": (100, 800, 1500),
                               "outbuf_latency": (100, 10, 50)}),
                "b/2": (2, 7, {"rtt": (300, 2000, 9000), "int_latency": (0, 0, 0)}),
                "a/bootstrap": (-1, 50, {"rtt": (1000, 1, 1)}),  # placeholder: ignored
            }, (10, 4.0)),
            rdkafka_report(True, {"a/1": (1, 5, {"rtt": (100, 3000, 7000)})}, (30, 8.0)),
            '{"t_ms": 5000, "in_window": true, "stats": {"brok',  # cut short at exit
        ]
        s = harness.summarise_rdkafka_stats(lines)
        self.assertEqual(s["intervals"], 2)
        self.assertEqual(s["waitresp_max"], 7)
        # cnt-weighted mean of the p50s: (100*1000 + 300*2000 + 100*3000) / 500
        self.assertAlmostEqual(s["rtt_p50_us"], 2000.0)
        self.assertEqual(s["rtt_p99_us"], 9000)
        self.assertAlmostEqual(s["int_latency_p50_us"], 800.0)  # the empty histogram not counted
        self.assertEqual(s["int_latency_p99_us"], 1500)
        self.assertAlmostEqual(s["outbuf_latency_p50_us"], 10.0)
        self.assertAlmostEqual(s["batch_msgs_avg"], (10 * 4.0 + 30 * 8.0) / 40)

    def test_no_report_in_the_window(self):
        s = harness.summarise_rdkafka_stats(
            [rdkafka_report(False, {"a/1": (1, 3, {"rtt": (1, 2, 3)})})])
        self.assertEqual(s["intervals"], 0)
        self.assertIsNone(s["rtt_p50_us"])
        self.assertIsNone(s["batch_msgs_avg"])

    def test_loadgen_stats_flags_go_together(self):
        r = subprocess.run([os.path.join(BIN, "raftmq-loadgen"), "e2e", "--stats-ms", "1000"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--stats-ms and --stats-file go together", r.stderr)

    def test_e2e_note_says_how_often_senders_wake(self):
        r = results()
        r["raftmq"]["e2e"][0].update(linger_ms=1, fetch_wait_max_ms=100, send_quantum_us=200)
        line = [n for n in report.notes(r) if "e2e client settings" in n]
        self.assertEqual(len(line), 1)
        self.assertIn("linger.ms=1", line[0])
        self.assertIn("each sender wakes at most every 200 µs", line[0])
        del r["raftmq"]["e2e"][0]["send_quantum_us"]  # an older load generator's results
        line = [n for n in report.notes(r) if "e2e client settings" in n]
        self.assertNotIn("wakes", line[0])

    def test_e2e_note_names_each_linger_when_rows_differ(self):
        r = results()
        r["raftmq"]["e2e"][0].update(linger_ms=5, fetch_wait_max_ms=100)
        r["raftmq"]["e2e_light"].update(linger_ms=1, fetch_wait_max_ms=100)
        line = [n for n in report.notes(r) if "e2e client settings" in n]
        self.assertEqual(len(line), 1)
        self.assertIn("linger.ms=5 (50% of max); 1 (200 msgs/s)", line[0])

    def test_information_rows_at_other_lingers(self):
        r = results()
        r["raftmq"]["e2e_linger1"] = {"rate": 50000, "linger_ms": 1, "sent": 9, "received": 9,
                                      **lat(7000.0, 90000.0)}
        r["raftmq"]["e2e_linger5"] = {"rate": 40000, "sent": 9, "received": 9,  # older results
                                      **lat(6000.0, 11000.0)}
        rows = [row[0] for row in report.table_rows(r)]
        self.assertIn("end-to-end p50 / p99 / p99.9 µs at 50% (50,000 msgs/s), producers "
                      "linger.ms=1 (information)", rows)
        self.assertIn("end-to-end p50 / p99 / p99.9 µs at 50% (40,000 msgs/s), producers "
                      "linger.ms=5 (information)", rows)
        # The target is the 50% load row's, not an information row's.
        got = {n: v for n, v, _, _ in report.ratios(r)}
        self.assertEqual(got["e2e_p99_at_50pct raftmq/10ms"], 0.5)

    def test_a_failed_topic_deletion_is_in_the_notes(self):
        r = results()
        r["raftmq"]["topic_delete_errors"] = ["t1k: timed out"]
        notes = [n for n in report.notes(r) if "deleting a throughput topic" in n]
        self.assertEqual(len(notes), 1)
        self.assertIn("t1k: timed out", notes[0])

    def test_free_space_wait_returns_once_nothing_is_freed(self):
        with tempfile.TemporaryDirectory() as d:
            started = time.time()
            procs.wait_free_space_settles(d, 10)
            self.assertLess(time.time() - started, 8)

    def test_loadgen_send_quantum_flag_is_bounded(self):
        r = subprocess.run([os.path.join(BIN, "raftmq-loadgen"), "e2e", "--send-quantum-us",
                            "-1"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--send-quantum-us must be an integer in [0", r.stderr)

    def test_loadgen_producer_queue_flag_is_bounded(self):
        r = subprocess.run([os.path.join(BIN, "raftmq-loadgen"), "produce", "--queue-kbytes",
                            "10"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--queue-kbytes must be an integer in [64", r.stderr)

    def test_loadgen_extra_client_settings_are_checked(self):
        # RAFTMQ_LOADGEN_RDKAFKA (experiments): each item must be key=value and a setting
        # librdkafka knows; the clients are configured before any connection is attempted.
        lg = os.path.join(BIN, "raftmq-loadgen")
        argv = [lg, "latency", "--bootstrap", "127.0.0.1:1", "--seconds", "1"]
        for value, said in (("linger.ms", "key=value expected: linger.ms"),
                            ("no.such.setting=1", "librdkafka config no.such.setting")):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, RAFTMQ_LOADGEN_RDKAFKA=value))
            self.assertEqual(r.returncode, 2, value)
            self.assertIn(said, r.stderr)



class ConsumerCpuTest(unittest.TestCase):
    def test_client_cpu_per_message(self):
        # A "client" that burns about 0.3 s of CPU and reports 100,000 messages: the client's
        # CPU per message comes from its own rusage (3 µs, not the servers' 0).
        client = ["/usr/bin/python3", "-c", "import time\nwhile time.process_time() < 0.3: pass\n"
                  "print('{\"mode\":\"consume\",\"msgs\":100000,\"msgs_per_s\":1.0}')"]
        idle = subprocess.Popen(["/bin/sleep", "30"])
        try:
            r = harness.run_consumer(client, 30, {"idle": idle.pid})
        finally:
            idle.kill()
            idle.wait()
        self.assertEqual(r["msgs"], 100000)
        self.assertGreaterEqual(r["client_cpu_s"], 0.29)
        self.assertLess(r["client_cpu_s"], 5.0)
        self.assertAlmostEqual(r["client_cpu_us_per_msg"], r["client_cpu_s"] / 100000 * 1e6,
                               places=1)
        self.assertLess(r["cpu_us_per_msg"], 0.5)  # the sleeping "server"
        self.assertIn("loadavg", r)

    def test_loadgen_consume_flags(self):
        r = subprocess.run([os.path.join(BIN, "raftmq-loadgen"), "consume", "--idle-ms", "5"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--idle-ms must be an integer in [100", r.stderr)


class SchedWatchTest(unittest.TestCase):
    def test_cpu_of_a_busy_process(self):
        p = subprocess.Popen(["/usr/bin/python3", "-c", "import time\n"
                              "t = time.time()\nwhile time.time() - t < 3: pass"])
        try:
            with harness.SchedWatch({"busy": p.pid}) as w:
                import time
                time.sleep(0.5)
            self.assertGreater(w.cpu_pct["busy"], 5.0)   # it spins: on CPU or waiting for it
            self.assertLessEqual(w.cpu_pct["busy"], 110.0)
            self.assertGreaterEqual(w.wait_pct["busy"], 0.0)
        finally:
            p.kill()
            p.wait()
        self.assertEqual(harness.sched_ns(p.pid), (0, 0))  # gone: nothing to read


if __name__ == "__main__":
    unittest.main()
