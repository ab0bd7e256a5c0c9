"""nginx configuration as a pure function of desired state, and the argv that drives nginx.

Each node runs two nginx instances. The EDGE holds the client connections and is STATIC: one
server on the HTTP and HTTPS ports for every name, never reloaded for a site, a name or a
certificate. It routes by `$host` to the per-host directory `hosts/<host>/`, whose symlink
`switch.sock` leads to the service's unix socket on the SWITCH, which holds the service's
container upstreams; a deploy reloads only the switch, which keeps its listening sockets.
TLS comes by SNI from `tls/<name>/certificate.pem`, read at every handshake, so replacing
that file is the renewal. These directories live in the runtime directory under /run (see
`NginxLayout.sockets`), which nginx's workers (`nobody` under a root master) can reach.

Request log (app metrics, see `dockyard.agent.request_metrics`): the EDGE writes one JSON line
per request it routes by name, buffered (64 KiB, flushed every second: no request waits on a
disk write), with what the client saw: `$status`, `$request_time`, `$bytes_sent`, `$msec`,
`$host`. The switch tells the edge which service and which container answered in two response
headers the edge logs and hides from the client: `X-Dockyard-Service`, and
`X-Dockyard-Upstream`, the address that answered (with `proxy_next_upstream` the last of
`$upstream_addr`), empty when none sent a response header (the switch's own 502/504). The
switch logs nothing. Counted: every response to a routed name, the edge's own among them (a
308 to HTTPS; a 502 when the switch is down, by the name's route, with no container).
Not counted: names no site routes (the edge's 404), ACME challenges, TLS handshakes that fail
or requests nginx rejects before it reads the Host header.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dockyard.agent.models import Site
from dockyard.kernel.errors import InvalidInput

_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
MAIN_CONF = "nginx.conf"
PID_FILE = "nginx.pid"
SWITCH_DIR = "switch"
SOCKETS_BASE = Path("/run/dockyard-nginx")
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108, the terminating NUL included
HEADER = "# Managed by dockyard-agent; changes are overwritten.\n"
REQUESTS_LOG = "requests.log"
SERVICE_HEADER = "X-Dockyard-Service"
UPSTREAM_HEADER = "X-Dockyard-Upstream"
REQUEST_LOG_FORMAT = (  # nginx joins the parts
    '{"msec":$msec,"host":"$host",', '"service":"$upstream_http_x_dockyard_service",',
    '"upstream":"$upstream_http_x_dockyard_upstream",',
    '"status":"$status","request_time":$request_time,"bytes_sent":$bytes_sent}')


@dataclass(frozen=True)
class NginxLayout:
    """Where one nginx instance keeps its files; every path lives under `root`.

    The edge layout listens on the ports; `switch_layout` is its switch instance, which
    listens only on the unix sockets in `sockets`."""

    root: Path
    http_port: int = 80
    https_port: int = 443
    switch: bool = False
    request_log: bool = True  # the edge's request log (app metrics); off for comparison only

    def __post_init__(self) -> None:
        if not _SAFE_PATH.fullmatch(str(self.root)):
            raise ValueError(f"nginx directory {self.root} must be an absolute, plain path")

    @property
    def conf(self) -> Path:
        return self.root / MAIN_CONF

    @property
    def sites(self) -> Path:
        return self.root / "sites"

    @property
    def pid_file(self) -> Path:
        return self.root / PID_FILE

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    @property
    def requests_log(self) -> Path:
        """The edge's JSON request log, which the agent reads and keeps short."""
        return self.root / "logs" / REQUESTS_LOG

    @property
    def switch_layout(self) -> NginxLayout:
        return NginxLayout(self.root / SWITCH_DIR, self.http_port, self.https_port, switch=True)

    @property
    def runtime(self) -> Path:
        """The pair's directory under /run: the switch's sockets, the edge's routes,
        certificates and ACME webroot."""
        return self.sockets if self.switch else self.switch_layout.sockets

    @property
    def sockets(self) -> Path:
        """Short, and reachable by nginx's workers (user nobody) whatever the mode of the
        agent's state directory (under /root, say): one directory per switch instance."""
        return SOCKETS_BASE / hashlib.sha256(str(self.root).encode()).hexdigest()[:12]

    @property
    def hosts(self) -> Path:
        """The edge's routes: `hosts/<name>/switch.sock` -> the service's switch socket."""
        return self.runtime / "hosts"

    @property
    def tls(self) -> Path:
        """The edge's certificates: `tls/<name>/certificate.pem` (chain and key), and the
        files `redirect` and `hsts` when those are wanted."""
        return self.runtime / "tls"

    @property
    def acme(self) -> Path:
        """The edge's ACME webroot: `.well-known/acme-challenge/<token>` under it."""
        return self.runtime / "acme"

    def site_file(self, service: str) -> Path:
        return self.sites / f"{service}.conf"

    def socket(self, service: str) -> Path:
        """The unix socket of `service`; refused when the kernel could not bind its path."""
        path = self.sockets / f"{service}.sock"
        if len(bytes(path)) > MAX_SOCKET_PATH:
            raise InvalidInput(
                f"the unix socket path {path} is {len(bytes(path))} bytes, over the limit of "
                f"{MAX_SOCKET_PATH}: use a shorter service name or agent state directory")
        return path


