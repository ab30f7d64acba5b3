#!/usr/bin/python3
"""Idempotence across failover: a confluent-kafka producer with enable.idempotence=true
(acks=all) streams numbered messages into a 3-partition RF-3 topic while partition leaders are
SIGKILLed (and restarted) repeatedly. Afterwards every acknowledged number is present exactly
once in its partition, in order, and no number appears twice at all (retries across leader
changes were deduplicated by the partitions' replicated producer state). Prints the counts.

    test_idempotence.py [--kills N]   (default 3)

Ports: the harness's (Kafka 29092+, RPC 30092+), moved by RAFTMQ_TEST_PORT_OFFSET; within one
ctest run the integration tests share them one at a time (RESOURCE_LOCK).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import harness

TOPIC = "idempotence"
PARTITIONS = 3


class Stream:
    """Produces per-partition numbered messages "partition|number" until stopped."""

    def __init__(self, bootstrap):
        self.fatal = []
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 2, "message.timeout.ms": 120000, "retry.backoff.ms": 50,
            "max.in.flight.requests.per.connection": 5,
            "topic.metadata.refresh.interval.ms": 1000, "socket.timeout.ms": 5000,
            "queue.buffering.max.messages": 20000, "error_cb": self.on_error})
        self.acked = {p: {} for p in range(PARTITIONS)}  # partition -> {number: offset}
        self.sent = {p: 0 for p in range(PARTITIONS)}
        self.failed = 0
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_error(self, err):
        if err.fatal():
            self.fatal.append(str(err))
            harness.log("FATAL producer error:", err)

    def on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.failed += 1
                if self.failed <= 5:
                    harness.log("delivery failed:", err)
                return
            partition, number = (int(x) for x in msg.value().decode().split("|")[:2])
            assert partition == msg.partition()
            self.acked[partition][number] = msg.offset()

    def acked_count(self):
        with self.lock:
            return sum(len(a) for a in self.acked.values())

    def run(self):
        i = 0
        while not self.stop_flag and not self.fatal:
            if len(self.producer) > 3000:
                self.producer.poll(0.01)
                continue
            partition = i % PARTITIONS
            number = self.sent[partition]
            try:
                self.producer.produce(TOPIC, partition=partition,
                                      value=("%d|%d|payload" % (partition, number)).encode(),
                                      on_delivery=self.on_delivery)
            except KafkaException as e:
                harness.log("produce() refused locally:", e)
                self.producer.poll(0.1)
                continue
            self.sent[partition] = number + 1
            i += 1
            self.producer.poll(0)
            if i % 100 == 0:
                time.sleep(0.005)
        self.producer.flush(120)


def wait_acks(stream, count=300, timeout=60, partition=None):
    """Waits for `count` more acknowledgements (of `partition` only, when given)."""
    def acked():
        if partition is None:
            return stream.acked_count()
        with stream.lock:
            return len(stream.acked[partition])
    deadline = time.monotonic() + timeout
    start = acked()
    while time.monotonic() < deadline:
        if stream.fatal:
            raise AssertionError("producer fatal error: %s" % stream.fatal)
        if acked() >= start + count:
            return
        time.sleep(0.01)
    raise RuntimeError("the producer is not getting acknowledgements")


def read_partition(cluster, partition, end_offset):
    """Numbers in offset order read from the partition up to end_offset."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(TOPIC, partition, 0)])
    numbers = []  # (offset, number)
    highest = -1
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < 30 and highest < end_offset:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                harness.log("read back:", msg.error())
            continue
        p, number = (int(x) for x in msg.value().decode().split("|")[:2])
        assert p == partition
        numbers.append((msg.offset(), number))
        highest = max(highest, msg.offset())
        last_progress = time.monotonic()
    consumer.close()
    return numbers


def check_partition(partition, acked, numbers):
    """Returns (missing, duplicates, out_of_order) for one partition."""
    seen = {}
    duplicates = 0
    for offset, number in numbers:
        if number in seen:
            duplicates += 1
        seen[number] = offset
    missing = [n for n, o in acked.items() if seen.get(n) != o]
    order = [n for _, n in sorted(numbers)]
    out_of_order = sum(1 for a, b in zip(order, order[1:]) if b <= a)
    return missing, duplicates, out_of_order


