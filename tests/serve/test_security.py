"""Privacy defaults: loopback, API key, Host/Origin checks, no CORS, a page with no outside assets."""

from __future__ import annotations

import re
import socket

import pytest

from flashgen.cli import main
from flashgen.serve import ServeConfig


def test_non_loopback_bind_needs_an_api_key():
    with pytest.raises(ValueError, match="--api-key"):
        ServeConfig(host="0.0.0.0")
    ServeConfig(host="0.0.0.0", api_key="k")  # allowed with a key
    ServeConfig(host="::1")  # IPv6 loopback needs none


def test_cli_refuses_non_loopback_without_key_before_loading(capsys, monkeypatch):
    monkeypatch.delenv("FLASHGEN_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--api-key" in err and "loading" not in err


def test_cli_refuses_a_taken_port_before_loading(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_api_key_guards_every_route_but_the_page(make_client):
    client = make_client(api_key="s3cret")
    page = client.get("/")
    assert page.status_code == 200 and '"needsKey": true' in page.text  # the page asks for it
    assert "s3cret" not in page.text
    for path in ("/health", "/openapi.json", "/sdapi/v1/sd-models", "/v1/jobs/x"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 401
    wrong = {"Authorization": "Bearer s3cre"}
    assert client.get("/health", headers=wrong).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/health", headers=good).status_code == 200
    r = client.post("/v1/images/generations", json={"prompt": "x", "steps": 1}, headers=good)
    assert r.status_code == 200


def test_foreign_host_header_is_refused_on_loopback(client):
    # DNS rebinding: a web page's own name resolving to 127.0.0.1 must not reach the API
    assert client.get("/health", headers={"Host": "evil.example:7860"}).status_code == 403
    for host in ("localhost:7860", "127.0.0.1", "[::1]:7860"):
        assert client.get("/health", headers={"Host": host}).status_code == 200, host


def test_cross_origin_requests_are_refused_and_no_cors_headers(client):
    r = client.post("/v1/jobs", json={"prompt": "x"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/health", headers={"Origin": "null"}).status_code == 403
    same = client.get("/health", headers={"Origin": "http://127.0.0.1:7860"})
    assert same.status_code == 200
    pre = client.options(
        "/v1/jobs",
        headers={"Origin": "http://127.0.0.1:7860", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-origin" not in same.headers


def test_page_loads_nothing_from_outside(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = r.text
    # no absolute or protocol-relative URL anywhere: no CDN, web font, analytics or remote image
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), "external URL"
    assert not re.search(r"@import|@font-face|<link[^>]+stylesheet", html, re.IGNORECASE)
    for needle in (
        'id="prompt"',
        'id="negative"',
        'id="steps"',
        'id="seed"',
        'id="dice"',
        'id="size"',
        'id="count"',
        'id="generate"',
        'id="cancel"',
        'id="gallery"',
        'name="viewport"',
    ):
        assert needle in html, needle
