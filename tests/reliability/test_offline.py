"""Offline by construction, proven: generate, serve (one request), eval, train and distill all work
with no network at all, and nothing in the package phones home.

Two layers: the session runs in a fresh network namespace (`unshare --net`: only a loopback
interface exists, so no packet can leave), and every Python process in it imports the netguard
sitecustomize, which refuses and logs any non-loopback connect and any DNS lookup (so an attempt
a library swallows still fails the test). The environment carries no HF_*/TRANSFORMERS_* variable
and empty caches: flashgen must set itself offline and find everything locally.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import socket
from pathlib import Path

import pytest
from offline_session import PROBE_IP, PROBE_NAME
from reliability_helpers import HOSTILE_ENV, NETGUARD_DIR, REPO, netns_prefix, run_sandboxed

SRC = REPO / "src" / "flashgen"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """Run tests/reliability/offline_session.py in the sandbox once; (report, guard log lines)."""
    tmp = tmp_path_factory.mktemp("offline")
    work = tmp / "work"
    work.mkdir()
    proc = run_sandboxed([str(Path(__file__).with_name("offline_session.py")), str(work)], tmp, 900)
    report_file = work / "report.json"
    assert proc.returncode == 0 and report_file.is_file(), proc.stderr[-4000:]
    log = tmp / "netguard.log"
    blocked = (
        [ln for ln in log.read_text().splitlines() if ln.startswith("BLOCKED")]
        if log.is_file()
        else []
    )
    return json.loads(report_file.read_text()), blocked, log


def _ok(part: dict) -> None:
    assert part["rc"] == 0, f"{part['argv']} exited {part['rc']}:\n{part['stderr']}"
    assert part.get("wrote", True), f"{part['argv']} wrote nothing:\n{part['stderr']}"


def test_the_sandbox_has_no_network(session):
    report, blocked, _ = session
    assert report["guard"], "the netguard sitecustomize was not imported"
    assert report["hub_env_at_start"] == HOSTILE_ENV  # flashgen must override these itself
    prefix, why = netns_prefix()
    if not prefix:
        pytest.skip(f"network namespace layer unavailable: {why}")
    assert report["interfaces"] == ["lo"]
    probe = report["probe"]
    assert probe["connect"].startswith("NetworkBlocked") and probe["dns"].startswith(
        "NetworkBlocked"
    )
    assert any(PROBE_IP in ln for ln in blocked) and any(PROBE_NAME in ln for ln in blocked)


def test_generate_offline(session):
    report = session[0]
    _ok(report["generate"])
    _ok(report["generate_batch"])


def test_eval_offline(session):
    ev = session[0]["eval"]
    _ok(ev)
    assert ev["result"]["n"] == 2 and 0.0 <= ev["result"]["overall"] <= 1.0


def test_train_offline(session):
    _ok(session[0]["train"])


def test_distill_offline(session):
    _ok(session[0]["distill"])


def test_serve_offline(session):
    serve = session[0]["serve"]
    assert serve["ok"], serve
    assert serve["page_status"] == 200


def test_nothing_tried_the_network(session):
    _, blocked, log = session
    real = [ln for ln in blocked if PROBE_IP not in ln and PROBE_NAME not in ln]
    assert not real, "network access attempted offline:\n" + log.read_text()[-4000:]


def test_server_telemetry_is_off_whatever_the_environment_says(tiny_pipeline, monkeypatch):
    """FastAPI's built-in OpenTelemetry would export request spans and validation-failure logs
    (prompts) to an OTLP endpoint named by the environment; flashgen's server turns it off."""
    from flashgen.serve import create_app

    for key, value in HOSTILE_ENV.items():
        monkeypatch.setenv(key, value)
    app = create_app(tiny_pipeline)
    telemetry = getattr(app, "_telemetry", None)  # FastAPI internals; None: a FastAPI without it
    if telemetry is None:
        pytest.skip("this FastAPI has no built-in telemetry")
    assert not any(telemetry[k] for k in ("tracing", "metrics", "logs", "auto_configure"))
    assert not app._native_telemetry.enabled()


# -- the guard's policy on its own (fast, no sandbox) ------------------------------------------


def _guard_module():
    spec = importlib.util.spec_from_file_location(
        "netguard_policy", NETGUARD_DIR / "sitecustomize.py"
    )
    module = importlib.util.module_from_spec(spec)
    import os

    old = os.environ.get("FLASHGEN_NETGUARD")
    os.environ["FLASHGEN_NETGUARD"] = "0"  # load the policy without patching this process
    try:
        spec.loader.exec_module(module)
    finally:
        if old is None:
            del os.environ["FLASHGEN_NETGUARD"]
        else:
            os.environ["FLASHGEN_NETGUARD"] = old
    return module


