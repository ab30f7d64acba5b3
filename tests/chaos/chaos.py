#!/usr/bin/python3
"""raftmq fault-injection ("Jepsen-style") run: a real cluster on loopback whose broker links go
through proxies, a recorded workload, seeded nemesis faults, and a checker (docs/chaos.md).

    chaos.py [--brokers 3|5] [--duration S] [--nemesis LIST] [--seed N] [...]

Prints every count, availability per fault kind, leader changes, then `N passed, M failed`;
exits 1 when a check failed, 77 when the binary has no cluster layer."""

import argparse
import os
import random
import signal
import subprocess
import sys
import time

import checker
import cluster as chaos_cluster
import nemesis as chaos_nemesis
import report
import workload

log = chaos_cluster.log


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", type=int, choices=(3, 5), default=3)
    p.add_argument("--duration", type=float, default=120,
                   help="seconds of faults (setup and the final check come on top)")
    p.add_argument("--nemesis", default="all",
                   help="comma-separated kinds or groups (%s; groups: %s)" % (
                       ", ".join(chaos_nemesis.KINDS), ", ".join(chaos_nemesis.ALIASES)))
    p.add_argument("--seed", type=int, default=None, help="default: from the clock (printed)")
    p.add_argument("--producers", type=int, default=3)
    p.add_argument("--consumers", type=int, default=2)
    p.add_argument("--rate", type=float, default=60, help="messages/s per producer")
    p.add_argument("--hold", default="2:6", help="fault hold time range in s, MIN:MAX")
    p.add_argument("--quiet", default="1:3", help="quiet time between faults in s, MIN:MAX")
    p.add_argument("--kafka-base", type=int, default=9500)
    p.add_argument("--rpc-base", type=int, default=19500)
    p.add_argument("--strict", action="store_true",
                   help="targets (p99 failover <= 1 s, no extra leader change) count as checks")
    p.add_argument("--recovery-timeout", type=float, default=60,
                   help="seconds a healed fault may take to recover (leaders elected, every "
                        "replica back in sync) before the harness repairs it by restarting")
    p.add_argument("--known-issues", default="",
                   help="checks that fail for a known, documented broker issue "
                        "(tests/chaos/FINDINGS.md), reported as XFAIL instead of FAIL: %s" %
                        ", ".join(report.KNOWN_ISSUES))
    p.add_argument("--no-proxy", action="store_true",
                   help="brokers dial each other directly (a control run without the link "
                        "proxies; the partition nemeses are skipped)")
    p.add_argument("--keep-logs", action="store_true", help="keep broker logs even on success")
    p.add_argument("--segment-bytes", type=int, default=0,
                   help="topics' segment.bytes (e.g. 16384: a roll every few seconds per "
                        "partition, so kills land around rolls); 0: the broker's default")
    o = p.parse_args(argv)
    try:
        o.kinds = chaos_nemesis.parse_kinds(o.nemesis)
        o.hold = tuple(float(x) for x in o.hold.split(":"))
        o.quiet = tuple(float(x) for x in o.quiet.split(":"))
        if len(o.hold) != 2 or len(o.quiet) != 2 or o.hold[0] > o.hold[1] or \
                o.quiet[0] > o.quiet[1] or min(o.hold + o.quiet) < 0:
            raise ValueError("--hold/--quiet must be MIN:MAX with 0 <= MIN <= MAX")
        o.known_issues = [k for k in o.known_issues.split(",") if k]
        for k in o.known_issues:
            if k not in report.KNOWN_ISSUES:
                raise ValueError("unknown --known-issues entry '%s' (known: %s)" % (
                    k, ", ".join(report.KNOWN_ISSUES)))
        if not o.kinds:
            raise ValueError("--nemesis names no fault")
        if o.duration <= 0 or o.rate <= 0 or o.rate > 2000 or not 1 <= o.producers <= 16 or \
                not 1 <= o.consumers <= 16:
            raise ValueError("--duration/--rate/--producers/--consumers out of range")
    except ValueError as e:
        p.error(str(e))
    # RAFTMQ_TEST_PORT_OFFSET (the one every real-cluster test honours, so that checkouts run
    # side by side) and RAFTMQ_CHAOS_PORT_OFFSET (two chaos runs of one checkout) both move
    # every port: Kafka, Raft RPC and the link proxies (rpc base + 10 .. + 34).
    offset = int(os.environ.get("RAFTMQ_TEST_PORT_OFFSET", "0") or 0) + \
        int(os.environ.get("RAFTMQ_CHAOS_PORT_OFFSET", "0") or 0)
    o.kafka_base += offset
    o.rpc_base += offset
    if o.seed is None:
        o.seed = int(time.time()) % 1000000
    return o