CERTIFICATE_FILE = "certificate.pem"
REDIRECT_FILE = "redirect"
HSTS_FILE = "hsts"
HSTS_VALUE = "max-age=31536000"
# The SNI is the client's and nginx does not check it (an SNI of "../x" reaches outside the
# directory): only a plain lowercase DNS name may name a certificate; "-" names none.
_TLS_NAME = r"~^[a-z0-9-]+(\.[a-z0-9-]+)*\z"


ROUTE_SOCKET = "switch.sock"
MAX_ROUTED_NAME = MAX_SOCKET_PATH - len(f"/{ROUTE_SOCKET}")


def require_routable(name: str) -> None:
    """The edge connects to `<name>/switch.sock`, relative to its workers' directory
    `hosts`: a unix socket's path holds at most 107 bytes."""
    if len(name) > MAX_ROUTED_NAME:
        raise InvalidInput(f"the name {name} is {len(name)} characters long; the edge routes "
                           f"names of at most {MAX_ROUTED_NAME}")


def _access_log(layout: NginxLayout) -> str:
    """Only the edge logs, and only when the layout asks for its request log."""
    if layout.switch or not layout.request_log:
        return "    access_log off;\n"
    parts = "".join(f"\n        '{part}'" for part in REQUEST_LOG_FORMAT)
    return (f"    log_format dockyard_requests escape=json{parts};\n"
            f"    access_log {layout.requests_log} dockyard_requests buffer=64k flush=1s;\n")


