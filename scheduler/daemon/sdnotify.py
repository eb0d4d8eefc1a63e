"""systemd's notification protocol (sd_notify) without a dependency.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET``; a leading ``@`` names a socket in the abstract namespace. Outside systemd the
variable is unset and every call is a no-op, so the daemon calls these unconditionally.

Policy: notifications are advisory. A failure to send never raises into the caller (a daemon
that cannot tell systemd it is ready will be restarted by systemd anyway); the first failure is
logged as a warning, later ones at debug level so a broken socket cannot flood the journal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("scheduler.sdnotify")

# A send blocks only while PID 1's receive queue is full; never hold the event loop longer.
_SEND_TIMEOUT = 0.5


def _socket_address(value: str) -> str | None:
    """The address to ``sendto`` for a ``$NOTIFY_SOCKET`` value, or None if we cannot use it.

    Absolute paths and ``@abstract`` names are supported; other forms (``vsock:`` for virtual
    machines) are not, and disable notifications.
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages to one socket; every method is safe to call without systemd."""

    def __init__(self, notify_socket: str | None) -> None:
        self._raw = notify_socket or None
        self._address = _socket_address(notify_socket) if notify_socket else None
        self._sock: socket.socket | None = None
        self._warned = False
        if self._raw and self._address is None:
            self._warn(f"unsupported NOTIFY_SOCKET {self._raw!r}; systemd will not be notified")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (a disabled one when it is unset)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram; keys are upper-cased (``ready=1``).

        Newlines inside a value would end the field early, so they become spaces. Returns
        whether the datagram was handed to the socket.
        """
        if self._address is None or not fields:
            return False
        lines = (f"{key.upper()}={_one_line(str(value))}" for key, value in fields.items())
        data = ("\n".join(lines) + "\n").encode()
        try:
            self._socket().sendto(data, self._address)
        except OSError as exc:
            self._warn(f"cannot notify systemd at {self._raw!r}: {exc}")
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete: systemd starts ordering dependants after us."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def stopping(self) -> bool:
        """Shutdown has begun (before draining, so systemd shows "deactivating")."""
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """A reload has begun; send :meth:`ready` when it ends, whether it succeeded or not.

        ``MONOTONIC_USEC`` (CLOCK_MONOTONIC) is what systemd 253+ requires with
        ``Type=notify-reload`` to tell this reload from an older one; earlier versions ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def watchdog(self) -> bool:
        """Keep-alive ping; systemd restarts the service when these stop for ``WatchdogSec``."""
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.settimeout(_SEND_TIMEOUT)
            self._sock = sock
        return self._sock

    def _warn(self, message: str) -> None:
        log.log(logging.DEBUG if self._warned else logging.WARNING, message)
        self._warned = True


def _one_line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def watchdog_interval(
    environ: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled advises.

    None when the watchdog is off: the variable is unset, not a positive integer, or
    ``$WATCHDOG_PID`` is set and names another process (the variable was inherited, not meant
    for us).
    """
    env = os.environ if environ is None else environ
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2_000_000


async def watchdog_loop(notifier: Notifier, interval: float) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds until cancelled.

    The pings come from the event loop itself, never from a thread: if a callback blocks the
    loop, the pings stop and systemd restarts the wedged daemon, which is the point.
    """
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
