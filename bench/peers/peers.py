"""The peer systems scripts/bench compares raftmq with, as local 3-node clusters on loopback,
started and stopped by the harness (temporary directories removed at exit).

Ports (documented in docs/benchmarks.md):
  NATS      clients 4601-4603, cluster routes 4611-4613 (NATS ports shifted by
            $RAFTMQ_TEST_PORT_OFFSET when set)
  RabbitMQ  AMQP 5601-5603, Erlang distribution 25601-25603, a private epmd on 4669
"""
import os
import shutil
import subprocess
import time

import procs

# Shifted by $RAFTMQ_TEST_PORT_OFFSET like raftmq's ports (raftmq_cluster.py), so that runs of
# several engineers on one machine do not collide.
PORT_OFFSET = int(os.environ.get("RAFTMQ_TEST_PORT_OFFSET", "0") or 0)
NATS_CLIENT_BASE = 4600 + PORT_OFFSET
NATS_ROUTE_BASE = 4610 + PORT_OFFSET
RABBIT_AMQP_BASE = 5600
RABBIT_DIST_BASE = 25600
EPMD_PORT = 4669


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "?"


class NatsCluster:
    name = "nats"

    def __init__(self, data_base, servers=3):
        self.dir = procs.make_temp_dir(data_base, "nats-bench-")
        self.n = servers
        self.procs = {}
        self.url = f"nats://127.0.0.1:{NATS_CLIENT_BASE + 1}"

    @staticmethod
    def missing():
        return None if shutil.which("nats-server") else "nats-server is not installed"

    def start(self):
        routes = ", ".join(f"nats-route://127.0.0.1:{NATS_ROUTE_BASE + i}"
                           for i in range(1, self.n + 1))
        for i in range(1, self.n + 1):
            conf = f"{self.dir}/n{i}.conf"
            with open(conf, "w") as f:
                f.write(f"server_name: n{i}\n"
                        f"listen: 127.0.0.1:{NATS_CLIENT_BASE + i}\n"
                        f"jetstream {{ store_dir: \"{self.dir}/n{i}\" }}\n"
                        f"cluster {{ name: bench, listen: 127.0.0.1:{NATS_ROUTE_BASE + i}, "
                        f"routes: [{routes}] }}\n")
            self.procs[i] = procs.start_server(f"nats-{i}", ["nats-server", "-c", conf],
                                               f"{self.dir}/n{i}.log")
        for i in range(1, self.n + 1):
            if not procs.wait_port(NATS_CLIENT_BASE + i, 30):
                raise RuntimeError(f"nats-server {i} did not listen in 30 s ({self.dir}/n{i}.log)")

    def pids(self):
        return {f"nats-{i}": p.pid for i, p in self.procs.items()}

    def version(self):
        return "nats-server " + package_version("nats-server")

    def stop(self):
        for p in self.procs.values():
            procs.stop_server(p)