@pytest.mark.parametrize(
    "family, address, ok",
    [
        (socket.AF_INET, ("127.0.0.1", 80), True),
        (socket.AF_INET, ("127.8.9.1", 80), True),
        (socket.AF_INET6, ("::1", 80, 0, 0), True),
        (socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0), True),
        (socket.AF_INET, ("localhost", 80), True),
        (socket.AF_UNIX, "/tmp/x.sock", True),
        (socket.AF_INET, ("10.0.0.1", 80), False),
        (socket.AF_INET, ("192.168.1.1", 53), False),
        (socket.AF_INET6, ("2001:db8::1", 443, 0, 0), False),
        (socket.AF_INET, ("huggingface.co", 443), False),
        (socket.AF_INET, ("0.0.0.0", 80), False),
    ],
)
def test_guard_policy(family, address, ok):
    assert _guard_module().allowed(family, address) is ok


# -- nothing phones home: static checks of the package -----------------------------------------

NETWORK_MODULES = {
    "requests",
    "urllib.request",
    "urllib3",
    "http.client",
    "httpx",
    "aiohttp",
    "huggingface_hub",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc.client",
    "websocket",
    "websockets",
    "sentry_sdk",
    "posthog",
    "mixpanel",
    "analytics",
    "wandb",
    "comet_ml",
    "neptune",
}
SOCKET_ALLOWED = {"cli/serve.py"}  # binds the listening socket before loading the model
PHONE_HOME_WORDS = re.compile(
    r"telemetry|analytics|posthog|sentry|mixpanel|segment\.io|google-analytics|gtag\(|"
    r"update[_ -]?check|check_for_update|latest[_ -]version|pypi\.org",
    re.IGNORECASE,
)
LOOPBACK_URL = re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\]|\{[^}]*\})[:/]")
URL = re.compile(r"(https?:|wss?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+", re.IGNORECASE)
DATA_SUFFIXES = (".html", ".js", ".css", ".json", ".toml", ".txt", ".jsonl")


def _py_files():
    return sorted(p for p in SRC.rglob("*.py"))


def _docstring_nodes(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_no_network_client_or_telemetry_imports():
    bad = []
    for path in _py_files():
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name in NETWORK_MODULES or name.split(".")[0] in NETWORK_MODULES - {"http"}:
                    bad.append(f"{rel}:{node.lineno} imports {name}")
                if name.split(".")[0] == "socket" and rel not in SOCKET_ALLOWED:
                    bad.append(f"{rel}:{node.lineno} imports socket")
    assert not bad, "network clients in the package:\n" + "\n".join(bad)


def _switch_off_lines(tree) -> set[int]:
    """Lines of functions named *telemetry_off*: the code that turns libraries' telemetry off."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and "telemetry_off" in node.name:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def test_no_phone_home_code_or_external_urls_in_code():
    bad = []
    for path in _py_files():
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        tree = ast.parse(text, str(path))
        allowed = _switch_off_lines(tree)
        for i, line in enumerate(text.splitlines(), 1):
            # the only allowed mentions switch the libraries' own telemetry off
            if not PHONE_HOME_WORDS.search(line) or i in allowed:
                continue
            if not re.search(r"DISABLE_TELEMETRY|\b_telemetry_off\(\)", line):
                bad.append(f"{rel}:{i}: {line.strip()}")
        docs = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
            ):
                for m in URL.finditer(node.value):
                    if m.group(1) and not LOOPBACK_URL.match(node.value[m.start() :]):
                        bad.append(f"{rel}:{node.lineno}: URL {m.group(0)!r}")
    assert not bad, "phone-home code or external URLs:\n" + "\n".join(bad)


def test_package_data_and_web_page_reference_no_external_url():
    bad = []
    for path in sorted(SRC.rglob("*")):
        if path.suffix not in DATA_SUFFIXES or "configs" in path.relative_to(SRC).parts:
            continue
        text = path.read_text(errors="replace")
        for m in URL.finditer(text):
            if m.group(1) is None and path.suffix not in (".html", ".js", ".css"):
                continue  # a bare //x.y in data is not a link; in a page it is protocol-relative
            if not LOOPBACK_URL.match(text[m.start() :]):
                bad.append(f"{path.relative_to(SRC)}: {m.group(0)!r}")
        if path.suffix == ".html":
            for tag in re.findall(
                r"<(?:script|link|img|iframe|source)\b[^>]*>", text, re.IGNORECASE
            ):
                if re.search(r"\b(src|href)\s*=\s*[\"']?(https?:|//)", tag, re.IGNORECASE):
                    bad.append(f"{path.relative_to(SRC)}: {tag}")
    assert not bad, "external references in shipped files:\n" + "\n".join(bad)