def topics_for(brokers):
    if brokers == 5:
        return [("chaos-rf3", 3, 3), ("chaos-rf5", 2, 5)]
    return [("chaos", 4, 3)]


def create_topics(cluster, topics, segment_bytes=0):
    for name, partitions, rf in topics:
        args = [cluster.binary, "topic", "create", name, "--bootstrap", cluster.bootstrap,
                "--partitions", str(partitions), "--replication-factor", str(rf)]
        if segment_bytes > 0:
            args += ["--config", "segment.bytes=%d" % segment_bytes]
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(args, capture_output=True, timeout=60)
            if out.returncode == 0 or b"already exists" in out.stderr.lower() + \
                    out.stdout.lower():
                break
            if time.monotonic() > deadline:
                raise RuntimeError("topic create %s failed: %s %s" % (name, out.stdout,
                                                                      out.stderr))
            time.sleep(0.5)
    return [(name, p) for name, partitions, _ in topics for p in range(partitions)]


def wait_for(predicate, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def replicas_in_sync(cluster, partitions):
    """Every partition has a leader and every replica is in *the leader's* ISR. (Only the
    leader knows: a follower, or a broker whose replica is not open, answers Metadata with
    every live replica as ISR, src/cluster/node_admin.cc.)"""
    try:
        return not cluster.out_of_sync(partitions)
    except Exception:  # noqa: BLE001 - retried by the caller
        return False


class Run:
    """One chaos run: setup, the fault phase, the final phase; then the report."""

    def __init__(self, o):
        self.o = o
        self.rng = random.Random(o.seed)
        self.cluster = chaos_cluster.ChaosCluster(o.brokers, o.kafka_base, o.rpc_base,
                                                  direct=o.no_proxy)
        self.outcome = report.Outcome()

    def setup(self):
        o, cluster = self.o, self.cluster
        cluster.start()
        if not chaos_cluster.binary_supports_drop_unsynced(cluster.binary):
            print("note: this raftmq does not know %s (branch storage2 not merged): the "
                  "crash-all nemesis kills every broker but un-fsynced writes survive in the "
                  "page cache" % chaos_cluster.DROP_UNSYNCED_VAR, flush=True)
        self.topics = topics_for(o.brokers)
        self.partitions = create_topics(cluster, self.topics, o.segment_bytes)
        if not wait_for(lambda: len(cluster.leaders(self.partitions)) == len(self.partitions),
                        60):
            raise RuntimeError("partitions without a leader after creation")
        self.features = workload.detect_features(cluster.brokers)
        print("features: %s producers, %s consumers" % (
            "idempotent" if self.features["idempotent"] else
            "non-idempotent (retries off; failed = indeterminate)",
            "consumer-group (commits checked)" if self.features["groups"] else
            "assign()-based (positions tracked)"), flush=True)
        run_id = "s%d-%d" % (o.seed, os.getpid())
        self.monitor = workload.Monitor(cluster, self.partitions, self.features["groups"])
        self.producers = [workload.ProducerWorker(i, cluster.bootstrap, self.partitions, o.rate,
                                                  self.features["idempotent"], run_id)
                          for i in range(o.producers)]
        self.consumers = [workload.ConsumerWorker(
            i, cluster.bootstrap, [t for t, _, _ in self.topics],
            [tp for j, tp in enumerate(self.partitions) if j % o.consumers == i],
            self.features["groups"]) for i in range(o.consumers)]
        self.monitor.thread.start()
        for w in self.producers + self.consumers:
            w.thread.start()
        if not wait_for(lambda: sum(len(p.acked) for p in self.producers) >=
                        20 * len(self.partitions), 60):
            raise RuntimeError("the workload gets no acknowledgements before any fault")
        self.nemesis = chaos_nemesis.Nemesis(cluster, self.monitor, self.partitions, self.rng,
                                             o.recovery_timeout)

    def fault_phase(self):
        o, nem = self.o, self.nemesis
        for kind in o.kinds:
            if kind in nem.skipped:
                print("skip %s: %s" % (kind, nem.skipped[kind]), flush=True)
        active = [k for k in o.kinds if k not in nem.skipped]
        episodes = self.outcome.episodes
        t_end = time.monotonic() + o.duration
        schedule = []
        while active and time.monotonic() + o.hold[1] < t_end:
            if not schedule:   # rounds of a seeded permutation: every kind comes up in turn
                schedule = list(active)
                self.rng.shuffle(schedule)
            kind = schedule.pop()
            hold = self.rng.uniform(*o.hold)
            episodes.append(nem.run(len(episodes) + 1, kind, hold))
            nem.sleep(self.rng.uniform(*o.quiet))

    def final_phase(self):
        """Heal everything, let the workload drain, read everything back, stop the brokers."""
        cluster, out = self.cluster, self.outcome
        log("faults over: healing everything")
        out.final_heal_at = time.monotonic()
        for b in cluster.brokers:
            b.resume()
        cluster.heal_links()
        for b in cluster.brokers:
            cluster.free_disk(b)
            if not b.alive():
                b.start()
        out.final_healthy = self.nemesis.wait_healthy(self.o.recovery_timeout)
        self.nemesis.sleep(5)   # writes after the final heal: availability and a complete tail
        for p in self.producers:
            p.stop_flag.set()
        for p in self.producers:
            p.thread.join(60)
        out.in_sync = wait_for(lambda: replicas_in_sync(cluster, self.partitions), 60, 1.0)
        out.final, ends, out.incomplete = workload.final_read(cluster.bootstrap,
                                                              self.partitions)
        # Let the consumers reach the end (group members: a fixed grace), then stop them.
        if self.features["groups"]:
            time.sleep(5)
        else:
            wait_for(lambda: all(c.position_of(tp) >= ends[tp] or ends[tp] == 0
                                 for c in self.consumers for tp in c.partitions), 60, 0.5)
        for c in self.consumers:
            c.stop_flag.set()
        for c in self.consumers:
            c.thread.join(30)
        self.monitor.stop_flag.set()
        self.monitor.thread.join(10)
        out.crashes = self.nemesis.crashes
        out.exit_codes = cluster.shutdown()

    def execute(self):
        o = self.o
        print("chaos: seed %d, %d brokers, nemeses %s, duration %.0fs, %d producers x %.0f "
              "msg/s, %d consumers" % (o.seed, o.brokers, ",".join(o.kinds), o.duration,
                                       o.producers, o.rate, o.consumers), flush=True)
        failed, keep_data = True, False
        try:
            self.setup()
            self.fault_phase()
            self.final_phase()
            out = self.outcome
            out.result = checker.check(self.producers, self.consumers, out.final, self.monitor,
                                       self.partitions)
            out.availability = checker.availability(out.episodes, self.producers)
            failed = report.report(o, out, self.producers, self.consumers, self.monitor,
                                   self.cluster.workdir)
            counts = out.result.counts
            keep_data = any(counts.get(k, 0) for k in ("lost", "inconsistent offsets",
                                                       "unexpected"))
            if keep_data or counts.get("duplicated", 0) or counts.get("indeterminate", 0):
                self.save_history(out.final)
            return 1 if failed else 0
        finally:
            self.cluster.cleanup(failed or o.keep_logs, keep_data)

    def save_history(self, final):
        """For a safety failure, duplicates or failed deliveries: every acknowledgement (value,
        partition, offset, send and acknowledgement times), the final read and the producers'
        id/epoch changes, delivery failures and partition routes (client-eos.txt), next to the
        kept logs."""
        keep_dir = self.cluster.workdir + "-logs"
        os.makedirs(keep_dir, exist_ok=True)
        with open(os.path.join(keep_dir, "history.txt"), "w") as f:
            for p in self.producers:
                with p.lock:
                    for value, (tp, offset, at) in p.acked.items():
                        f.write("ack %s %s/%d %s %.3f %.3f\n" % (value, tp[0], tp[1], offset,
                                                                p.sent[value][1], at))
            for tp, records in final.items():
                for offset, value in records:
                    f.write("final %s/%d %d %s\n" % (tp[0], tp[1], offset, value))
        # The producers' id/epoch changes and delivery failures, for duplicates (F9).
        with open(os.path.join(keep_dir, "client-eos.txt"), "w") as f:
            for p in self.producers:
                with p.lock:
                    events = [(at, "eos " + line) for at, _, line in p.eos_trail]
                    events += [(at, "failed %s %s" % (value, p.failed[value]))
                               for value, at in p.failed_at.items()]
                    # Where the client routed each partition (its Metadata answers and moves).
                    events += [(at, "route %s/%d %s" % (
                        tp[0], tp[1], ("broker %s named leader %d" % (a, b)) if kind == "said"
                        else "moved from broker %d to %d" % (a, b)))
                        for at, kind, tp, a, b in getattr(p, "route_trail", ())]
                for at, text in sorted(events):
                    f.write("%.3f p%d %s\n" % (at, p.index, text))
        log("history (acknowledgements and the final read) kept in", keep_dir)


def main():
    o = parse_args(sys.argv[1:])
    # SIGTERM (ctest's timeout, Ctrl-C in a pipeline) unwinds like an exception, so that the
    # brokers, the proxies and the tmpfs mounts are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return Run(o).execute()
    except RuntimeError as e:
        print("chaos: run aborted: %s" % e, flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
