#!/usr/bin/python3
"""Logs the request frames real clients send to a running raftmq broker, for golden fixtures
of requests that need a broker's answers first (group requests: a client sends OffsetFetch or
ListGroups only after ApiVersions, Metadata and FindCoordinator were answered).

  capture_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT [API_KEY,...]

Accepts on 127.0.0.1:LISTEN_PORT, forwards every connection to the broker, and prints each
request frame of the listed API keys (all if none) as `REQ key=K v=V len=N hex=...` (the payload
after the 4-byte size prefix). For the clients to stay on the proxy, the broker must advertise
it: one broker with `--kafka-host 127.0.0.2 --kafka-port P --peers 1@127.0.0.1:RPC:P` and this
proxy on 127.0.0.1:P forwarding to 127.0.0.2:P. How librdkafka_offset_fetch_v7.hex and
librdkafka_list_groups_v4.hex were captured (a confluent-kafka consumer, `raftmq group list`,
and librdkafka's admin ListConsumerGroupOffsets / ListConsumerGroups from a small C program).
Runs until killed.
"""
import binascii
import socket
import struct
import sys
import threading

LOCK = threading.Lock()


def pump(src, dst, wanted, log):
    pending = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if not log:
                continue
            pending += data
            while len(pending) >= 4:
                size = struct.unpack(">i", pending[:4])[0]
                if len(pending) < 4 + size:
                    break
                frame, pending = pending[4:4 + size], pending[4 + size:]
                key, version = struct.unpack(">hh", frame[:4])
                if wanted and key not in wanted:
                    continue
                with LOCK:
                    print("REQ key=%d v=%d len=%d hex=%s" %
                          (key, version, size, binascii.hexlify(frame).decode()), flush=True)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    listen_port = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    wanted = {int(k) for k in sys.argv[3].split(",")} if len(sys.argv) > 3 else set()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, int(port)))
        threading.Thread(target=pump, args=(client, upstream, wanted, True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, wanted, False), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
