"""Make sure the PostgreSQL and Redis the tests use are up (start them when installed but down).

The tests never skip for a missing service: they fail and say so. This only saves a
newcomer the restart commands on a machine where the services exist but are stopped.
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import sys
import time

REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
               "--appendonly", "no"]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(name: str, port: int, command: list[str]) -> None:
    if listening(port):
        return
    if shutil.which(command[0]) is None:
        print(f"services: {name} is not running on 127.0.0.1:{port} and '{command[0]}' is not installed; "
              "the tests that need it will fail and say so", file=sys.stderr)
        return
    print(f"services: starting {name}: {' '.join(command)}")
    subprocess.run(command, check=False)
    for _ in range(50):
        if listening(port):
            return
        time.sleep(0.2)
    print(f"services: {name} did not come up on port {port}", file=sys.stderr)


def main() -> None:
    start("Redis", 6379, REDIS_START)
    versions = sorted(glob.glob("/etc/postgresql/*"))
    if versions:
        version = versions[-1].rsplit("/", 1)[-1]
        start("PostgreSQL", 5432, ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
    elif not listening(5432):
        print("services: PostgreSQL is not running on 127.0.0.1:5432 (set CC_TEST_PG_URL to use another)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
