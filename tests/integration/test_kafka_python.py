#!/usr/bin/python3
"""kafka-python 2.0.2 against a 3-broker raftmq cluster: KafkaAdminClient create/delete, 10,000
keyed messages with acks=all into a 3-partition RF-3 topic, read back by a group-less consumer
(assign) with per-partition order, and the codecs kafka-python supports here (gzip always;
snappy/lz4/zstd when python3-snappy/python3-lz4/python3-zstandard are installed)."""

import importlib.util
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

import harness

# kafka-python 2.0.2 does not skip control batches: it hands their records to the application.
# raftmq stores Raft's own entries (a new leader's no-op) as control batches (type 2,
# LEADER_CHANGE), so they appear here with this key (int16 version 0, int16 type 2). Other
# clients (librdkafka, kafkajs, Java) skip them. Counted and left out of the comparison.
CONTROL_KEY_LEADER_CHANGE = b"\x00\x00\x00\x02"


def produce(cluster, topic, messages, codec=None):
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all",
                             compression_type=codec, linger_ms=5, retries=5)
    futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in messages]
    producer.flush(60)
    for f in futures:
        f.get(timeout=60)  # raises if not acknowledged
    producer.close()


def consume(cluster, topic, expected):
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    consumer.seek_to_beginning()
    out = []
    deadline = time.monotonic() + 120
    while len(out) < expected and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for r in records:
                if r.key == CONTROL_KEY_LEADER_CHANGE:
                    harness.log("kafka-python surfaced a control record at", tp, r.offset)
                    continue
                out.append((r.key.decode(), r.value.decode(), tp.partition, r.offset))
    consumer.close()
    return out


def main():
    codecs = ["gzip"]
    for codec, module in (("snappy", "snappy"), ("lz4", "lz4"), ("zstd", "zstandard")):
        if importlib.util.find_spec(module) is not None:
            codecs.append(codec)
        else:
            harness.log("kafka-python: no %s module, codec %s not tested here" % (module, codec))
    with harness.Cluster() as cluster:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        topics = ["kp-events"] + ["kp-" + c for c in codecs]
        admin.create_topics([NewTopic(t, 3, 3) for t in topics], timeout_ms=30000)
        for t in topics:
            harness.wait_topic_ready(cluster.bootstrap, t, 3, 3)
        messages = harness.keyed_messages("kp")
        produce(cluster, "kp-events", messages)
        harness.check_roundtrip(messages, consume(cluster, "kp-events", len(messages)))
        for codec in codecs:
            batch = harness.keyed_messages("kp-" + codec, 2000)
            produce(cluster, "kp-" + codec, batch, codec)
            harness.check_roundtrip(batch, consume(cluster, "kp-" + codec, len(batch)))
            harness.log("codec", codec, "round-trips")
        admin.delete_topics(["kp-events"], timeout_ms=30000)
        admin.close()
    print("PASS test_kafka_python")


if __name__ == "__main__":
    sys.exit(main())
