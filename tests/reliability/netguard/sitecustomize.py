"""Network guard for the offline tests: imported at start-up by every Python process whose
PYTHONPATH holds this folder (Python imports `sitecustomize` automatically).

Any connect or datagram send to a non-loopback address, and any host-name lookup other than
`localhost`, is refused with an OSError *and* written to $FLASHGEN_NETGUARD_LOG, so an attempt
that a library catches and swallows (hub clients do) still fails the test that reads the log.
Unix sockets, netlink and loopback (127.0.0.0/8, ::1) are allowed: the server under test listens
there. This is the second layer; the first is an empty network namespace (`unshare -n`).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import traceback

LOG = os.environ.get("FLASHGEN_NETGUARD_LOG")
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlocked(OSError):
    """Raised instead of any network access that could leave this machine."""


def is_loopback_host(host) -> bool:
    if host is None:  # getaddrinfo(None, port): the local wildcard, no lookup
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in LOCAL_NAMES or host == "":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolving it is a DNS lookup
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def allowed(family, address) -> bool:
    """The policy: True for Unix/netlink sockets and loopback addresses, False for the rest."""
    inet = (socket.AF_INET, socket.AF_INET6)
    if family not in inet:
        return True  # AF_UNIX, AF_NETLINK, ...: never leave the machine
    if not isinstance(address, tuple) or not address:
        return False
    return is_loopback_host(address[0])


def _blocked(what: str):
    if LOG:
        stack = "".join(traceback.format_stack(limit=8)[:-2])
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(f"BLOCKED pid={os.getpid()} {what}\n{stack}\n")
    raise NetworkBlocked(
        errno.ENETUNREACH, f"network access blocked by the flashgen test guard: {what}"
    )


def install() -> None:
    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex
    real_sendto, real_sendmsg = cls.sendto, cls.sendmsg

    def connect(self, address):
        if not allowed(self.family, address):
            _blocked(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not allowed(self.family, address):
            _blocked(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1] if args else None
        if not allowed(self.family, address):
            _blocked(f"sendto {address!r}")
        return real_sendto(self, data, *args)

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
        if address is not None and not allowed(self.family, address):
            _blocked(f"sendmsg {address!r}")
        if address is None:
            return real_sendmsg(self, buffers, ancdata, flags)
        return real_sendmsg(self, buffers, ancdata, flags, address)

    cls.connect, cls.connect_ex, cls.sendto, cls.sendmsg = connect, connect_ex, sendto, sendmsg

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not is_loopback_host(host):
            _blocked(f"DNS lookup {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        real = getattr(socket, name)

        def lookup(host, *args, _real=real, _name=name):
            if not is_loopback_host(host):
                _blocked(f"{_name} {host!r}")
            return _real(host, *args)

        setattr(socket, name, lookup)

    real_getnameinfo = socket.getnameinfo

    def getnameinfo(sockaddr, flags):
        if not is_loopback_host(sockaddr[0]):
            _blocked(f"reverse lookup {sockaddr!r}")
        return real_getnameinfo(sockaddr, flags)

    socket.getnameinfo = getnameinfo
    socket.flashgen_netguard = True


if os.environ.get("FLASHGEN_NETGUARD", "1") != "0":
    install()
