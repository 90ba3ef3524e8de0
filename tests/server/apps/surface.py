"""Servers for tests/server/test_loggers.py and test_server_surface.py.

    python surface.py logged     loggers (one raises, one cannot be pickled), callbacks
    python surface.py blocked    a logger that waits for $LITSERVE_TEST_GATE

Each listens on 127.0.0.1, port 0; loggers and callbacks append lines to the file named
by $LITSERVE_TEST_LOG: ``<what> <key> <value> pid=<pid>``.
"""

import os
import socket
import sys
import threading
import time
from pathlib import Path

import litserve as ls


def note(*words: object) -> None:
    with open(os.environ["LITSERVE_TEST_LOG"], "a") as f:
        f.write(" ".join(map(str, words)) + f" pid={os.getpid()}\n")


class FileLogger(ls.Logger):
    def process(self, key, value):
        note("logged", key, value)


class RaisingLogger(ls.Logger):
    def process(self, key, value):
        raise RuntimeError(f"this logger always fails ({key})")


class LockedLogger(ls.Logger):
    """Holds an open socket, so it cannot be pickled: re-created in the logger process
    (a lock would travel: litserve.pickling sends locks as fresh ones)."""

    def __init__(self):
        super().__init__()
        self.sock = socket.socket()
        self.lock = threading.Lock()

    def process(self, key, value):
        with self.lock:
            note("locked", key, value)


class GatedLogger(ls.Logger):
    """Waits (once) for the gate file before it processes anything."""

    def process(self, key, value):
        gate = Path(os.environ["LITSERVE_TEST_GATE"])
        while not gate.exists():
            time.sleep(0.01)
        note("logged", key, value)


class Lifecycle(ls.Callback):
    def on_server_start(self, litserver):
        note("callback", "on_server_start", type(litserver).__name__)

    def on_server_end(self, litserver):
        note("callback", "on_server_end", type(litserver).__name__)


class LoggedAPI(ls.LitAPI):
    """Logs what it gets in decode_request and predict (workers), and in health (fronts)."""

    def setup(self, device):
        self.log("setup", device)

    def decode_request(self, request):
        self.log("decoded", request["input"])
        return request["input"]

    def predict(self, x):
        self.log("predicted", x)
        self.log("unpicklable", threading.Lock())  # dropped in this process, counted
        return {"output": x, "pid": os.getpid()}

    def health(self):
        self.log("health", "front")
        return True


class Flood(ls.LitAPI):
    """Logs ``input`` entries 0..n-1 as fast as it can; answers how long that took."""

    def setup(self, device):
        pass

    def predict(self, request):
        start = time.monotonic()
        for i in range(request["input"]):
            self.log("flood", i)
        return {"seconds": time.monotonic() - start, "dropped": self._log_sink.dropped}


def main(mode: str) -> None:
    if mode == "logged":
        server = ls.LitServer(LoggedAPI(), loggers=[FileLogger(), RaisingLogger(),
                                                    LockedLogger()],
                              callbacks=[Lifecycle()])
    else:
        server = ls.LitServer(Flood(), loggers=GatedLogger())
    server.run(host="127.0.0.1", port=0, generate_client_file=False)


if __name__ == "__main__":
    main(sys.argv[1])
