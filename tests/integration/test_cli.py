#!/usr/bin/python3
"""The raftmq CLI (librdkafka underneath) against a 3-broker cluster: cluster status, topic
create (with configs) / list / describe / delete, produce from stdin and consume back."""

import re
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


PARTITION_LINE = re.compile(
    r"^  cli-topic-(\d+): leader (\d+) term (\d+) commit (\d+) last (\d+) hw (\d+) "
    r"log-end (\d+) voters \[([\d,]+)\]$")
REPLICA_LINE = re.compile(r"^      replica (\d+): match (\d+), lag (\d+) entries$")


def check_partition_status(cluster):
    """`cluster status` asked of every broker: each partition of cli-topic from its leader, with
    term, commit index and high watermark, three voters, and both followers caught up (lag 0)
    once the 500 records are in (followers may trail for a moment: retried for 10 s)."""
    for b in cluster.brokers:
        deadline = time.monotonic() + 10
        while True:
            out = subprocess.run([cluster.binary, "cluster", "status", "--bootstrap",
                                  "127.0.0.1:%d" % b.kafka_port], capture_output=True, timeout=30)
            text = out.stdout.decode()
            problems = partition_status_problems(text)
            if out.returncode == 0 and not problems:
                break
            assert time.monotonic() < deadline, "cluster status via broker %d: %s\n%s" % (
                b.id, problems, text)
            time.sleep(0.3)


def partition_status_problems(text):
    lines = text.splitlines()
    seen, hw_total, problems = set(), 0, []
    for i, line in enumerate(lines):
        m = PARTITION_LINE.match(line)
        if not m:
            continue
        p, term, commit, hw = int(m.group(1)), int(m.group(3)), int(m.group(4)), int(m.group(6))
        voters = m.group(8).split(",")
        seen.add(p)
        hw_total += hw
        if term < 1 or commit < 1 or len(voters) != 3:
            problems.append("partition %d: term %d commit %d voters %s" % (p, term, commit, voters))
        followers = [REPLICA_LINE.match(x) for x in lines[i + 1:i + 3]]
        if not all(followers) or any(int(f.group(3)) != 0 for f in followers):
            problems.append("partition %d: followers %s" % (p, lines[i + 1:i + 3]))
    if seen != {0, 1, 2}:
        problems.append("partitions listed: %s" % sorted(seen))
    if hw_total < 500:
        problems.append("high watermarks add up to %d < 500 records" % hw_total)
    return problems


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
        check_partition_status(cluster)
        raftmq(cluster, "topic", "delete", "cli-topic")
        # The CLI's DeleteTopics carries an operation timeout, so its answer waits until every
        # live broker has applied the deletion (admin read-your-writes, docs/cluster.md): the
        # listing, from any broker, must no longer show it.
        listed = raftmq(cluster, "topic", "list").stdout.decode().split()
        assert "cli-topic" not in listed, "cli-topic still listed after delete: %s" % listed
    print("PASS test_cli")


if __name__ == "__main__":
    sys.exit(main())
