"""Which address a request came from, when proxies stand in front of the edge.

X-Forwarded-For is a list every hop appends to: `client, proxy1, proxy2`, and the edge sees the last
proxy as its peer. Anyone can send the header with made-up entries on the left, so only entries added
by proxies the operator trusts may be believed:

* `hops=N` (`--trust-proxy N`): the last N hops are the operator's proxies; the client is the Nth
  entry from the right of the header (with 1 proxy: the header's last entry).
* `cidrs` (`--trust-proxy-cidr CIDR`): the peer and every entry inside these networks are the
  operator's proxies; the client is the rightmost entry outside them.

Without either, the peer address is the client, whatever the header says. An entry that is not an IP
address never becomes the client: the nearest trusted address is used instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

MAX_ENTRIES = 32


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ClientAddress:
    def __init__(self, hops: int = 0, cidrs: Iterable[str] = ()) -> None:
        if hops < 0:
            raise ValueError("--trust-proxy takes the number of proxies in front of the edge (0 or more)")
        self.hops = hops
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    @property
    def trusts_proxies(self) -> bool:
        return bool(self.hops or self.networks)

    def _trusted(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr in net for net in self.networks)

    def resolve(self, peer: str | None, forwarded: list[str]) -> str:
        """The client's address, as text. `forwarded`: every X-Forwarded-For field value, in order."""
        peer_text = peer or "unknown"
        if not self.trusts_proxies or not forwarded:
            return peer_text
        entries = [e for value in forwarded for e in value.split(",")][-MAX_ENTRIES:]
        chain = [*entries, peer_text]
        if self.networks:
            peer_ip = _ip(peer_text)
            if peer_ip is None or not self._trusted(peer_ip):
                return peer_text  # not one of our proxies: its header means nothing
            client = peer_text
            for entry in reversed(entries):
                addr = _ip(entry)
                if addr is None:
                    return client
                client = str(addr)
                if not self._trusted(addr):
                    return client
            return client
        if len(chain) <= self.hops:
            candidate = chain[0]
        else:
            candidate = chain[-(self.hops + 1)]
        addr = _ip(candidate)
        if addr is not None:
            return str(addr)
        for entry in reversed(chain[-self.hops :]):  # the nearest trusted hop that is an address
            addr = _ip(entry)
            if addr is not None:
                return str(addr)
        return peer_text
