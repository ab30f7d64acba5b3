"""A 3-broker raftmq cluster on loopback for scripts/bench (Kafka ports 9601-9603, Raft RPC
19601-19603, each shifted by $RAFTMQ_TEST_PORT_OFFSET when set, so that runs of several
engineers on one machine do not collide; data in a temporary directory removed at exit)."""
import os
import subprocess
import time

import procs

PORT_OFFSET = int(os.environ.get("RAFTMQ_TEST_PORT_OFFSET", "0") or 0)
KAFKA_BASE = 9600 + PORT_OFFSET
RPC_BASE = 19600 + PORT_OFFSET


class RaftmqCluster:
    def __init__(self, root, data_base, brokers=3):
        # $RAFTMQ_BENCH_BIN (as for the harness's other binaries): e.g. another build to compare.
        self.bin = os.path.join(os.environ.get("RAFTMQ_BENCH_BIN", os.path.join(root, "build", "bin")),
                                "raftmq")
        self.dir = procs.make_temp_dir(data_base, "raftmq-bench-")
        self.n = brokers
        self.procs = {}
        self.peers = ",".join(f"{i}@127.0.0.1:{RPC_BASE + i}:{KAFKA_BASE + i}"
                              for i in range(1, brokers + 1))
        self.bootstrap = ",".join(f"127.0.0.1:{KAFKA_BASE + i}" for i in range(1, brokers + 1))

    def start(self):
        for i in range(1, self.n + 1):
            argv = [self.bin, "serve", "--broker-id", str(i), "--kafka-port", str(KAFKA_BASE + i),
                    "--rpc-port", str(RPC_BASE + i), "--data-dir", f"{self.dir}/broker-{i}",
                    "--peers", self.peers, "--cluster-id", "raftmq-bench",
                    "--default-replication-factor", str(self.n)]
            self.procs[i] = procs.start_server(f"raftmq-{i}", argv, f"{self.dir}/broker-{i}.log")
        for i in range(1, self.n + 1):
            if not procs.wait_port(KAFKA_BASE + i, 60):
                raise RuntimeError(f"raftmq broker {i} did not open its Kafka port in 60 s "
                                   f"(log: {self.dir}/broker-{i}.log)")

    def alive(self):
        return all(p.poll() is None for p in self.procs.values())

    def create_topic(self, name, partitions, timeout=120):
        """Creates a topic with RF = number of brokers, retrying while the cluster settles."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            r = subprocess.run([self.bin, "topic", "create", name, "--partitions", str(partitions),
                                "--replication-factor", str(self.n), "--bootstrap",
                                self.bootstrap], capture_output=True, text=True, timeout=60)
            if r.returncode == 0 or "already exists" in (r.stdout + r.stderr).lower():
                return
            last = (r.stderr or r.stdout).strip()
            time.sleep(1)
        raise RuntimeError(f"raftmq topic create {name} failed for {timeout} s: {last}")

    def delete_topic(self, name, timeout=60):
        """Deletes a topic whose data no later phase reads (a full run on a fast disk writes
        tens of GB per topic); a failure is only reported (the run goes on with the data)."""
        try:
            r = subprocess.run([self.bin, "topic", "delete", name, "--bootstrap",
                                self.bootstrap], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"no answer in {timeout} s"
        if r.returncode != 0:
            return (r.stderr or r.stdout).strip() or f"exit {r.returncode}"
        return None

    def pids(self):
        return {f"raftmq-{i}": p.pid for i, p in self.procs.items()}

    def log_tail(self, lines=5):
        out = []
        for i in self.procs:
            try:
                with open(f"{self.dir}/broker-{i}.log", errors="replace") as f:
                    out += [f"broker-{i}: {l.rstrip()}" for l in f.readlines()[-lines:]]
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        for p in self.procs.values():
            procs.stop_server(p, grace=15)