KAFKAJS_SCRIPT = r"""
const { Kafka, logLevel } = require('kafkajs')
const kafka = new Kafka({ clientId: 'raftmq-it-idem', brokers: process.env.BOOTSTRAP.split(','),
                          logLevel: logLevel.WARN })
async function main() {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const offsets = []
  for (let i = 0; i < 20; i++) {
    const messages = []
    for (let j = 0; j < 10; j++) messages.push({ value: `0|${i * 10 + j}|kafkajs` })
    const r = await producer.send({ topic: process.env.TOPIC, acks: -1,
                                    messages: messages.map(m => ({ ...m, partition: 0 })) })
    offsets.push(Number(r[0].baseOffset))
  }
  await producer.disconnect()
  console.log(JSON.stringify({ offsets }))
}
main().catch(e => { console.error(e); process.exit(1) })
"""


def kafkajs_phase(cluster):
    """kafkajs' idempotent producer (InitProducerId v0-v1 sent to the controller named in
    Metadata) writes 200 numbered messages; they are read back exactly once, in order."""
    node_dir = os.path.join(harness.HERE, "node")
    if not os.path.isdir(os.path.join(node_dir, "node_modules", "kafkajs")):
        harness.log("kafkajs not installed (npm ci in tests/integration/node): phase skipped")
        return
    topic = "idempotence-kafkajs"
    harness.create_topic_cli(cluster, topic, 1, 3)
    env = dict(os.environ, BOOTSTRAP=cluster.bootstrap, TOPIC=topic)
    out = subprocess.run(["node", "-e", KAFKAJS_SCRIPT], cwd=node_dir, env=env,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, "kafkajs idempotent producer failed: %s %s" % (
        out.stdout.decode()[-2000:], out.stderr.decode()[-2000:])
    offsets = json.loads(out.stdout.decode().strip().splitlines()[-1])["offsets"]
    global TOPIC
    saved, TOPIC = TOPIC, topic
    try:
        numbers = read_partition(cluster, 0, offsets[-1] + 9)
    finally:
        TOPIC = saved
    assert [n for _, n in numbers] == list(range(200)), "kafkajs: read %s" % numbers[:20]
    harness.log("kafkajs idempotent producer: 200 messages, read back exactly once in order")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=3)
    options = parser.parse_args()
    with harness.Cluster() as cluster:
        harness.create_topic_cli(cluster, TOPIC, PARTITIONS, 3)
        kafkajs_phase(cluster)
        stream = Stream(cluster.bootstrap)
        stream.thread.start()
        for kill in range(options.kills):
            wait_acks(stream)
            partition = kill % PARTITIONS
            leader = harness.agreed_leader(cluster, TOPIC, partition)
            before = stream.acked_count()
            cluster.broker(leader).kill()
            harness.log("kill %d: SIGKILLed broker %d (leader of partition %d), %d acked"
                        % (kill + 1, leader, partition, before))
            # The killed partition continues on a new leader (the producer's retries of the
            # batches in flight at the kill go there) before the broker comes back.
            t_kill = time.monotonic()
            wait_acks(stream, count=500, partition=partition)
            harness.log("partition %d: 500 more acks %.0f ms after the kill"
                        % (partition, (time.monotonic() - t_kill) * 1000))
            cluster.broker(leader).start()
            cluster.wait_ready(brokers=[cluster.broker(leader)])
            harness.wait_topic_ready(cluster.bootstrap, TOPIC, PARTITIONS, 3)
            harness.log("broker %d restarted and in sync" % leader)
        wait_acks(stream)
        stream.stop_flag = True
        stream.thread.join(timeout=180)
        assert not stream.thread.is_alive(), "producer did not finish flushing"
        assert not stream.fatal, "producer fatal error: %s" % stream.fatal
        totals = {"acked": 0, "read": 0, "missing": 0, "duplicates": 0, "out_of_order": 0}
        for p in range(PARTITIONS):
            acked = dict(stream.acked[p])
            assert acked, "nothing acknowledged on partition %d" % p
            numbers = read_partition(cluster, p, max(acked.values()))
            missing, duplicates, out_of_order = check_partition(p, acked, numbers)
            harness.log("partition %d: sent %d, acked %d, read %d, missing %d, duplicates %d, "
                        "out of order %d" % (p, stream.sent[p], len(acked), len(numbers),
                                             len(missing), duplicates, out_of_order))
            assert not missing, "partition %d: acknowledged numbers missing or moved: %s" % (
                p, missing[:10])
            assert duplicates == 0, "partition %d: %d duplicates" % (p, duplicates)
            assert out_of_order == 0, "partition %d: %d out of order" % (p, out_of_order)
            totals["acked"] += len(acked)
            totals["read"] += len(numbers)
        print("IDEMPOTENCE kills=%d acked=%d read=%d missing=0 duplicates=0 out_of_order=0 "
              "failed_deliveries=%d" % (options.kills, totals["acked"], totals["read"],
                                        stream.failed), flush=True)
    print("PASS test_idempotence")


if __name__ == "__main__":
    sys.exit(main())
