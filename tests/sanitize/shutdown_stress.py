#!/usr/bin/python3
"""SIGTERM shutdown stress of real 3-broker raftmq clusters (docs/testing.md "Sanitizers"),
meant for the ASan/UBSan or TSan raftmq binary (RAFTMQ_BIN; scripts/sanitize address shutdown).

Every round picks one scenario, each ending with SIGTERMed brokers that must exit 0 within
20 s with no sanitizer report, no crash signal and no assertion in their log:
  plain      SIGTERM one broker after kcat produced 300 messages, restart it
  streaming  SIGTERM one broker while a kcat producer and a kcat consumer stream
  transfer   SIGTERM a partition leader (it hands leadership over, Node::shutdown) and, 0-300 ms
             later, the broker it most likely hands over to: a transfer in flight
  second     SIGTERM, then a second SIGTERM 0-200 ms later (the immediate-stop path)
  move       `raftmq partition move` of a partition away from its leader, SIGTERM that leader
             at once (leadership leaving through a configuration change)
  early      SIGTERM a broker 0-1 s after its first log line (opening its logs, catching up,
             Kafka listener not yet open), then start it again
After the rounds every broker is SIGTERMed at once (the whole-cluster stop). Between rounds the
stopped brokers restart on their data and the cluster must be ready again, and finally every
message acknowledged to kcat must be consumable (nothing lost through the shutdowns).
Bounded: --rounds rounds, and no new round after --max-seconds."""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

KCAT = "/usr/bin/kcat"
TOPIC = "shutdown-stress"
# A report of any sanitizer, a fatal signal seen by the runtime, or one of our assertions.
BAD = re.compile(rb"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                 rb"WARNING: ThreadSanitizer|ThreadSanitizer:|SEGV|Segmentation fault|"
                 rb"assertion failed|MQ_ASSERT|terminate called)")


