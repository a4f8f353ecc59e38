"""``make console``: the web console over the demo's local stack, until Ctrl-C.

Starts what ``make demo`` starts (the Pub/Sub emulator, moto, the metadata stand-in, the
topology and ``email-worker pull``), publishes the demo's five requests so that the ledger
holds sent ones and the dead-letter subscription holds three dead letters, then runs
``email-worker console`` on a free loopback port and prints its URL. Everything runs until
Ctrl-C (or SIGTERM), which stops all of it. Nothing is replayed: that is for you to do in
the console (verify the sender first: the dead letter's page says so).
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from demo.__main__ import (
    BIN,
    PROJECT,
    ROOT,
    Demo,
    check_prerequisites,
    heading,
    process,
    send_five_requests,
)

#: How long the console may take to answer once started.
CONSOLE_START_S = 30.0


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(port: int) -> bool:
    """Whether the console on ``port`` serves its home page."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start_console(demo: Demo, stack: ExitStack, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """``email-worker console`` over the demo's stack; its URL once it answers."""
    port = free_loopback_port()
    env = {**demo.env, "EMAIL_WORKER_CONSOLE_PORT": str(port)}
    env.pop("PORT", None)  # PORT would win over the console's own port
    url = f"http://127.0.0.1:{port}/"
    console = stack.enter_context(process([str(BIN / "email-worker"), "console"], env, log))
    deadline = time.monotonic() + CONSOLE_START_S
    while not answers(port):
        if console.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the console did not start; see {log}")
        time.sleep(0.2)
    return url, console


def run(stack: ExitStack, workdir: Path) -> int:
    demo = Demo(stack, workdir)
    heading("email-worker setup")
    demo.email_worker("setup")
    demo.results = demo.emulator.create_subscription(
        demo.emulator.publisher.topic_path(PROJECT, "email-results"), "demo-results"
    )
    heading(f"email-worker pull (log: {demo.log})")
    worker = stack.enter_context(process([str(BIN / "email-worker"), "pull"], demo.env, demo.log))
    send_five_requests(demo, worker)

    heading(f"email-worker console (log: {workdir / 'console.log'})")
    try:
        url, console = start_console(demo, stack, workdir / "console.log")
    except RuntimeError as error:
        print(f"console: {error}", file=sys.stderr)
        return 1
    print(f"The console: {url}  (Ctrl-C stops the console and the local stack)", flush=True)
    while console.poll() is None and worker.poll() is None:
        time.sleep(0.5)
    print("console: the console or the worker stopped; see their logs", file=sys.stderr)
    return 1


def main() -> int:
    check_prerequisites()
    sys.path.insert(0, str(ROOT))  # the local stack's servers are the tests' support code
    workdir = Path(tempfile.mkdtemp(prefix="email-worker-console-"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with ExitStack() as stack:
            return run(stack, workdir)
    except KeyboardInterrupt:
        print("\nconsole: stopped, with everything it started", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
