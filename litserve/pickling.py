"""How the user's objects are pickled for the other processes of a server.

LitServe forks its API servers, so a logger holding a Prometheus registry (or anything
else with a ``threading.Lock`` inside) reaches them as is.  Our fronts, workers and the
logger process are spawned and get the user's objects by pickle, and a lock cannot be
pickled.  A lock only guards the process it lives in, so each process gets a fresh,
unlocked one of the same kind: that is all it could mean on the other side.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import cloudpickle

_LOCKS: dict[type, Any] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
}


class _Pickler(cloudpickle.CloudPickler):  # type: ignore[misc]
    def reducer_override(self, obj: Any) -> Any:
        make = _LOCKS.get(type(obj))
        if make is not None:
            return make, ()
        return super().reducer_override(obj)


def dumps(obj: Any) -> bytes:
    """``cloudpickle.dumps``, with every lock inside ``obj`` sent as a fresh lock."""
    with io.BytesIO() as out:
        _Pickler(out, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
        return out.getvalue()
