"""A real nginx in front of a small service, asking keyledger about every request.

nginx's ``auth_request`` sends each request's key headers, method and URI to
``GET /v1/auth/check``; keyledger (the Procfile's server, ``KEYLEDGER_TRUSTED_PROXIES=1``)
answers 200 with who the caller is, or 401/403/429/503. The service behind
nginx (an ``http.server`` thread) echoes the identity headers it received.

``auth_request`` passes only 2xx, 401 and 403 through; any other status of the
check becomes a 500. ``KEYLEDGER_LOCATIONS`` below is the configuration the
docs/integrators.md shows: it keeps keyledger's status with ``auth_request_set`` and turns
the 500 back into keyledger's 429 (with ``Retry-After``) or 503 in an
``error_page`` location. ``test_without_the_error_page_nginx_turns_a_429_into_a_500``
shows why that is needed.

nginx is the Debian package ``nginx-light`` (``apt-get install nginx-light``);
without it these tests fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.e2e.harness import (
    MINTED,
    ROOT,
    Process,
    Stack,
    Tenant,
    WebServer,
    forge,
    free_port,
    key_id_of,
    unique_key_name,
    wait_for,
)

pytestmark = pytest.mark.e2e

#: The rate limit of the keyledger behind the rate-limited nginx server.
LIMIT = 3
IDENTITY = ("X-Account-Id", "X-Api-Key-Name", "X-User-Id", "X-User-Role")
TIMEOUT = 15.0


# -- nginx -------------------------------------------------------------------------------------
def nginx_binary() -> str:
    """nginx on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        pytest.fail(
            "nginx is not installed: these end-to-end tests need a real nginx with the "
            "auth_request module. Install the Debian package nginx-light "
            "(sudo apt-get install -y nginx-light) and run them again.",
            pytrace=False,
        )
    return found


def readme_config() -> tuple[str, str]:
    """The nginx block of docs/integrators.md, as written: its ``upstream`` (for the http block) and
    its locations (for a server block), with the addresses made placeholders: ``{keyledger}``
    is keyledger's address (host:port), ``{name}`` the upstream's name (one per keyledger
    here), ``{upstream}`` the protected service's. That configuration is what these
    tests run, so the two cannot drift apart."""
    guide = (ROOT / "docs" / "integrators.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", guide, re.DOTALL)
    assert len(blocks) == 1, "docs/integrators.md should show exactly one nginx configuration"
    found = re.fullmatch(r"(.*?\nupstream keyledger \{.*?\n\}\n)(.*)", blocks[0], re.DOTALL)
    assert found, "the nginx block of docs/integrators.md starts with 'upstream keyledger { ... }'"
    upstream, locations = found.groups()
    assert upstream.count("127.0.0.1:8080") == 1 and locations.count("127.0.0.1:9000") == 1
    assert locations.count("http://keyledger/") == 1
    upstream = upstream.replace("127.0.0.1:8080", "{keyledger}").replace(
        "upstream keyledger", "upstream {name}"
    )
    locations = locations.replace("http://keyledger/", "http://{name}/").replace(
        "127.0.0.1:9000", "{upstream}"
    )
    return upstream, locations


KEYLEDGER_UPSTREAM, KEYLEDGER_LOCATIONS = readme_config()

#: The same without the error_page mapping: what nginx does by itself.
UNMAPPED_LOCATIONS = r"""
    location = /_keyledger {
        internal;
        proxy_pass http://{keyledger}/v1/auth/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-For $remote_addr;
    }

    location / {
        auth_request /_keyledger;
        proxy_set_header x-api-key "";
        proxy_set_header x-api-secret-key "";
        proxy_pass http://{upstream};
    }
"""


def server_block(port: int, locations: str, keyledger: str, upstream: str) -> str:
    """docs/integrators.md's upstream for ``keyledger``, and a server with ``locations`` using it."""
    name = f"keyledger_{port}"
    body = (
        locations.replace("{keyledger}", keyledger)
        .replace("{name}", name)
        .replace("{upstream}", upstream)
    )
    pool = KEYLEDGER_UPSTREAM.replace("{keyledger}", keyledger).replace("{name}", name)
    return f"""
{pool}
  server {{
    listen 127.0.0.1:{port};
    location = /_nginx_ready {{ return 204; }}
{body}
  }}
"""


