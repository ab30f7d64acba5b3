#!/usr/bin/python3
"""Dynamic broker addition (docs/cluster.md "Adding a broker"): a 3-broker cluster runs while a
confluent-kafka producer (acks=all) streams into a partition; broker 4 starts with
`raftmq serve --join <RPC address of broker 2>` (no --peers), appears in Metadata and
`raftmq cluster status`, and `raftmq partition move joining/0 --to 1,2,4 --wait` moves the
partition onto it under load. Broker 4 is then restarted from its data directory alone
(no --join) and rejoins. Checks that every acknowledged write is readable afterwards at its
acknowledged offset, and that bad joins (malformed address, unreachable seed, an id of the
static list) exit non-zero with a clear message.

Ports: 29180+ / 30180+ (plus RAFTMQ_TEST_PORT_OFFSET), apart from the other tests."""

import os
import subprocess
import sys
import time

import harness
from test_membership import Stream, cli, read_back, wait_more_acks
import test_membership

TOPIC = "joining"
test_membership.TOPIC = TOPIC  # the shared Stream/read_back helpers write/read this topic


class JoiningBroker(harness.Broker):
    """Broker 4: started with --join (first start) or with its data directory only."""

    def __init__(self, cluster, broker_id, seed):
        super().__init__(cluster, broker_id)
        self.seed = seed
        self.use_join = True

    def args(self):
        args = [self.cluster.binary, "serve", "--broker-id", str(self.id),
                "--kafka-port", str(self.kafka_port), "--rpc-port", str(self.rpc_port),
                "--data-dir", self.data_dir, "--cluster-id", "raftmq-integration"]
        if self.use_join:
            args += ["--join", "127.0.0.1:%d" % self.seed.rpc_port]
        return args


def serve_fails(cluster, args, expect_code, expect_text, timeout=30):
    out = subprocess.run([cluster.binary, "serve"] + args, capture_output=True, timeout=timeout)
    err = out.stderr.decode(errors="replace")
    harness.log("serve", " ".join(args), "->", out.returncode, err.strip().splitlines()[-1:])
    assert out.returncode == expect_code, (out.returncode, err[-2000:])
    assert expect_text in err, err[-2000:]


