#!/usr/bin/python3
"""Partition moves and broker decommission under load, through the CLI (raftmq partition move,
raftmq broker decommission: Kafka AlterPartitionReassignments) on a 4-broker cluster, while a
confluent-kafka producer (default settings, acks=all) streams into the partition. Checks that
the move finishes (replicas = target, all in sync), that writes keep being acknowledged, and
that every acknowledged write is readable afterwards at its acknowledged offset.

Ports: 29160+ / 30160+ (plus RAFTMQ_TEST_PORT_OFFSET), apart from the other tests."""

import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import harness

TOPIC = "moving"


class Stream:
    def __init__(self, bootstrap):
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "message.timeout.ms": 120000})
        self.acked = {}
        self.failed = 0
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.failed += 1
            else:
                self.acked[int(msg.value().decode())] = msg.offset()

    def run(self):
        seq = 0
        while not self.stop_flag:
            if len(self.producer) > 1000:
                self.producer.poll(0.01)
                continue
            self.producer.produce(TOPIC, value=str(seq).encode(), on_delivery=self.on_delivery)
            seq += 1
            self.producer.poll(0)
            if seq % 50 == 0:
                time.sleep(0.005)
        self.producer.flush(120)

    def count(self):
        with self.lock:
            return len(self.acked)


def cli(cluster, *args, timeout=180):
    cmd = [cluster.binary] + list(args) + ["--bootstrap", cluster.live_bootstrap()]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    harness.log("$", " ".join(args), "->", out.returncode, out.stdout.decode().strip(),
                out.stderr.decode().strip()[-300:])
    return out


def wait_more_acks(stream, n=300, timeout=60):
    start = stream.count()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stream.count() >= start + n:
            return
        time.sleep(0.02)
    raise AssertionError("writes are not being acknowledged")


def read_back(cluster, end_offset):
    consumer = Consumer({"bootstrap.servers": cluster.live_bootstrap(), "group.id": "unused",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    by_offset = {}
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < 20 and (not by_offset or
                                                    max(by_offset) < end_offset):
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        by_offset[msg.offset()] = int(msg.value().decode())
        last_progress = time.monotonic()
    consumer.close()
    return by_offset


def main():
    with harness.Cluster(size=4, kafka_base=29160, rpc_base=30160) as cluster:
        harness.create_topic_cli(cluster, TOPIC, 1, 3)
        md = harness.wait_topic_ready(cluster.bootstrap, TOPIC, 1, 3)
        leader, replicas, _ = md[0]
        spare = [b.id for b in cluster.brokers if b.id not in replicas][0]
        stream = Stream(cluster.bootstrap)
        stream.thread.start()
        wait_more_acks(stream)

        # 1. Move the partition off its leader onto the spare broker.
        target = [r for r in replicas if r != leader] + [spare]
        out = cli(cluster, "partition", "move", "%s/0" % TOPIC,
                  "--to", ",".join(map(str, target)), "--wait")
        assert out.returncode == 0, out.stderr
        md = harness.wait_topic_ready(cluster.bootstrap, TOPIC, 1, 3)
        assert sorted(md[0][1]) == sorted(target), md
        wait_more_acks(stream)

        # 2. Bad input is refused with a clear error, not a crash.
        out = cli(cluster, "partition", "move", "%s/0" % TOPIC, "--to", "1,1")
        assert out.returncode == 2
        out = cli(cluster, "partition", "move", "no-such-topic/0", "--to", "1,2,3")
        assert out.returncode == 1 and b"error" in out.stdout, out.stdout

        # 3. Decommission a broker holding a replica: it ends up with none.
        victim = target[0]
        out = cli(cluster, "broker", "decommission", str(victim), "--wait")
        assert out.returncode == 0, out.stderr
        md = harness.wait_topic_ready(cluster.bootstrap, TOPIC, 1, 3)
        assert victim not in md[0][1], md
        wait_more_acks(stream)
        out = cli(cluster, "partition", "reassignments")
        assert out.returncode == 0

        stream.stop_flag = True
        stream.thread.join(timeout=180)
        acked = dict(stream.acked)
        by_offset = read_back(cluster, max(acked.values()))
        lost = [(s, o) for s, o in acked.items() if by_offset.get(o) != s]
        harness.log("acked %d, read %d, lost %d, failed deliveries %d"
                    % (len(acked), len(by_offset), len(lost), stream.failed))
        assert not lost, "acknowledged messages missing: %s" % lost[:10]
    print("PASS test_membership")


if __name__ == "__main__":
    sys.exit(main())