class RabbitCluster:
    """Three RabbitMQ nodes on one machine (rabbit1..3@localhost) with their own ports, mnesia
    and log directories, a private Erlang cookie (HOME) and a private epmd. Node 1 boots alone;
    nodes 2 and 3 join it at first boot through classic_config peer discovery (no rabbitmqctl
    round trips, each of which would start an Erlang VM)."""
    name = "rabbitmq"
    SBIN = "/usr/lib/rabbitmq/bin"

    def __init__(self, data_base, nodes=3):
        self.dir = procs.make_temp_dir(data_base, "rabbitmq-bench-")
        self.n = nodes
        self.procs = {}
        self.epmd = None

    @classmethod
    def missing(cls):
        if not os.path.exists(f"{cls.SBIN}/rabbitmq-server"):
            return "rabbitmq-server is not installed"
        if not shutil.which("epmd"):
            return "epmd (erlang-base) is not installed"
        return None

    def node(self, i):
        return f"bench{i}@localhost"

    def _env(self, i):
        env = dict(os.environ)
        home = f"{self.dir}/home"
        env.update({
            "HOME": home, "ERL_EPMD_PORT": str(EPMD_PORT),
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{self.dir}/enabled_plugins",
            "RABBITMQ_NODENAME": self.node(i),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(RABBIT_AMQP_BASE + i),
            "RABBITMQ_DIST_PORT": str(RABBIT_DIST_BASE + i),
            "RABBITMQ_MNESIA_BASE": f"{self.dir}/n{i}/mnesia",
            "RABBITMQ_LOG_BASE": f"{self.dir}/n{i}/log",
            "RABBITMQ_CONFIG_FILE": f"{self.dir}/n{i}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{self.dir}/n{i}/advanced.config",
            "RABBITMQ_CONF_ENV_FILE": f"{self.dir}/n{i}/rabbitmq-env.conf",
            "RABBITMQ_PID_FILE": f"{self.dir}/n{i}/pid",
            "RABBITMQ_PLUGINS_EXPAND_DIR": f"{self.dir}/n{i}/plugins-expand",
        })
        return env

    def start(self):
        home = f"{self.dir}/home"
        os.makedirs(home)
        cookie = f"{home}/.erlang.cookie"
        with open(cookie, "w") as f:
            f.write("RAFTMQBENCH" + os.urandom(8).hex().upper())
        os.chmod(cookie, 0o400)
        with open(f"{self.dir}/enabled_plugins", "w") as f:
            f.write("[].\n")
        env = dict(os.environ, ERL_EPMD_PORT=str(EPMD_PORT))
        self.epmd = procs.start_server("epmd", ["epmd", "-port", str(EPMD_PORT), "-address",
                                                "127.0.0.1"], f"{self.dir}/epmd.log", env=env)
        for i in range(1, self.n + 1):
            os.makedirs(f"{self.dir}/n{i}")
            with open(f"{self.dir}/n{i}/rabbitmq.conf", "w") as f:
                f.write(f"listeners.tcp.default = 127.0.0.1:{RABBIT_AMQP_BASE + i}\n"
                        "loopback_users = none\n")
                if i > 1:
                    f.write("cluster_formation.peer_discovery_backend = classic_config\n"
                            f"cluster_formation.classic_config.nodes.1 = {self.node(1)}\n")
            open(f"{self.dir}/n{i}/rabbitmq-env.conf", "w").close()
        self._start_node(1)
        if not procs.wait_port(RABBIT_AMQP_BASE + 1, 240):
            raise RuntimeError(f"RabbitMQ node 1 did not open AMQP in 240 s ({self.dir}/n1)")
        for i in range(2, self.n + 1):
            self._start_node(i)
        for i in range(2, self.n + 1):
            if not procs.wait_port(RABBIT_AMQP_BASE + i, 240):
                raise RuntimeError(f"RabbitMQ node {i} did not open AMQP in 240 s ({self.dir}/n{i})")
        self._await_members(120)

    def _start_node(self, i):
        self.procs[i] = procs.start_server(f"rabbitmq-{i}", [f"{self.SBIN}/rabbitmq-server"],
                                           f"{self.dir}/n{i}/stdout.log", env=self._env(i),
                                           cwd=self.dir)

    def _await_members(self, timeout):
        """Node 1's log says `rabbit on node benchN@localhost up` once N has joined."""
        log = f"{self.dir}/n1/log/{self.node(1)}.log"
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(log, errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            if all(f"rabbit on node {self.node(i)} up" in text for i in range(2, self.n + 1)):
                return
            time.sleep(0.5)
        raise RuntimeError(f"RabbitMQ nodes did not form one cluster in {timeout} s ({log})")

    def pids(self):
        return {f"rabbitmq-{i}": p.pid for i, p in self.procs.items()}

    def version(self):
        return "rabbitmq-server " + package_version("rabbitmq-server")

    def stop(self):
        for p in self.procs.values():
            procs.stop_server(p, grace=15)
        if self.epmd:
            procs.stop_server(self.epmd)
