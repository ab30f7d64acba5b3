#!/usr/bin/python3
"""confluent-kafka-python (librdkafka) against a 3-broker raftmq cluster: AdminClient
create/describe/delete, 10,000 keyed messages with acks=all into a 3-partition RF-3 topic, read
back by an assigned (group-less) consumer with per-partition order, every compression codec."""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import harness


def create(admin, cluster, name, configs=None):
    futures = admin.create_topics([NewTopic(name, 3, 3, config=configs or {})],
                                  operation_timeout=30)
    futures[name].result(timeout=60)
    harness.wait_topic_ready(cluster.bootstrap, name, 3, 3)


def produce(cluster, topic, messages, codec="none"):
    acked = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append(msg)

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                         "compression.type": codec, "linger.ms": 5})
    for k, v in messages:
        while True:
            try:
                producer.produce(topic, key=k, value=v, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0 and not errors, "%d unflushed, errors %s" % (remaining, errors[:5])
    assert len(acked) == len(messages)


def consume(cluster, topic, expected):
    # group.id is required by the Python binding; no group API is used with assign().
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    out = []
    deadline = time.monotonic() + 120
    while len(out) < expected and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            # The group machinery (group.id is mandatory here) finds no coordinator API on a
            # broker without consumer groups; that is reported but does not stop fetching.
            if msg.error().fatal():
                raise KafkaException(msg.error())
            harness.log("consumer:", msg.error())
            continue
        out.append((msg.key().decode(), msg.value().decode(), msg.partition(), msg.offset()))
    consumer.close()
    return out


def main():
    with harness.Cluster() as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        create(admin, cluster, "ck-events", {"retention.ms": "3600000"})
        described = admin.describe_configs([ConfigResource("topic", "ck-events")])
        configs = list(described.values())[0].result(timeout=30)
        assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
        messages = harness.keyed_messages("ck")
        produce(cluster, "ck-events", messages)
        harness.check_roundtrip(messages, consume(cluster, "ck-events", len(messages)))
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            topic = "ck-" + codec
            create(admin, cluster, topic)
            batch = harness.keyed_messages(topic, 2000)
            produce(cluster, topic, batch, codec)
            harness.check_roundtrip(batch, consume(cluster, topic, len(batch)))
            harness.log("codec", codec, "round-trips")
        admin.delete_topics(["ck-gzip"], operation_timeout=30)["ck-gzip"].result(timeout=60)
        # operation_timeout > 0: the answer waits for every live broker to apply the deletion
        # (admin read-your-writes, docs/cluster.md), so no broker may list it any more.
        listed = admin.list_topics(timeout=10).topics
        assert "ck-gzip" not in listed, "ck-gzip still listed after delete: %s" % sorted(listed)
    print("PASS test_confluent_kafka")


if __name__ == "__main__":
    sys.exit(main())
