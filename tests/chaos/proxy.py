#!/usr/bin/python3
"""Per-link TCP proxies for the chaos suite: one listening port per directed broker-to-broker
Raft RPC link (broker i dials broker j through the proxy of link i->j). Runs as its own process
so that the harness's Python threads never slow the forwarding; the harness drives it with one
command per line on stdin and reads one answer per line on stdout:

    mode SRC DST MODE     MODE = up | refuse | drop | blackhole      -> "ok" / "error ..."
    quit

  up         forward bytes both ways
  refuse     close the listener (new connections: ECONNREFUSED) and cut every connection
  drop       cut every connection; new connections are accepted and closed at once
  blackhole  keep connections but forward nothing (bytes wait in the socket buffers, as with
             a silent network: TCP would retransmit them); new connections are accepted and
             connected upstream only when the link heals. Healing resumes the byte stream
             intact, exactly like a network partition that ends.

The transport identifies a peer by the hello (broker ids), not by address, so the proxy is
transparent to the brokers (src/transport/inbound_connection.cc).

    proxy.py LISTEN_HOST SRC:DST:LISTEN_PORT:TARGET_PORT ...

With $RAFTMQ_PROXY_STALL_LOG set, a watchdog thread appends a line to that file whenever the
proxy process could not run for STALL_LOG_MS or more (its 50 ms sleep ended that much late:
the process waited for a CPU or for the interpreter lock, and so did the forwarding):
`proxy stall N ms (until T)`, T in CLOCK_MONOTONIC seconds like the brokers' bracketed times.
The chaos report uses it to explain elections (elections.py).
"""

import os
import socket
import sys
import threading
import time

POLL_S = 0.02
WATCHDOG_S = 0.05
STALL_LOG_MS = 150


class Conn:
    def __init__(self, client):
        self.client = client
        self.upstream = None
        self.dead = False

    def kill(self):
        self.dead = True
        for s in (self.client, self.upstream):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Link:
    def __init__(self, host, src, dst, listen_port, target_port):
        self.host = host
        self.src, self.dst = src, dst
        self.listen_port, self.target_port = listen_port, target_port
        self.mode = "up"
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        self.open_listener()

    def open_listener(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.listen_port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()

    def close_listener(self):
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def set_mode(self, mode):
        with self.lock:
            old = self.mode
            self.mode = mode
            conns = list(self.conns)
        if mode in ("refuse", "drop"):
            for c in conns:
                c.kill()
        if mode == "refuse":
            self.close_listener()
        elif self.listener is None:
            self.open_listener()
        return old

    def accept_loop(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed (refuse)
            if self.mode in ("drop", "refuse"):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()
                continue
            conn = Conn(client)
            with self.lock:
                self.conns.add(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def wait_up(self, conn):
        while self.mode == "blackhole" and not conn.dead:
            time.sleep(POLL_S)
        return not conn.dead and self.mode == "up"

    def serve(self, conn):
        try:
            if not self.wait_up(conn):
                return
            try:
                conn.upstream = socket.create_connection(("127.0.0.1", self.target_port),
                                                         timeout=2)
                conn.upstream.settimeout(None)
            except OSError:
                return
            if conn.dead:
                return
            back = threading.Thread(target=self.pump, args=(conn, conn.upstream, conn.client),
                                    daemon=True)
            back.start()
            self.pump(conn, conn.client, conn.upstream)
            back.join()
        finally:
            conn.kill()
            for s in (conn.client, conn.upstream):
                if s is not None:
                    s.close()
            with self.lock:
                self.conns.discard(conn)

    def pump(self, conn, source, sink):
        try:
            while not conn.dead:
                data = source.recv(65536)
                if not data:
                    break
                if not self.wait_up(conn):
                    break
                sink.sendall(data)
        except OSError:
            pass
        conn.kill()


def watchdog(path):
    """Logs the proxy's own scheduling stalls (see the module comment)."""
    with open(path, "a") as out:
        while True:
            before = time.monotonic()
            time.sleep(WATCHDOG_S)
            now = time.monotonic()
            late_ms = int((now - before - WATCHDOG_S) * 1000)
            if late_ms >= STALL_LOG_MS:
                out.write("proxy stall %d ms (until %.3f)\n" % (late_ms, now))
                out.flush()


def main():
    host = sys.argv[1]
    stall_log = os.environ.get("RAFTMQ_PROXY_STALL_LOG")
    if stall_log:
        threading.Thread(target=watchdog, args=(stall_log,), daemon=True).start()
    links = {}
    for spec in sys.argv[2:]:
        src, dst, listen_port, target_port = (int(x) for x in spec.split(":"))
        links[(src, dst)] = Link(host, src, dst, listen_port, target_port)
    print("ready %d links" % len(links), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            if words[0] != "mode" or len(words) != 4:
                raise ValueError("unknown command: " + line.strip())
            link = links.get((int(words[1]), int(words[2])))
            if link is None:
                raise ValueError("no link %s->%s" % (words[1], words[2]))
            if words[3] not in ("up", "refuse", "drop", "blackhole"):
                raise ValueError("unknown mode " + words[3])
            link.set_mode(words[3])
            print("ok", flush=True)
        except (ValueError, OSError) as e:
            print("error %s" % e, flush=True)


if __name__ == "__main__":
    main()
