#!/usr/bin/python3
"""Runs node/roundtrip.js (kafkajs 2.2.4) against a 3-broker raftmq cluster and checks what it
produced and read back (content and per-partition order)."""

import json
import os
import subprocess
import sys

import harness

NODE_DIR = os.path.join(harness.HERE, "node")


def main():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "kafkajs")):
        print("FAIL: kafkajs not installed; run `npm ci` in tests/integration/node "
              "(scripts/test does)", flush=True)
        return 1
    with harness.Cluster() as cluster:
        env = dict(os.environ, BOOTSTRAP=cluster.bootstrap)
        out = subprocess.run(["node", "roundtrip.js"], cwd=NODE_DIR, env=env,
                             capture_output=True, timeout=240)
        if out.returncode != 0:
            raise RuntimeError("kafkajs failed: %s" % out.stderr.decode(errors="replace"))
        result = json.loads(out.stdout)
        for topic, data in result.items():
            produced = [tuple(m) for m in data["produced"]]
            consumed = [tuple(m) for m in data["consumed"]]
            harness.check_roundtrip(produced, consumed)
            harness.log("kafkajs", topic, "round-trips")
    print("PASS test_kafkajs")


if __name__ == "__main__":
    sys.exit(main())
