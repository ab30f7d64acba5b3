#!/usr/bin/python3
"""The operator's choice of controller voters (docs/cluster.md "Controller voters") with the
real binary, 3 brokers:

  * `raftmq controller voters` lists the three brokers as voters;
  * `raftmq controller voters remove X` (X not the controller leader) demotes X: every broker's
    list shows it as a learner with the choice "learner";
  * X is killed: the controller (voters: the two others) still creates a topic, and the list
    shows X down;
  * refusals, exit 1 with the reason: promoting the dead X, promoting an unknown broker;
  * X restarts: it comes back a learner and is not promoted automatically;
  * `raftmq controller voters add X` promotes it again; `auto X` hands it back.

Ports: 29260+ / 30260+ (plus RAFTMQ_TEST_PORT_OFFSET), apart from the other tests."""

import subprocess
import sys
import time

import harness


def voters(cluster, *args, bootstrap=None, timeout=60):
    cmd = [cluster.binary, "controller", "voters"] + list(args) + [
        "--bootstrap", bootstrap or cluster.live_bootstrap()]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout)
    harness.log("$ controller voters", " ".join(args), "->", out.returncode)
    harness.log(out.stdout.decode().rstrip())
    if out.stderr:
        harness.log(out.stderr.decode().rstrip()[-400:])
    return out


def role_line(listing, broker_id):
    for line in listing.decode().splitlines():
        if line.strip().startswith("broker %d:" % broker_id):
            return line
    raise AssertionError("broker %d not listed:\n%s" % (broker_id, listing.decode()))




def main():
    with harness.Cluster(size=3, kafka_base=29260, rpc_base=30260) as cluster:
        run(cluster)
    print("PASS test_controller_voters")


def run(cluster):
    listing = voters(cluster)
    assert listing.returncode == 0, listing.stderr
    assert b"voters [1,2,3]" in listing.stdout, listing.stdout
    leader = harness.metadata(cluster.live_bootstrap()).controller_id
    x = 1 if leader != 1 else 2
    started = time.monotonic()

    demoted = voters(cluster, "remove", str(x))
    assert demoted.returncode == 0, demoted.stderr
    assert b"broker %d is a controller learner" % x in demoted.stdout, demoted.stdout
    harness.log("demotion answered in %.2f s" % (time.monotonic() - started))
    for b in cluster.brokers:
        deadline = time.monotonic() + 10
        while True:
            out = voters(cluster, bootstrap="127.0.0.1:%d" % b.kafka_port)
            line = role_line(out.stdout, x)
            if "learner" in line.split("choice")[0]:
                break
            assert time.monotonic() < deadline, out.stdout
            time.sleep(0.2)
        assert "choice learner" in line, line

    # The demoted broker dies: the two voters left still commit controller changes.
    cluster.broker(x).kill()
    harness.create_topic_retrying(cluster, "after-demotion")
    listing = voters(cluster)
    assert listing.returncode == 0, listing.stderr
    line = role_line(listing.stdout, x)
    assert "learner" in line and line.rstrip().endswith("down"), line

    # Refusals, nothing changed.
    dead = voters(cluster, "add", str(x))
    assert dead.returncode == 1 and b"not alive" in dead.stderr, dead.stderr
    unknown = voters(cluster, "add", "9")
    assert unknown.returncode == 1 and b"not registered" in unknown.stderr, unknown.stderr
    assert b"Kafka error 102" in unknown.stderr, unknown.stderr
    bad = voters(cluster, "promote", "2")
    assert bad.returncode == 2, bad

    # It restarts a learner, and stays one (the choice is in the controller state).
    cluster.broker(x).start()
    cluster.wait_ready()
    time.sleep(1.5)
    listing = voters(cluster, bootstrap="127.0.0.1:%d" % cluster.broker(x).kafka_port)
    line = role_line(listing.stdout, x)
    assert "learner" in line.split("choice")[0] and "choice learner" in line, line
    assert line.rstrip().endswith("up"), line

    promoted = voters(cluster, "add", str(x))
    assert promoted.returncode == 0, promoted.stderr
    assert b"broker %d is a controller voter" % x in promoted.stdout, promoted.stdout
    deadline = time.monotonic() + 10
    while b"voters [1,2,3]" not in promoted.stdout:  # the asked broker applies it too
        assert time.monotonic() < deadline, promoted.stdout
        time.sleep(0.2)
        promoted = voters(cluster)
    back = voters(cluster, "auto", str(x))
    assert back.returncode == 0, back.stderr
    assert b"back to the automatic promotion" in back.stdout, back.stdout
    deadline = time.monotonic() + 10
    while "choice auto" not in role_line(back.stdout, x):  # the asked broker applies it too
        assert time.monotonic() < deadline, back.stdout
        time.sleep(0.2)
        back = voters(cluster)
    assert "voter" in role_line(back.stdout, x).split("choice")[0], back.stdout
    harness.log("controller voters test done in %.1f s" % (time.monotonic() - started))


if __name__ == "__main__":
    sys.exit(main())
