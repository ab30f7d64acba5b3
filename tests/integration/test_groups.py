#!/usr/bin/python3
"""Consumer groups with librdkafka (confluent-kafka) on a 3-broker raftmq cluster:
two members split a 6-partition topic, a third joins, one leaves; after each rebalance every
partition is owned by exactly one member. Members commit synchronously (after each batch and on
revocation); over the group's life, and across a restart of the whole group, every message is
delivered exactly once (nothing committed is delivered again, nothing is skipped).

Run with the eager `range` assignor and with `cooperative-sticky` (incremental rebalances),
each twice: once producing only between rebalances, once with a producer writing one message to
every partition every 50 ms *while* the members rebalance ("trickle"). Prints the rebalance
times it measured (REBALANCE lines). Members read with poll(): librdkafka 2.0.2's consume(n)
skips messages across cooperative rebalances (--api batch shows it; docs/groups.md). A run that
fails after the group's coordinator moved (an election, found in the brokers' logs) is reported
and repeated once (docs/groups.md, "Coordinator moves").

  test_groups.py [--strategies range,cooperative-sticky] [--variants plain,trickle]
                 [--repeat N] [--api poll|batch]
  RAFTMQ_GROUPS_DEBUG=cgrp,fetch  librdkafka debug log of every member on stderr"""

import argparse
import sys
import time

import groups_util as gu
import harness

PARTITIONS = 6
BATCH = 600
MAX_REPEATS = 2  # runs repeated (once each) because the group's coordinator moved


def run_group(cluster, strategy, topic, trickle, api="poll"):
    started = []  # members and the producer, stopped even when a check fails
    try:
        return run_group_checked(cluster, strategy, topic, trickle, api, started)
    finally:
        for t in started:
            t.stop_flag.set()
        for t in started:
            if t.is_alive():
                t.join(timeout=60)


def run_group_checked(cluster, strategy, topic, trickle, api, started):
    group = "g-" + topic
    shared = gu.Shared()
    harness.create_topic_cli(cluster, topic, partitions=PARTITIONS, replication=3)
    total = 0
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    producer = None
    if trickle:
        producer = gu.Trickle(cluster.bootstrap, topic, PARTITIONS, 1000000)
        started.append(producer)
        producer.start()
    times = {}
    a = gu.Member("a", cluster.bootstrap, group, topic, shared, strategy, api=api)
    started.append(a)
    b = gu.Member("b", cluster.bootstrap, group, topic, shared, strategy, api=api)
    started.append(b)
    a.start()
    b.start()
    owners = gu.wait_partitioned([a, b], PARTITIONS, shared)
    harness.log(strategy, "two members:", owners)
    gu.wait_consumed(shared, total)
    times["first two members: subscribe to first message (slower)"] = max(
        t for t in (a.join_to_first_fetch(), b.join_to_first_fetch()) if t is not None)

    c = gu.Member("c", cluster.bootstrap, group, topic, shared, strategy, api=api)
    started.append(c)
    c_joined = time.monotonic()
    c.start()
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    owners = gu.wait_partitioned([a, b, c], PARTITIONS, shared)
    harness.log(strategy, "three members:", owners)
    gu.wait_consumed(shared, total)
    times["third member joins: to its assignment"] = c.join_to_assignment()
    if trickle:
        # Every partition delivers again to its new owner (all of them stop under eager).
        times["third member joins: until every partition is consumed again"] = \
            gu.flowing_after(shared, owners, c_joined)

    left_at = time.monotonic()
    a.stop()  # leaves (LeaveGroup) after committing its partitions
    gu.wait_partitioned([b, c], PARTITIONS, shared, settle=0.0, poll=0.01)
    times["a member leaves: until its partitions are owned"] = time.monotonic() - left_at
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    owners = gu.wait_partitioned([b, c], PARTITIONS, shared)
    harness.log(strategy, "after a leaves:", owners)
    gu.wait_consumed(shared, total)
    if trickle:
        times["a member leaves: until every partition is consumed again"] = \
            gu.flowing_after(shared, owners, left_at)
        total += producer.stop()
        harness.log(strategy, "trickle producer stopped; %d messages in all" % total)
        gu.wait_consumed(shared, total)
    b.stop()
    c.stop()

    # The whole group restarts: it resumes at the committed offsets.
    gu.produce_numbered(cluster.bootstrap, topic, PARTITIONS, total, BATCH)
    total += BATCH
    d = gu.Member("d", cluster.bootstrap, group, topic, shared, strategy, api=api)
    started.append(d)
    d.start()
    gu.wait_consumed(shared, total)
    time.sleep(1.0)  # anything delivered twice would arrive now
    times["restarted group: subscribe to first message"] = d.join_to_first_fetch()
    d.stop()
    harness.log(strategy, "commits answered REBALANCE_IN_PROGRESS (retried):",
                sum(m.commits_retried for m in (a, b, c, d)))
    failures = sum(m.commit_failures for m in (a, b, c, d))
    if failures:
        raise AssertionError("%d commits failed" % failures)
    gu.check_exactly_once(shared, gu.data_offsets(cluster.bootstrap, topic, PARTITIONS))
    with shared.lock:
        n = sum(len(v) for v in shared.delivered.values())
    if n != total:
        raise AssertionError("delivered %d messages, produced %d" % (n, total))
    variant = "trickle" if trickle else "plain"
    for what, t in times.items():
        harness.log("REBALANCE %s %s %s: %s" % (strategy, variant, what,
                                                "n/a" if t is None else "%.3f s" % t))
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategies", default="range,cooperative-sticky")
    parser.add_argument("--variants", default="plain,trickle")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--api", choices=("poll", "batch"), default="poll",
                        help="how members read: poll() or consume(n) (docs/groups.md)")
    args = parser.parse_args()
    # Raft RPC ports below the ephemeral range (32768+): outgoing connections elsewhere on the
    # machine cannot hold them.
    with harness.Cluster(rpc_base=30092) as cluster:
        gu.wait_offsets_topic(cluster)
        repeated = 0
        for run in range(args.repeat):
            for strategy in args.strategies.split(","):
                for variant in args.variants.split(","):
                    topic = "orders-%s-%s-%d" % (strategy, variant, run)
                    since_ms = int(time.time() * 1000)
                    try:
                        run_group(cluster, strategy, topic, variant == "trickle", args.api)
                    except AssertionError as e:
                        moves = gu.coordinator_elections(cluster, "g-" + topic, since_ms)
                        if not moves or repeated >= MAX_REPEATS:
                            raise
                        # Not what this test checks, and not the broker's doing: on this
                        # starved VM an election moved the group's coordinator, and
                        # librdkafka 2.0.2 does not retry an OffsetFetch answered
                        # NOT_COORDINATOR (docs/groups.md, "Coordinator moves").
                        # test_groups_failover.py covers coordinator moves.
                        repeated += 1
                        harness.log("RUN REPEATED: %s failed after the coordinator of %s moved "
                                    "(elected at %s): %s" % (topic, "g-" + topic, moves,
                                                             str(e).splitlines()[0]))
                        topic += "-again"
                        run_group(cluster, strategy, topic, variant == "trickle", args.api)
                    moved = gu.coordinator_elections(cluster, "g-" + topic, since_ms)
                    harness.log("group with", strategy, variant, "run", run, "ok",
                                "(coordinator moved during it: %s)" % moved if moved else "")
        harness.log("runs repeated after a coordinator move:", repeated)
    print("PASS test_groups")


if __name__ == "__main__":
    sys.exit(main())
