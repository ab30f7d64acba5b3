#!/usr/bin/python3
"""kcat (librdkafka 2.0.2) against a 3-broker raftmq cluster: metadata listing, 10,000 keyed
messages with acks=all into a 3-partition RF-3 topic, read back in full with per-partition order,
and every compression codec round-tripping."""

import subprocess
import sys

import harness

KCAT = "/usr/bin/kcat"


def kcat(args, stdin=None, timeout=120):
    out = subprocess.run([KCAT] + args, input=stdin, capture_output=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("kcat %s failed (%d): %s" % (args, out.returncode,
                                                        out.stderr.decode(errors="replace")))
    return out.stdout


def produce(cluster, topic, messages, codec="none"):
    data = "".join("%s\t%s\n" % kv for kv in messages).encode()
    kcat(["-b", cluster.bootstrap, "-P", "-t", topic, "-K", "\t", "-z", codec,
          "-X", "acks=all", "-X", "topic.request.required.acks=-1"], stdin=data)


def consume(cluster, topic, expected):
    raw = kcat(["-b", cluster.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                "-c", str(expected), "-f", "%k\t%s\t%p\t%o\n"], timeout=120)
    out = []
    for line in raw.decode().splitlines():
        k, v, p, o = line.split("\t")
        out.append((k, v, int(p), int(o)))
    return out


def main():
    with harness.Cluster() as cluster:
        listing = kcat(["-b", cluster.bootstrap, "-L"]).decode()
        for b in cluster.brokers:
            assert ("127.0.0.1:%d" % b.kafka_port) in listing, listing
        harness.create_topic_cli(cluster, "kcat-events", 3, 3)
        listing = kcat(["-b", cluster.bootstrap, "-L", "-t", "kcat-events"]).decode()
        assert "3 partitions" in listing, listing
        messages = harness.keyed_messages("kcat")
        produce(cluster, "kcat-events", messages)
        harness.check_roundtrip(messages, consume(cluster, "kcat-events", len(messages)))
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            topic = "kcat-" + codec
            harness.create_topic_cli(cluster, topic, 3, 3)
            batch = harness.keyed_messages("kcat-" + codec, 2000)
            produce(cluster, topic, batch, codec)
            harness.check_roundtrip(batch, consume(cluster, topic, len(batch)))
            harness.log("codec", codec, "round-trips")
    print("PASS test_kcat")


if __name__ == "__main__":
    sys.exit(main())