def wait_listed(bootstrap, broker_id, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            md = harness.metadata(bootstrap)
            last = sorted(md.brokers)
            if broker_id in md.brokers:
                return md
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = repr(e)
        time.sleep(0.2)
    raise AssertionError("broker %d not in Metadata: %s" % (broker_id, last))


def wait_in_sync(cluster, target, timeout=60):
    deadline = time.monotonic() + timeout
    md = None
    while time.monotonic() < deadline:
        md = harness.metadata(cluster.live_bootstrap(), TOPIC)
        if md and sorted(md[0][1]) == sorted(target) and sorted(md[0][2]) == sorted(target):
            return md
        time.sleep(0.2)
    raise AssertionError("replicas not %s and in sync: %s" % (target, md))


def check_bad_joins(cluster, spare_dir):
    rpc = cluster.broker(2).rpc_port
    base = ["--kafka-port", str(cluster.kafka_base + 9), "--rpc-port", str(cluster.rpc_base + 9),
            "--cluster-id", "raftmq-integration"]
    # Malformed address: refused by the flag parser (usage error, exit 2).
    serve_fails(cluster, ["--broker-id", "9", "--data-dir", spare_dir + "-a",
                          "--join", "127.0.0.1:notaport"] + base, 2, "join:")
    # --join with --peers: exclusive.
    serve_fails(cluster, ["--broker-id", "9", "--data-dir", spare_dir + "-b",
                          "--join", "127.0.0.1:%d" % rpc,
                          "--peers", "9@127.0.0.1:%d:%d" % (cluster.rpc_base + 9,
                                                            cluster.kafka_base + 9)] + base,
                2, "exclusive")
    # Nobody listens at the seed: exit 1 after --join-timeout-ms.
    serve_fails(cluster, ["--broker-id", "9", "--data-dir", spare_dir + "-c",
                          "--join", "127.0.0.1:%d" % (cluster.rpc_base + 8),
                          "--join-timeout-ms", "2000"] + base, 1, "cannot reach any join seed")
    # An id of the static list (a controller voter) is refused by the controller.
    serve_fails(cluster, ["--broker-id", "2", "--data-dir", spare_dir + "-d",
                          "--join", "127.0.0.1:%d" % rpc] + base, 1, "static broker")


def with_joining_broker(kafka_base, rpc_base, seed_id, body):
    """A 3-broker cluster plus broker 4 (joining through broker seed_id): body(cluster,
    newcomer); broker 4 must end with exit 0 (or already gone)."""
    with harness.Cluster(size=3, kafka_base=kafka_base, rpc_base=rpc_base) as cluster:
        newcomer = JoiningBroker(cluster, 4, seed=cluster.broker(seed_id))
        try:
            body(cluster, newcomer)
        finally:
            code = newcomer.stop()
            if code not in (0, None):
                print("---- broker 4 log tail ----\n%s" % newcomer.tail(60), flush=True)
                raise AssertionError("broker 4 exited with %s" % code)


def main():
    with_joining_broker(29180, 30180, 2, run)
    print("PASS test_broker_join")


def run(cluster, newcomer):
    check_bad_joins(cluster, os.path.join(cluster.workdir, "bad-join"))

    harness.create_topic_cli(cluster, TOPIC, 1, 3)
    md = harness.wait_topic_ready(cluster.bootstrap, TOPIC, 1, 3)
    assert sorted(md[0][1]) == [1, 2, 3], md
    stream = Stream(cluster.bootstrap)
    stream.thread.start()
    wait_more_acks(stream)

    # 1. Broker 4 joins through broker 2 while writes flow.
    started = time.monotonic()
    newcomer.start()
    deadline = time.monotonic() + 60
    while not harness.api_versions_ok(newcomer.kafka_port):
        assert newcomer.alive(), "broker 4 exited:\n" + newcomer.tail(40)
        assert time.monotonic() < deadline, "broker 4 not serving:\n" + newcomer.tail(40)
        time.sleep(0.1)
    harness.log("broker 4 serving %.1f s after its start" % (time.monotonic() - started))
    for b in cluster.brokers + [newcomer]:
        wait_listed("127.0.0.1:%d" % b.kafka_port, 4)
    status = cli(cluster, "cluster", "status")
    assert status.returncode == 0 and b"4 127.0.0.1:%d" % newcomer.kafka_port in status.stdout, \
        status.stdout
    wait_more_acks(stream)

    # 2. Move the partition onto it under load.
    target = [1, 2, 4]
    out = cli(cluster, "partition", "move", "%s/0" % TOPIC, "--to", "1,2,4", "--wait")
    assert out.returncode == 0, out.stderr
    wait_in_sync(cluster, target)
    wait_more_acks(stream)

    # 3. Restart broker 4 from its data directory alone: it rejoins, back in sync.
    assert newcomer.stop() == 0, newcomer.tail(40)
    wait_more_acks(stream)  # 1 and 2 are a majority of {1, 2, 4}
    newcomer.use_join = False
    newcomer.start()
    deadline = time.monotonic() + 60
    while not harness.api_versions_ok(newcomer.kafka_port):
        assert newcomer.alive(), "restarted broker 4 exited:\n" + newcomer.tail(40)
        assert time.monotonic() < deadline, "restarted broker 4 not serving"
        time.sleep(0.1)
    wait_in_sync(cluster, target)
    wait_more_acks(stream)
    with open(newcomer.log_path, "rb") as f:
        log_text = f.read().decode(errors="replace")
    assert log_text.count("joined the cluster; controller voters") == 1, "joined twice?"

    stream.stop_flag = True
    stream.thread.join(timeout=180)
    acked = dict(stream.acked)
    by_offset = read_back(cluster, max(acked.values()))
    lost = [(s, o) for s, o in acked.items() if by_offset.get(o) != s]
    harness.log("acked %d, read %d, lost %d, failed deliveries %d"
                % (len(acked), len(by_offset), len(lost), stream.failed))
    assert not lost, "acknowledged messages missing: %s" % lost[:10]


if __name__ == "__main__":
    sys.exit(main())
