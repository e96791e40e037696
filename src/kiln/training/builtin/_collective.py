"""How the hosts of a built-in xgboost or lightgbm job find each other and agree before training.

The runner gives every host ``KILN_HOST_ADDRESSES`` (``{"algo-1": ip, ...}``) and
``KILN_DIST_PORT``, a port it found free on ``algo-1``'s machine. ``algo-1`` listens there;
every other host connects, and each sends one JSON object: what the libraries need to connect
(XGBoost's tracker port from ``algo-1``, each host's LightGBM listen port) and what the hosts
must agree on (the labels each shard holds, so that classes and the objective are the same
everywhere). ``algo-1`` answers every host with all of them, in host order. Nothing here waits
longer than ``KILN_DIST_TIMEOUT_S`` (300 s by default): a peer that never comes ends the host
with a reason naming it, never a hang.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.training.builtin._base import BuiltinError
from kiln.training.builtin._env import TrainingEnv

__all__ = ["Peers", "free_port", "label_set", "peers"]

PORT_ENV = "KILN_DIST_PORT"
ADDRESSES_ENV = "KILN_HOST_ADDRESSES"
TIMEOUT_ENV = "KILN_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
# More distinct numeric labels than this are a regression target: hosts need not agree on them.
_MAX_LABELS = 10_000


@dataclass(frozen=True)
class Peers:
    """This host among the job's hosts: who they are, where ``algo-1`` listens, how long to wait."""

    hosts: list[str]
    current: str
    addresses: dict[str, str]
    port: int
    timeout_s: float

    @property
    def leader(self) -> bool:
        return self.current == self.hosts[0]

    @property
    def address(self) -> str:
        return self.addresses[self.current]

    def exchange(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every host's ``payload``, in host order (an all-gather through ``algo-1``).

        Raises:
            BuiltinError: a peer did not come, or broke off, within the time limit.
        """
        deadline = time.monotonic() + self.timeout_s
        if self.leader:
            return self._serve(dict(payload), deadline)
        return self._join(dict(payload), deadline)

    def _serve(self, payload: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
        got: dict[str, dict[str, Any]] = {self.current: payload}
        conns: list[socket.socket] = []
        with socket.create_server((self.address, self.port), reuse_port=False) as server:
            try:
                while len(got) < len(self.hosts):
                    server.settimeout(max(deadline - time.monotonic(), 0.01))
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        missing = [h for h in self.hosts if h not in got]
                        raise BuiltinError(
                            f"{', '.join(missing)} did not join {self.current} within {self.timeout_s:g} s "
                            f"(listening on {self.address}:{self.port})"
                        ) from None
                    conn.settimeout(max(deadline - time.monotonic(), 0.01))
                    message = _receive(conn)
                    got[str(message["host"])] = message["payload"]
                    conns.append(conn)
                everyone = [got[h] for h in self.hosts]
                for conn in conns:
                    conn.sendall(json.dumps(everyone).encode() + b"\n")
            finally:
                for conn in conns:
                    conn.close()
        return everyone

    def _join(self, payload: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
        leader = self.hosts[0]
        where = (self.addresses[leader], self.port)
        while True:
            try:
                conn = socket.create_connection(where, timeout=max(deadline - time.monotonic(), 0.01))
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise BuiltinError(
                        f"{self.current} could not reach {leader} at {where[0]}:{where[1]} within {self.timeout_s:g} s"
                    ) from None
                time.sleep(0.1)
        with conn:
            conn.sendall(json.dumps({"host": self.current, "payload": payload}).encode() + b"\n")
            conn.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                return list(_receive(conn))
            except BuiltinError:
                raise BuiltinError(f"{leader} broke off before every host had joined (it may have failed)") from None


def _receive(conn: socket.socket) -> Any:
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise BuiltinError("a host sent nothing before the time limit") from None
    if not data.endswith(b"\n"):
        raise BuiltinError("a host broke off the exchange")
    return json.loads(data)


def peers(env: TrainingEnv, environ: Mapping[str, str] | None = None) -> Peers | None:
    """The job's hosts, or None for a one-host job.

    Raises:
        BuiltinError: several hosts but no ``KILN_HOST_ADDRESSES`` / ``KILN_DIST_PORT`` (the job
            was not started by Kiln's runner), or values that are not what the runner writes.
    """
    if len(env.hosts) < 2:
        return None
    environ = os.environ if environ is None else environ
    raw_addresses, raw_port = environ.get(ADDRESSES_ENV), environ.get(PORT_ENV)
    if not raw_addresses or not raw_port:
        raise BuiltinError(
            f"{len(env.hosts)} hosts train together only when {ADDRESSES_ENV} and {PORT_ENV} say where they "
            "are (Kiln's runner sets both); run with instance_count 1 otherwise"
        )
    try:
        addresses = {str(k): str(v) for k, v in json.loads(raw_addresses).items()}
        port = int(raw_port)
        timeout = float(environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except (ValueError, AttributeError):
        raise BuiltinError(f"{ADDRESSES_ENV} must be a JSON object and {PORT_ENV} a port number") from None
    missing = [h for h in env.hosts if not addresses.get(h)]
    if missing:
        raise BuiltinError(f"{ADDRESSES_ENV} has no address for {', '.join(missing)}")
    return Peers(hosts=list(env.hosts), current=env.current_host, addresses=addresses, port=port, timeout_s=timeout)


def free_port(address: str) -> int:
    """A port the OS finds free on ``address`` now (the library binds it a moment later)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def label_set(y: Any) -> dict[str, Any]:
    """What a host tells its peers of its labels: their distinct values, unless there are too
    many to be classes (then only that)."""
    import numpy as np

    if y.dtype == object:
        return {"strings": True, "values": sorted({str(v) for v in y})}
    values = np.unique(y)
    return {"strings": False, "values": None if values.size > _MAX_LABELS else values.tolist()}


def agreed_labels(sets: list[dict[str, Any]], local: Any) -> Any:
    """The distinct labels of every host's shard together, as an array of the local labels'
    kind; the local labels when some host has more than can be classes (a regression target)."""
    import numpy as np

    if any(s["values"] is None for s in sets):
        return local
    if any(s["strings"] for s in sets):
        return np.asarray(sorted({str(v) for s in sets for v in s["values"]}), dtype=object)
    return np.unique(np.asarray([v for s in sets for v in s["values"]], dtype=np.float64))
