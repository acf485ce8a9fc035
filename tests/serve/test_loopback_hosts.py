"""Bound to another loopback address, the server answers on that address and still on no name."""

from __future__ import annotations


def test_the_bound_loopback_address_is_an_accepted_host(make_client):
    client = make_client(host="127.0.0.2")
    for path in ("/", "/health"):
        r = client.get(path, headers={"Host": "127.0.0.2:7860"})
        assert r.status_code == 200, (path, r.text)
    assert client.get("/health", headers={"Host": "127.0.0.2"}).status_code == 200
    for foreign in ("evil.example", "evil.example:7860", "127.0.0.2.evil.example"):
        assert client.get("/health", headers={"Host": foreign}).status_code == 403, foreign
