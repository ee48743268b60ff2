"""The outbound guard against a real loopback server: which addresses are refused and why, URL checks
without DNS, every resolved address checked at connect time, the connection made to the checked address
(DNS rebinding), redirects followed by hand at most 5 times with each hop checked.

The resolver is the seam: a test injects one to play DNS, since no test may depend on real DNS."""

from __future__ import annotations

import ipaddress

import pytest

from fluxstudio.errors import RefusedUrl
from fluxstudio.outbound import OutboundPolicy, blocked_reason, open_following
from tests.fixtures.receiver import Answer, Receiver

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
        ("172.16.5.4", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved|private"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"), ("2002:a00:1::", "private"),
        ("64:ff9b::7f00:1", "loopback"), ("100.64.0.1", "not a public"), ("fc00::1", "private"),
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = blocked_reason(address)
    assert found is not None and any(word in found for word in reason.split("|")), found


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(address) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a", "file:///etc/passwd", "gopher://example.com/", "http://127.0.0.1/",
     "http://[::ffff:10.0.0.1]/", "http://localhost/", "http:///nohost", "javascript:alert(1)"],
)  # fmt: skip
def test_urls_refused_without_dns(url: str) -> None:
    with pytest.raises(RefusedUrl):
        OutboundPolicy().check_url(url)


def test_an_allowed_network_lets_its_literal_addresses_pass() -> None:
    policy = OutboundPolicy(allowed=LOOPBACK)
    assert policy.check_url("http://127.0.0.1:8080/x").host == "127.0.0.1"
    with pytest.raises(RefusedUrl):
        policy.check_url("http://127.0.0.2:8080/x")


class Dns:
    """A resolver that answers from a script, one answer per call (the last repeats), and counts."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


async def fetch(policy: OutboundPolicy, url: str) -> tuple[int, bytes]:
    async with policy.client() as client, open_following(client, policy, url) as response:
        return response.status_code, await response.aread()


@pytest.fixture
def server(receiver) -> Receiver:
    r: Receiver = receiver()
    r.routes["/file"] = lambda: Answer(200, b"the bytes")
    return r


async def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time(server: Receiver) -> None:
    policy = OutboundPolicy(resolver=Dns(["127.0.0.1"]))
    with pytest.raises(RefusedUrl, match="loopback"):
        await fetch(policy, f"http://files.example:{server.port}/file")
    assert server.requests == []


async def test_every_address_of_a_name_is_checked(server: Receiver) -> None:
    policy = OutboundPolicy(allowed=LOOPBACK, resolver=Dns(["127.0.0.1", "10.0.0.5"]))
    with pytest.raises(RefusedUrl, match="private"):
        await fetch(policy, f"http://files.example:{server.port}/file")
    assert server.requests == []


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(server: Receiver) -> None:
    """DNS rebinding: the first answer is checked and used; a second lookup (which would say 10.0.0.5)
    never happens, and the server sees the URL's own name in Host."""
    dns = Dns(["127.0.0.1"], ["10.0.0.5"])
    policy = OutboundPolicy(allowed=LOOPBACK, resolver=dns)
    assert await fetch(policy, f"http://rebind.example:{server.port}/file") == (200, b"the bytes")
    assert dns.calls == 1
    assert server.requests[0].headers["Host"] == f"rebind.example:{server.port}"


async def test_a_rebinding_name_is_refused_when_its_first_answer_is_private(server: Receiver) -> None:
    dns = Dns(["10.0.0.5"], ["127.0.0.1"])
    with pytest.raises(RefusedUrl):
        await fetch(
            OutboundPolicy(allowed=LOOPBACK, resolver=dns), f"http://rebind.example:{server.port}/file"
        )
    assert server.requests == []


async def test_redirects_are_followed_by_hand_and_each_hop_is_checked(server: Receiver) -> None:
    policy = OutboundPolicy(allowed=LOOPBACK)
    for hop in range(1, 7):
        server.routes[f"/r{hop}"] = lambda hop=hop: Answer(302, headers={"Location": f"/r{hop + 1}"})
    server.routes["/r4"] = lambda: Answer(301, headers={"Location": "/file"})
    assert await fetch(policy, f"{server.url}/r1") == (200, b"the bytes")  # 4 redirects
    server.routes["/r4"] = lambda: Answer(302, headers={"Location": "/r5"})
    server.routes["/r7"] = lambda: Answer(200, b"too far")
    with pytest.raises(RefusedUrl, match="more than 5"):
        await fetch(policy, f"{server.url}/r1")  # 6 redirects
    for location in ("http://169.254.169.254/latest/meta-data/", "ftp://example.com/x", "http://[::1]/"):
        server.routes["/bad"] = lambda location=location: Answer(302, headers={"Location": location})
        with pytest.raises(RefusedUrl):
            await fetch(policy, f"{server.url}/bad")