class Checker:
    """Reads each broker's log from where the last check stopped."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.offsets = {b.id: 0 for b in cluster.brokers}
        self.findings = []

    def scan(self, broker, context):
        try:
            with open(broker.log_path, "rb") as f:
                f.seek(self.offsets[broker.id])
                data = f.read()
        except OSError:
            return
        self.offsets[broker.id] += len(data)
        for m in BAD.finditer(data):
            start = data.rfind(b"\n", 0, max(0, m.start() - 2000)) + 1
            excerpt = data[start:m.start() + 6000].decode(errors="replace")
            self.findings.append("broker %d (%s):\n%s" % (broker.id, context, excerpt))
            harness.log("FINDING in broker", broker.id, context)
            break


def wait_exit(broker, checker, context, timeout=20):
    code = None
    try:
        code = broker.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        broker.proc.kill()
        broker.proc.wait(timeout=10)
        checker.findings.append("broker %d (%s): no exit %d s after SIGTERM" %
                                (broker.id, context, timeout))
    if code not in (0, None):
        checker.findings.append("broker %d (%s): exit code %s" % (broker.id, context, code))
        harness.log("broker", broker.id, "exit code", code, context)
    checker.scan(broker, context)
    return code


def sigterm(broker):
    if broker.alive():
        broker.proc.send_signal(signal.SIGTERM)


def leaders(cluster):
    try:
        md = harness.metadata(cluster.live_bootstrap(), TOPIC, timeout=5)
    except Exception:  # noqa: BLE001 - a broker just stopped; the caller picks at random
        return {}
    return {p: leader for p, (leader, _, _) in md.items() if leader > 0}


class Acked:
    """Messages kcat reported as delivered (-D delivery reports on stdout would need a
    custom build; kcat -P exits 0 only when every message was acknowledged, so a batch
    counts when kcat exits 0)."""

    def __init__(self):
        self.values = set()
        self.lock = threading.Lock()

    def produce(self, cluster, values, timeout=60):
        data = "".join(v + "\n" for v in values).encode()
        out = subprocess.run([KCAT, "-b", cluster.live_bootstrap(), "-P", "-t", TOPIC,
                              "-X", "acks=all", "-X", "message.timeout.ms=30000"],
                             input=data, capture_output=True, timeout=timeout)
        if out.returncode == 0:
            with self.lock:
                self.values.update(values)
        return out.returncode == 0


class Stream:
    """A kcat producer fed in small batches and a kcat consumer tailing the topic."""

    def __init__(self, cluster, acked, tag):
        self.cluster, self.acked, self.tag = cluster, acked, tag
        self.stop_flag = threading.Event()
        self.consumer = subprocess.Popen(
            [KCAT, "-b", cluster.live_bootstrap(), "-C", "-t", TOPIC, "-o", "beginning", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        while not self.stop_flag.is_set() and n < 200:
            batch = ["%s-%d-%d" % (self.tag, n, i) for i in range(50)]
            try:
                self.acked.produce(self.cluster, batch, timeout=40)
            except subprocess.TimeoutExpired:
                pass
            n += 1

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=60)
        self.consumer.terminate()
        try:
            self.consumer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.consumer.kill()


def restart(cluster, stopped):
    for b in stopped:
        b.start()
    cluster.wait_ready(timeout=120)
    harness.wait_topic_ready(cluster.bootstrap, TOPIC, 3, timeout=120)


def scenario(name, cluster, checker, acked, rng, round_no):
    brokers = cluster.brokers
    ctx = "round %d %s" % (round_no, name)
    harness.log("----", ctx)
    acked.produce(cluster, ["%s-%d" % (ctx.replace(" ", "-"), i) for i in range(300)])
    if name == "plain":
        victim = rng.choice(brokers)
        sigterm(victim)
        wait_exit(victim, checker, ctx)
        return [victim]
    if name == "streaming":
        stream = Stream(cluster, acked, ctx.replace(" ", "-"))
        time.sleep(rng.uniform(0.5, 2.0))
        victim = rng.choice(brokers)
        sigterm(victim)
        wait_exit(victim, checker, ctx)
        time.sleep(1.0)
        stream.stop()
        return [victim]
    if name == "transfer":
        lead = leaders(cluster)
        first = cluster.broker(lead[0]) if 0 in lead else rng.choice(brokers)
        others = [b for b in brokers if b is not first]
        second = rng.choice(others)
        stream = Stream(cluster, acked, ctx.replace(" ", "-"))
        time.sleep(0.3)
        sigterm(first)
        time.sleep(rng.uniform(0.0, 0.3))
        sigterm(second)
        wait_exit(first, checker, ctx)
        wait_exit(second, checker, ctx)
        stream.stop()
        return [first, second]
    if name == "second":
        victim = rng.choice(brokers)
        sigterm(victim)
        time.sleep(rng.uniform(0.0, 0.2))
        sigterm(victim)
        wait_exit(victim, checker, ctx)
        return [victim]
    if name == "move":
        lead = leaders(cluster)
        partition = rng.choice(sorted(lead)) if lead else 0
        leader = lead.get(partition, rng.choice(brokers).id)
        replicas = [b.id for b in brokers if b.id != leader]
        subprocess.run([cluster.binary, "partition", "move", "%s/%d" % (TOPIC, partition),
                        "--to", ",".join(map(str, replicas)), "--bootstrap",
                        cluster.live_bootstrap()], capture_output=True, timeout=60)
        victim = cluster.broker(leader)
        sigterm(victim)
        wait_exit(victim, checker, ctx)
        return [victim]
    if name == "early":
        victim = rng.choice(brokers)
        sigterm(victim)
        wait_exit(victim, checker, ctx + " (first stop)")
        size = os.path.getsize(victim.log_path)
        victim.start()
        # Once the process wrote its first line it is in main() (an ASan binary needs ~0.4 s
        # on a busy machine to get there; a signal before main() ends the process by its
        # default action, which no code of ours can change).
        deadline = time.monotonic() + 10
        while os.path.getsize(victim.log_path) == size and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.0))
        sigterm(victim)
        wait_exit(victim, checker, ctx)
        return [victim]
    raise ValueError(name)


def consume_all(cluster):
    out = subprocess.run([KCAT, "-b", cluster.bootstrap, "-C", "-t", TOPIC, "-o", "beginning",
                          "-e", "-q"], capture_output=True, timeout=180)
    return set(out.stdout.decode(errors="replace").splitlines())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-seconds", type=int, default=900)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--scenarios", default="plain,streaming,transfer,second,move,early")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = args.scenarios.split(",")
    harness.log("seed", args.seed, "binary", harness.find_binary())
    started = time.monotonic()
    with harness.Cluster() as cluster:
        checker = Checker(cluster)
        harness.create_topic_cli(cluster, TOPIC, 3, 3)
        acked = Acked()
        done = 0
        for r in range(args.rounds):
            if time.monotonic() - started > args.max_seconds:
                harness.log("time budget spent after", r, "rounds")
                break
            stopped = scenario(names[r % len(names)], cluster, checker, acked, rng, r)
            restart(cluster, stopped)
            done += 1
        got = consume_all(cluster)
        missing = acked.values - got
        harness.log("acknowledged", len(acked.values), "consumed", len(got),
                    "missing", len(missing))
        if missing:
            checker.findings.append("%d acknowledged messages not consumed, e.g. %s" %
                                    (len(missing), sorted(missing)[:5]))
        # The whole-cluster stop: every broker at once.
        for b in cluster.brokers:
            sigterm(b)
        for b in cluster.brokers:
            wait_exit(b, checker, "all at once")
    if checker.findings:
        for f in checker.findings:
            print("==== FINDING ====\n" + f, flush=True)
        print("FAIL shutdown_stress: %d findings in %d rounds (seed %d)" %
              (len(checker.findings), done, args.seed))
        return 1
    print("PASS shutdown_stress: %d rounds, seed %d, %.0f s" %
          (done, args.seed, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
