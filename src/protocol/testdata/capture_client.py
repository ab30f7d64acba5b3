#!/usr/bin/python3
"""Records the first request frames a real Kafka client sends, as hex golden fixtures.

  capture_client.py OUT.hex -- CLIENT COMMAND (with {port} for the listening port)

Listens on 127.0.0.1 (an ephemeral port), starts the client, reads frames from its first
connection for up to 3 seconds, and writes one line per frame (the payload after the 4-byte
size prefix, in hex). The broker side never answers, so the client sends only what it sends
before any response (librdkafka: ApiVersions; kafka-python: ApiVersions + pipelined Metadata).
Used to produce src/protocol/testdata/*.hex; re-run by hand when updating clients.
"""
import socket
import subprocess
import sys
import time


def main():
    out_path = sys.argv[1]
    cmd = sys.argv[3:]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv.settimeout(10)
    frames = []
    try:
        conn, _ = srv.accept()
        conn.settimeout(0.5)
        buf = b""
        deadline = time.time() + 3
        while time.time() < deadline:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 4:
                n = int.from_bytes(buf[:4], "big")
                if len(buf) < 4 + n:
                    break
                frames.append(buf[4:4 + n])
                buf = buf[4 + n:]
        conn.close()
    finally:
        proc.kill()
        proc.wait()
        srv.close()
    with open(out_path, "w") as f:
        for fr in frames:
            f.write(fr.hex() + "\n")
    print(f"{out_path}: {len(frames)} frame(s)")
    return 0 if frames else 1


if __name__ == "__main__":
    sys.exit(main())
