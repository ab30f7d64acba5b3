#!/usr/bin/python3
"""The raftmq CLI (librdkafka underneath) against a 3-broker cluster: cluster status, topic
create (with configs) / list / describe / delete, produce from stdin and consume back."""

import subprocess
import sys
import time

import harness


def raftmq(cluster, *args, stdin=None, check=True):
    out = subprocess.run([cluster.binary] + list(args) + ["--bootstrap", cluster.bootstrap],
                         input=stdin, capture_output=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError("raftmq %s failed (%d): %s" % (" ".join(args), out.returncode,
                                                          out.stderr.decode(errors="replace")))
    return out


def main():
    with harness.Cluster() as cluster:
        status = raftmq(cluster, "cluster", "status").stdout.decode()
        for b in cluster.brokers:
            assert "%d 127.0.0.1:%d" % (b.id, b.kafka_port) in status, status
        raftmq(cluster, "topic", "create", "cli-topic", "--partitions", "3",
               "--replication-factor", "3", "--config", "retention.ms=120000")
        harness.wait_topic_ready(cluster.bootstrap, "cli-topic", 3, 3)
        assert "cli-topic" in raftmq(cluster, "topic", "list").stdout.decode().split()
        described = raftmq(cluster, "topic", "describe", "cli-topic").stdout.decode()
        assert "3 partitions" in described and "retention.ms=120000" in described, described
        again = raftmq(cluster, "topic", "create", "cli-topic", check=False)
        assert again.returncode != 0 and b"TOPIC_ALREADY_EXISTS" in again.stderr, again.stderr
        lines = "".join("k%d:value-%d\n" % (i % 7, i) for i in range(500)).encode()
        raftmq(cluster, "produce", "cli-topic", "--key-separator", ":", stdin=lines)
        consumed = raftmq(cluster, "consume", "cli-topic", "--from-beginning", "--count",
                          "500", "--print-key").stdout.decode().splitlines()
        assert sorted(consumed) == sorted("k%d\tvalue-%d" % (i % 7, i) for i in range(500))
        raftmq(cluster, "topic", "delete", "cli-topic")
        deadline = time.monotonic() + 30
        while "cli-topic" in raftmq(cluster, "topic", "list").stdout.decode().split():
            assert time.monotonic() < deadline, "cli-topic still listed after delete"
            time.sleep(0.2)
    print("PASS test_cli")


if __name__ == "__main__":
    sys.exit(main())