def _http_block(layout: NginxLayout, body: str, main: str = "") -> str:
    root = layout.root
    temp = "\n".join(
        f"    {kind}_temp_path {root / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{HEADER}worker_processes auto;
pid {layout.pid_file};
error_log {layout.error_log} warn;
{main}
events {{
    worker_connections 4096;
}}

http {{
    server_names_hash_bucket_size 128;
{_access_log(layout)}{temp}
    client_max_body_size 100m;
    server_tokens off;

{body}}}
"""


# The address that answered: none when the last upstream tried sent no response header.
ANSWERED_MAP = """    map $upstream_header_time $dockyard_answered {
        "~-$" "";
        default $upstream_addr;
    }

"""


def render_main(layout: NginxLayout) -> str:
    """The main configuration: the switch includes its sites (one socket each); the edge is
    the one static server of every name."""
    if layout.switch:
        return _http_block(layout, ANSWERED_MAP + f"    include {layout.sites}/*.conf;\n")
    return _http_block(layout, render_edge(layout), f"working_directory {layout.hosts};\n")


def _proxy_headers(headers: dict[str, str]) -> list[str]:
    return [f"proxy_set_header {name} {value};" for name, value in headers.items()]


_CLIENT_HEADERS = {"Host": "$host",
                   "X-Real-IP": "$remote_addr",
                   "X-Forwarded-For": "$proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto": "$scheme"}
_EDGE_HEADERS = {"Connection": '""', "Host": "$host",
                 "X-Real-IP": "$http_x_real_ip",
                 "X-Forwarded-For": "$http_x_forwarded_for",
                 "X-Forwarded-Proto": "$http_x_forwarded_proto"}


def _edge_route(layout: NginxLayout) -> list[str]:
    """`location /`: unknown names 404; http 308s to https once the name's certificate asks
    for it; HSTS over https when asked (an empty header value is not sent); then the switch,
    on a new connection per request (a reloading switch keeps its listening socket), at a
    path relative to `hosts`, the workers' directory (see `require_routable`)."""
    tls = f"{layout.tls}/$host"
    return [
        "set $dockyard_redirect $scheme;",
        "set $dockyard_hsts_wanted $scheme;",
        f"if (!-d {layout.hosts}/$host) {{", "    return 404;", "}",
        f"if (-f {tls}/{REDIRECT_FILE}) {{",
        '    set $dockyard_redirect "${dockyard_redirect}+tls";', "}",
        'if ($dockyard_redirect = "http+tls") {', "    return 308 https://$host$request_uri;", "}",
        f"if (-f {tls}/{HSTS_FILE}) {{",
        '    set $dockyard_hsts_wanted "${dockyard_hsts_wanted}+hsts";', "}",
        "add_header Strict-Transport-Security $dockyard_hsts always;",
        f"proxy_pass http://unix:$host/{ROUTE_SOCKET}:;",
        "proxy_http_version 1.1;", *_proxy_headers(_CLIENT_HEADERS),
        f"proxy_hide_header {SERVICE_HEADER};", f"proxy_hide_header {UPSTREAM_HEADER};",
    ]


def _indented(lines: list[str], depth: int) -> str:
    return "".join(f"{'    ' * depth}{line}\n" for line in lines)


def render_edge(layout: NginxLayout) -> str:
    """The edge's maps and its one server: every name, HTTP and HTTPS, ACME challenges."""
    certificate = f"{layout.tls}/$dockyard_tls_name/{CERTIFICATE_FILE}"
    return f"""    map $ssl_server_name $dockyard_tls_name {{
        "{_TLS_NAME}" $ssl_server_name;
        default "-";
    }}

    map $dockyard_hsts_wanted $dockyard_hsts {{
        "https+hsts" "{HSTS_VALUE}";
        default "";
    }}

    server {{
        listen {layout.http_port} default_server;
        listen {layout.https_port} ssl default_server;
        server_name _;
        # Read at every handshake: the certificate chain and its key are in one file, so a
        # renewal is one rename (a handshake between nginx's two reads of it may still
        # pair the old certificate with the new key: it fails, once).
        ssl_certificate {certificate};
        ssl_certificate_key {certificate};
        ssl_protocols TLSv1.2 TLSv1.3;

        location ^~ /.well-known/acme-challenge/ {{
            root {layout.acme};
            default_type text/plain;
            access_log off;
        }}

        location / {{
{_indented(_edge_route(layout), 3)}        }}
    }}
"""


def render_switch_site(site: Site, layout: NginxLayout) -> str:
    """The switch's server of one service: its socket, proxied to the containers; it passes
    on the client headers the edge set, and tells the edge who answered (an app's own
    headers of those names are dropped)."""
    upstream = f"dockyard_{site.service}"
    servers = "".join(f"    server {u.address} max_fails=1 fail_timeout=5s;\n"
                      for u in site.upstreams)
    lines = [f"proxy_pass http://{upstream};", "proxy_next_upstream error timeout;",
             "proxy_http_version 1.1;", *_proxy_headers(_EDGE_HEADERS),
             f"proxy_hide_header {SERVICE_HEADER};", f"proxy_hide_header {UPSTREAM_HEADER};",
             f"add_header {SERVICE_HEADER} {site.service} always;",
             f"add_header {UPSTREAM_HEADER} $dockyard_answered always;"]
    return (f"# Managed by dockyard-agent for service {site.service}; changes are overwritten.\n"
            f"upstream {upstream} {{\n{servers}    keepalive 32;\n}}\n\n"
            f"server {{\n    listen unix:{layout.socket(site.service)};\n\n"
            f"    location / {{\n{_indented(lines, 2)}    }}\n}}\n")


def host_routes(sites: list[Site]) -> dict[str, str]:
    """Which service each name leads to on the edge; a name two sites claim goes to the one
    applied last (the later in `sites`)."""
    return {name: site.service for site in sites for name in site.server_names}


def switch_link(service: str) -> str:
    """The target of `hosts/<name>/switch.sock`: the service's socket, two levels up."""
    return f"../../{service}.sock"


def _base_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [binary, "-p", f"{layout.root}/", "-e", str(layout.error_log), "-c", str(layout.conf)]


def check_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-t", "-q"]


def start_argv(binary: str, layout: NginxLayout) -> list[str]:
    return _base_argv(binary, layout)


def reload_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-s", "reload"]


def stop_argv(binary: str, layout: NginxLayout) -> list[str]:
    return [*_base_argv(binary, layout), "-s", "quit"]