def nginx_conf(workdir: Path, servers: list[str]) -> str:
    # As root, nginx runs its workers as 'nobody', which cannot reach pytest's private
    # temporary directory: run them as root (these files are the test's own).
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"  {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  # No query strings in the access log: a client may put keys there.
  log_format path_only '$remote_addr "$request_method $uri" $status $request_time';
  access_log {workdir / "access.log"} path_only;
{temp}
{"".join(servers)}
}}
"""


@dataclass
class Gateway:
    process: Process
    workdir: Path
    main: str  # KEYLEDGER_LOCATIONS in front of the keyledger without rate limit
    limited: str  # KEYLEDGER_LOCATIONS in front of a keyledger with LIMIT per minute
    unmapped: str  # UNMAPPED_LOCATIONS in front of the same rate-limited keyledger
    no_redis: str  # KEYLEDGER_LOCATIONS in front of a keyledger whose Redis is down

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


# -- the service behind nginx ---------------------------------------------------------------------
@dataclass
class Upstream:
    url: str
    server: ThreadingHTTPServer
    seen: list[dict[str, Any]] = field(default_factory=list)

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        return self.seen[mark:]


def start_upstream() -> Upstream:
    seen: list[dict[str, Any]] = []
    FORWARDED = ("X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto")

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            record = {
                "method": self.command,
                "path": self.path,
                "identity": {name: self.headers.get(name) for name in IDENTITY},
                "headerNames": sorted({name.lower() for name in self.headers}),
                "forwarded": {name: self.headers.get(name) for name in FORWARDED},
            }
            seen.append(record)
            body = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Upstream(f"127.0.0.1:{server.server_address[1]}", server, seen)


# -- fixtures ---------------------------------------------------------------------------------------
@dataclass
class Keyledgers:
    main: WebServer
    limited: WebServer
    no_redis: WebServer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(
    redis_url: str, e2e_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """This module's stack: keyledger trusts one proxy hop (nginx)."""
    nginx_binary()  # fail first, and clearly, when nginx is missing
    running = Stack(redis_url, tmp_path_factory.mktemp("nginx_forward_auth"))
    try:
        projector = running.start_projector(wait=False)
        running.web = running.start_web(KEYLEDGER_TRUSTED_PROXIES="1")
        running.wait_consuming(projector)
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="module")
def keyledgers(stack: Stack) -> Keyledgers:
    assert stack.web is not None
    limited = stack.start_web(
        "web-limited", KEYLEDGER_TRUSTED_PROXIES="1", KEYLEDGER_RATE_LIMIT_PER_MINUTE=str(LIMIT)
    )
    no_redis = stack.start_web(
        "web-no-redis",
        workers=1,
        KEYLEDGER_TRUSTED_PROXIES="1",
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        KEYLEDGER_REDIS_TIMEOUT_MS="300",
    )
    return Keyledgers(stack.web, limited, no_redis)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    service = start_upstream()
    yield service
    service.server.shutdown()
    service.server.server_close()


def address(web: WebServer) -> str:
    return web.url.removeprefix("http://")


@pytest.fixture(scope="module")
def gateway(stack: Stack, keyledgers: Keyledgers, upstream: Upstream) -> Gateway:
    binary = nginx_binary()
    workdir = stack.workdir / "nginx"
    workdir.mkdir(exist_ok=True)
    MINTED.log_files += [workdir / "error.log", workdir / "access.log"]
    for _attempt in range(3):
        ports = [free_port() for _ in range(4)]
        servers = [
            server_block(ports[0], KEYLEDGER_LOCATIONS, address(keyledgers.main), upstream.url),
            server_block(ports[1], KEYLEDGER_LOCATIONS, address(keyledgers.limited), upstream.url),
            server_block(ports[2], UNMAPPED_LOCATIONS, address(keyledgers.limited), upstream.url),
            server_block(ports[3], KEYLEDGER_LOCATIONS, address(keyledgers.no_redis), upstream.url),
        ]
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_conf(workdir, servers))
        argv = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
        popen, log_path = stack._spawn("nginx", argv, stack.env())
        process = Process("nginx", popen, log_path)
        stack.processes.append(process)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        if ready(process, urls):
            return Gateway(process, workdir, *urls)
        process.stop()  # most likely lost a port to another process: try others
    raise AssertionError(f"nginx did not start:\n{process.log_text()}\n{conf.read_text()}")


def ready(process: Process, urls: list[str]) -> bool:
    def probe() -> bool | None:
        if not process.running:
            return False
        try:
            return all(
                requests.get(f"{url}/_nginx_ready", timeout=1).status_code == 204 for url in urls
            )
        except requests.RequestException:
            return None

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        answer = probe()
        if answer is not None:
            return answer
        time.sleep(0.05)
    return False


def keys(account_key: str | None, secret_key: str | None) -> dict[str, str]:
    headers = {}
    if account_key is not None:
        headers["x-api-key"] = account_key
    if secret_key is not None:
        headers["x-api-secret-key"] = secret_key
    return headers


def via(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    return requests.request(
        method, f"{url}{path}", headers=headers, timeout=TIMEOUT, allow_redirects=False, **kwargs
    )


@dataclass
class Holder:
    name: str
    user_id: str
    secret_key: str


def new_holder(tenant: Tenant, role: str, allowed: list[str] | None = None) -> Holder:
    user_id = tenant.owner_user_id
    if role != "Owner":
        user_id = tenant.owner.add_user(f"{role} Person", role=role)["id"]
    name = unique_key_name(role.lower().replace(" ", "-"))
    secret = tenant.owner.create_key(name, user_id, allowed_source_ips=allowed)["secretKey"]
    return Holder(name, user_id, secret)


# -- allowed ------------------------------------------------------------------------------------------
def test_an_allowed_request_reaches_the_service_with_who_the_caller_is(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    mark = len(upstream.seen)
    response = via(
        gateway.main,
        "POST",
        "/orders/42?expand=items",
        keys(tenant.account_key, tenant.secret_key),
        json={"qty": 1},
    )

    assert response.status_code == 200, response.text
    [seen] = upstream.requests_since(mark)
    assert (seen["method"], seen["path"]) == ("POST", "/orders/42?expand=items")
    assert seen["identity"] == {
        "X-Account-Id": tenant.account_id,
        "X-Api-Key-Name": tenant.key_name,
        "X-User-Id": tenant.owner_user_id,
        "X-User-Role": "Owner",
    }
    assert "x-api-key" not in seen["headerNames"]
    assert "x-api-secret-key" not in seen["headerNames"]


def nginx_connections_to(gateway: Gateway, port: int) -> set[int]:
    """The local ports of nginx's established TCP connections to 127.0.0.1:``port``."""
    nginx = gateway.process.popen.pid
    pids = {nginx} | {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (stat := _read(entry / "stat"))
        and int(stat.rsplit(")", 1)[1].split()[1]) == nginx
    }
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    local_ports = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
            local_ports.add(int(local.split(":")[1], 16))
    return local_ports


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_nginx_keeps_its_connections_to_keyledger_alive_and_reuses_them(
    gateway: Gateway, keyledgers: Keyledgers, tenant: Tenant
) -> None:
    """docs/integrators.md's upstream keeps connections open: checks do not each open a new one."""
    port = int(keyledgers.main.url.rsplit(":", 1)[1])
    headers = keys(tenant.account_key, tenant.secret_key)
    for _ in range(10):
        assert via(gateway.main, "GET", "/orders", headers).status_code == 200
    kept = nginx_connections_to(gateway, port)
    assert kept, "nginx closed every connection to keyledger after its checks"
    for _ in range(20):
        assert via(gateway.main, "GET", "/orders", headers).status_code == 200
    after = nginx_connections_to(gateway, port)
    assert kept & after, f"connections replaced, not reused: {kept} then {after}"
    assert len(after) <= 2  # one nginx worker, sequential checks: one or two connections


def test_identity_headers_sent_by_the_client_are_replaced(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    viewer = new_holder(tenant, "Viewer")
    forged = {"X-Account-Id": "someone-else", "X-User-Role": "Owner", "X-User-Id": "root"}
    mark = len(upstream.seen)

    response = via(
        gateway.main, "GET", "/orders", {**keys(tenant.account_key, viewer.secret_key), **forged}
    )

    assert response.status_code == 200
    [seen] = upstream.requests_since(mark)
    assert seen["identity"]["X-Account-Id"] == tenant.account_id
    assert seen["identity"]["X-User-Role"] == "Viewer"
    assert seen["identity"]["X-User-Id"] == viewer.user_id


# -- denied ---------------------------------------------------------------------------------------------
DENIED: dict[str, Any] = {
    "no keys": lambda t: {},
    "no secret key": lambda t: keys(t.account_key, None),
    "wrong secret": lambda t: keys(t.account_key, forge("klsk", key_id_of(t.secret_key))),
    "unknown keys": lambda t: keys(forge("klak"), forge("klsk")),
    "garbage": lambda t: keys("hello", "world"),
    "keys swapped": lambda t: keys(t.secret_key, t.account_key),
    # nginx drops header names with underscores (underscores_in_headers off)
    "underscored header names": lambda t: {"x_api_key": t.account_key, "x_api_secret_key": t.secret_key},
}  # fmt: skip


@pytest.mark.parametrize("case", DENIED, ids=list(DENIED))
def test_missing_or_wrong_keys_are_401_from_nginx_and_never_reach_the_service(
    case: str, gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    mark = len(upstream.seen)
    response = via(gateway.main, "GET", "/orders", DENIED[case](tenant))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'ApiKey realm="keyledger"'
    assert upstream.requests_since(mark) == []


def test_keys_in_the_query_string_do_not_authenticate(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    mark = len(upstream.seen)
    query = {"x-api-key": tenant.account_key, "x-api-secret-key": tenant.secret_key}
    response = via(gateway.main, "GET", "/orders", params=query)
    assert response.status_code == 401
    assert upstream.requests_since(mark) == []


def test_a_viewer_reads_but_its_writes_are_403(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    viewer = new_holder(tenant, "Viewer")
    headers = keys(tenant.account_key, viewer.secret_key)
    mark = len(upstream.seen)

    assert via(gateway.main, "GET", "/orders", headers).status_code == 200
    assert via(gateway.main, "HEAD", "/orders", headers).status_code == 200
    assert via(gateway.main, "POST", "/orders", headers, json={}).status_code == 403
    assert via(gateway.main, "DELETE", "/orders/1", headers).status_code == 403
    override = {**headers, "X-HTTP-Method-Override": "GET"}
    assert via(gateway.main, "POST", "/orders", override, json={}).status_code == 403

    assert [seen["method"] for seen in upstream.requests_since(mark)] == ["GET", "HEAD"]


def test_the_source_address_is_the_one_nginx_saw_not_the_one_the_client_claims(
    gateway: Gateway, tenant: Tenant
) -> None:
    spoofed = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"}
    elsewhere = new_holder(tenant, "Owner", allowed=["10.0.0.0/8"])
    here = new_holder(tenant, "Owner", allowed=["127.0.0.0/8"])

    refused = via(
        gateway.main,
        "GET",
        "/orders",
        {**keys(tenant.account_key, elsewhere.secret_key), **spoofed},
    )
    allowed = via(
        gateway.main, "GET", "/orders", {**keys(tenant.account_key, here.secret_key), **spoofed}
    )

    assert refused.status_code == 403
    assert allowed.status_code == 200


# -- paths routers disagree on (issue 7, finding 1) ---------------------------------------------------
def raw_get(
    url: str, target: str, headers: dict[str, str], source: str | None = None
) -> tuple[int, bytes]:
    """GET ``target`` byte for byte (HTTP clients normalise dot segments and encodings),
    from the local address ``source`` when given."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bind = (source, 0) if source else None
    with socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=bind) as sock:
        head = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


@pytest.fixture(scope="module")
def holders(tenant: Tenant) -> dict[str, Holder]:
    return {role: new_holder(tenant, role) for role in ("Viewer", "Logs Viewer")}


def through_nginx(
    gateway: Gateway, upstream: Upstream, tenant: Tenant, secret: str, uri: str
) -> tuple[int, bytes, list[str]]:
    """What the client got for ``uri``, and the paths the service received meanwhile."""
    mark = len(upstream.seen)
    status, body = raw_get(gateway.main, uri, keys(tenant.account_key, secret))
    return status, body, [seen["path"] for seen in upstream.requests_since(mark)]


#: (role, original URI, what the client gets): every request the review demonstrated;
#: each reached the service before the fix.
DEMONSTRATED = [
    ("Logs Viewer", "/v1/users/1%2F..%2F..%2Flogs", 400),
    ("Logs Viewer", "/v1/admin/delete-all%2F..%2F..%2Flogs", 400),
    ("Viewer", "/v1/Events", 403),
    ("Viewer", "/v1/EVENTS", 403),
    ("Viewer", "/v1/events;jsessionid=x", 400),
    ("Viewer", "/v1/%2565vents", 400),
    ("Viewer", "/v1/events%2e", 400),
    ("Viewer", "/v1/events%20", 400),
]


@pytest.mark.parametrize(("role", "uri", "status"), DEMONSTRATED)
def test_each_demonstrated_path_trick_is_stopped_at_nginx(
    gateway: Gateway,
    upstream: Upstream,
    tenant: Tenant,
    holders: dict[str, Holder],
    role: str,
    uri: str,
    status: int,
) -> None:
    got, body, reached = through_nginx(gateway, upstream, tenant, holders[role].secret_key, uri)

    assert got == status, body
    if status == 400:  # keyledger's 400, kept by docs/integrators.md's error page
        assert json.loads(body)["error"]["code"] == "invalid_input"
    assert reached == []


@pytest.mark.parametrize(
    "uri",
    [
        "/orders/1%2F..%2F..%2Fadmin",
        "/orders/1%2f%2e%2e%2fadmin",
        "/orders/%2e%2e/admin",
        "/orders;role=owner",
        "/orders%5Cadmin",
        "/orders%00",
        "/orders%0d%0aX-User-Role:%20Owner",
        "/orders/x.",
        "/orders/%25%32%66",
    ],
)
def test_even_an_owner_gets_400_for_an_ambiguous_path_and_the_service_sees_nothing(
    gateway: Gateway, upstream: Upstream, tenant: Tenant, uri: str
) -> None:
    got, body, reached = through_nginx(gateway, upstream, tenant, tenant.secret_key, uri)
    assert (got, reached) == (400, []), body


@pytest.mark.parametrize(
    ("role", "uri", "status"),
    [
        ("Logs Viewer", "/v1/logs", 200),
        ("Logs Viewer", "/v1/LOGS", 200),
        ("Logs Viewer", "/v1/logs/?limit=5", 200),
        ("Logs Viewer", "/v1/logs/x", 403),
        ("Logs Viewer", "/v1//logs", 403),
        ("Viewer", "/v1/users", 200),
        ("Viewer", "/v1/%65vents", 403),
        ("Viewer", "/v1//events", 403),
    ],
)
def test_plain_paths_are_decided_by_the_role_and_reach_the_service_verbatim(
    gateway: Gateway,
    upstream: Upstream,
    tenant: Tenant,
    holders: dict[str, Holder],
    role: str,
    uri: str,
    status: int,
) -> None:
    got, body, reached = through_nginx(gateway, upstream, tenant, holders[role].secret_key, uri)
    assert got == status, body
    assert reached == ([uri] if status == 200 else [])


OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


def test_method_override_headers_never_reach_the_service(
    gateway: Gateway, upstream: Upstream, tenant: Tenant, holders: dict[str, Holder]
) -> None:
    """keyledger allowed a Viewer's GET; the service must not be told to run a DELETE."""
    headers = {
        **keys(tenant.account_key, holders["Viewer"].secret_key),
        **dict.fromkeys(OVERRIDES, "DELETE"),
    }
    mark = len(upstream.seen)

    assert via(gateway.main, "GET", "/orders/1", headers).status_code == 200

    [seen] = upstream.requests_since(mark)
    assert seen["method"] == "GET"
    assert not {name.lower() for name in OVERRIDES} & set(seen["headerNames"])


REROUTES = (
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-URI",
    "X-Original-Method",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Forwarded-Prefix",
    "Forwarded",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Forwarded-Scheme",
    "X-Forwarded-Path",
    "X-Host",
    "X-Original-Host",
)


def test_url_override_and_forwarding_headers_from_the_client_never_reach_the_service(
    gateway: Gateway, upstream: Upstream, tenant: Tenant, holders: dict[str, Holder]
) -> None:
    """keyledger decided a Viewer's GET /orders/1: a framework routing on X-Original-URL or
    X-Rewrite-URL must not be told to run /v1/events, and the service sees the address and
    scheme nginx saw and no forwarding header the client chose (outside reviews)."""
    headers = {
        **keys(tenant.account_key, holders["Viewer"].secret_key),
        **dict.fromkeys(REROUTES, "/admin/delete-all"),
        "Forwarded": "for=6.6.6.6;host=evil.example;proto=https",
        "X-Forwarded-For": "10.9.9.9",
        "X-Real-IP": "10.9.9.9",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "javascript",
    }
    mark = len(upstream.seen)

    assert via(gateway.main, "GET", "/orders/1", headers).status_code == 200

    [seen] = upstream.requests_since(mark)
    assert not {name.lower() for name in REROUTES} & set(seen["headerNames"])
    assert seen["forwarded"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["forwarded"]["X-Real-IP"] == "127.0.0.1"
    assert seen["forwarded"]["X-Forwarded-Proto"] == "http"


# -- the client's address (issue 7, finding 2) ----------------------------------------------------------
@pytest.mark.parametrize("claim", ["10.2.5.7", "::ffff:a02:507"])
@pytest.mark.parametrize("path", ["/v1/", "/v1/auth/check"])
def test_a_client_reaching_keyledger_directly_cannot_claim_an_address(
    keyledgers: Keyledgers, tenant: Tenant, claim: str, path: str
) -> None:
    """keyledger trusts one hop (as docs/integrators.md advises for forward auth) from its default
    proxy address, 127.0.0.1: a client connecting from 127.0.0.2 is not that proxy."""
    office = new_holder(tenant, "Owner", allowed=["10.2.5.0/24"])
    headers = {
        **keys(tenant.account_key, office.secret_key),
        "X-Forwarded-For": claim,
        "X-Original-Method": "GET",
        "X-Original-URI": "/orders",
    }
    direct, body = raw_get(keyledgers.main.url, path, headers, source="127.0.0.2")
    from_the_proxy, _ = raw_get(keyledgers.main.url, path, headers, source="127.0.0.1")

    assert direct == 403, body
    assert from_the_proxy == 200  # the same request from the trusted proxy's address


def test_through_nginx_a_forwarded_for_sent_by_the_client_is_replaced(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    office = new_holder(tenant, "Owner", allowed=["10.2.5.0/24"])
    mark = len(upstream.seen)
    for claim in ("10.2.5.7", "::ffff:a02:507"):
        headers = {**keys(tenant.account_key, office.secret_key), "X-Forwarded-For": claim}
        assert raw_get(gateway.main, "/orders", headers)[0] == 403
    assert upstream.requests_since(mark) == []


# -- revoked --------------------------------------------------------------------------------------------
def test_a_revoked_key_is_refused_by_nginx_on_the_very_next_request(
    gateway: Gateway, upstream: Upstream, tenant: Tenant
) -> None:
    holder = new_holder(tenant, "Owner")
    headers = keys(tenant.account_key, holder.secret_key)
    for _ in range(4):  # both keyledger workers have the key in their caches now
        assert via(gateway.main, "GET", "/orders", headers).status_code == 200

    tenant.owner.delete_key(holder.name)  # through keyledger's API, not nginx

    mark = len(upstream.seen)
    assert [via(gateway.main, "GET", "/orders", headers).status_code for _ in range(6)] == [401] * 6
    assert upstream.requests_since(mark) == []


# -- 429 and 503 ----------------------------------------------------------------------------------------
def until_refused(url: str, headers: dict[str, str], most: int) -> list[requests.Response]:
    responses: list[requests.Response] = []
    while len(responses) < most:
        responses.append(via(url, "GET", "/orders", headers))
        if responses[-1].status_code != 200:
            break
    return responses


def test_a_429_from_keyledger_reaches_the_client_as_a_429_with_retry_after(
    gateway: Gateway, upstream: Upstream, stack: Stack
) -> None:
    busy = stack.bootstrap("Busy Gateway")
    headers = keys(busy.account_key, busy.secret_key)
    mark = len(upstream.seen)

    # A new one-minute window may start in between: then it takes up to LIMIT more.
    responses = until_refused(gateway.limited, headers, 2 * LIMIT + 1)

    refused = responses[-1]
    assert refused.status_code == 429, [r.status_code for r in responses]
    assert 1 <= len(responses) - 1 <= 2 * LIMIT
    assert responses[-2].headers["X-Rate-Limit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert len(upstream.requests_since(mark)) == len(responses) - 1


def test_without_the_error_page_nginx_turns_a_429_into_a_500(
    gateway: Gateway, stack: Stack
) -> None:
    """Why docs/integrators.md's configuration keeps keyledger's status: nginx's own behaviour."""
    busy = stack.bootstrap("Busy Unmapped")
    headers = keys(busy.account_key, busy.secret_key)

    responses = until_refused(gateway.unmapped, headers, 2 * LIMIT + 1)

    assert responses[-1].status_code == 500, [r.status_code for r in responses]
    wait_for(
        lambda: "auth request unexpected status: 429" in gateway.error_log(),
        timeout=5,
        what="nginx to log the unexpected status",
    )


def test_keyledger_without_redis_is_a_503_through_nginx(
    gateway: Gateway, upstream: Upstream
) -> None:
    mark = len(upstream.seen)
    started = time.monotonic()

    response = via(gateway.no_redis, "GET", "/orders", keys(forge("klak"), forge("klsk")))

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert time.monotonic() - started < 5
    assert upstream.requests_since(mark) == []
    # malformed keys need no Redis: still the 401
    assert via(gateway.no_redis, "GET", "/orders", keys("x", "y")).status_code == 401
