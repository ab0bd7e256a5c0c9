"""nginx configuration is a pure function of the desired state: tested as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.agent import nginx
from dockyard.agent.models import Site, Upstream
from dockyard.agent.nginx import NginxLayout

LAYOUT = NginxLayout(Path("/srv/agent/nginx"), http_port=8080, https_port=8443)
SWITCH = LAYOUT.switch_layout
SITE = Site(service="web", server_names=["shop.example.com", "www.shop.example.com"],
            upstreams=[Upstream(host="10.0.0.2", port=18000), Upstream(host="::1", port=18001)])

EXPECTED_SWITCH_SITE = """# Managed by dockyard-agent for service web; changes are overwritten.
upstream dockyard_web {
    server 10.0.0.2:18000 max_fails=1 fail_timeout=5s;
    server [::1]:18001 max_fails=1 fail_timeout=5s;
    keepalive 32;
}

server {
    listen unix:/run/dockyard-nginx/bef87d8b30de/web.sock;

    location / {
        proxy_pass http://dockyard_web;
        proxy_next_upstream error timeout;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $http_x_real_ip;
        proxy_set_header X-Forwarded-For $http_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;
        proxy_hide_header X-Dockyard-Service;
        proxy_hide_header X-Dockyard-Upstream;
        add_header X-Dockyard-Service web always;
        add_header X-Dockyard-Upstream $dockyard_answered always;
    }
}
"""

EXPECTED_EDGE_MAIN = r"""# Managed by dockyard-agent; changes are overwritten.
worker_processes auto;
pid /srv/agent/nginx/nginx.pid;
error_log /srv/agent/nginx/logs/error.log warn;
working_directory /run/dockyard-nginx/bef87d8b30de/hosts;

events {
    worker_connections 4096;
}

http {
    server_names_hash_bucket_size 128;
    log_format dockyard_requests escape=json
        '{"msec":$msec,"host":"$host",'
        '"service":"$upstream_http_x_dockyard_service",'
        '"upstream":"$upstream_http_x_dockyard_upstream",'
        '"status":"$status","request_time":$request_time,"bytes_sent":$bytes_sent}';
    access_log /srv/agent/nginx/logs/requests.log dockyard_requests buffer=64k flush=1s;
    client_body_temp_path /srv/agent/nginx/tmp/client_body;
    proxy_temp_path /srv/agent/nginx/tmp/proxy;
    fastcgi_temp_path /srv/agent/nginx/tmp/fastcgi;
    uwsgi_temp_path /srv/agent/nginx/tmp/uwsgi;
    scgi_temp_path /srv/agent/nginx/tmp/scgi;
    client_max_body_size 100m;
    server_tokens off;

    map $ssl_server_name $dockyard_tls_name {
        "~^[a-z0-9-]+(\.[a-z0-9-]+)*\z" $ssl_server_name;
        default "-";
    }

    map $dockyard_hsts_wanted $dockyard_hsts {
        "https+hsts" "max-age=31536000";
        default "";
    }

    server {
        listen 8080 default_server;
        listen 8443 ssl default_server;
        server_name _;
        # Read at every handshake: the certificate chain and its key are in one file, so a
        # renewal is one rename (a handshake between nginx's two reads of it may still
        # pair the old certificate with the new key: it fails, once).
        ssl_certificate /run/dockyard-nginx/bef87d8b30de/tls/$dockyard_tls_name/certificate.pem;
        ssl_certificate_key /run/dockyard-nginx/bef87d8b30de/tls/$dockyard_tls_name/certificate.pem;
        ssl_protocols TLSv1.2 TLSv1.3;

        location ^~ /.well-known/acme-challenge/ {
            root /run/dockyard-nginx/bef87d8b30de/acme;
            default_type text/plain;
            access_log off;
        }

        location / {
            set $dockyard_redirect $scheme;
            set $dockyard_hsts_wanted $scheme;
            if (!-d /run/dockyard-nginx/bef87d8b30de/hosts/$host) {
                return 404;
            }
            if (-f /run/dockyard-nginx/bef87d8b30de/tls/$host/redirect) {
                set $dockyard_redirect "${dockyard_redirect}+tls";
            }
            if ($dockyard_redirect = "http+tls") {
                return 308 https://$host$request_uri;
            }
            if (-f /run/dockyard-nginx/bef87d8b30de/tls/$host/hsts) {
                set $dockyard_hsts_wanted "${dockyard_hsts_wanted}+hsts";
            }
            add_header Strict-Transport-Security $dockyard_hsts always;
            proxy_pass http://unix:$host/switch.sock:;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_hide_header X-Dockyard-Service;
            proxy_hide_header X-Dockyard-Upstream;
        }
    }
}
"""

EXPECTED_SWITCH_MAIN = r"""# Managed by dockyard-agent; changes are overwritten.
worker_processes auto;
pid /srv/agent/nginx/switch/nginx.pid;
error_log /srv/agent/nginx/switch/logs/error.log warn;

events {
    worker_connections 4096;
}

http {
    server_names_hash_bucket_size 128;
    access_log off;
    client_body_temp_path /srv/agent/nginx/switch/tmp/client_body;
    proxy_temp_path /srv/agent/nginx/switch/tmp/proxy;
    fastcgi_temp_path /srv/agent/nginx/switch/tmp/fastcgi;
    uwsgi_temp_path /srv/agent/nginx/switch/tmp/uwsgi;
    scgi_temp_path /srv/agent/nginx/switch/tmp/scgi;
    client_max_body_size 100m;
    server_tokens off;

    map $upstream_header_time $dockyard_answered {
        "~-$" "";
        default $upstream_addr;
    }

    include /srv/agent/nginx/switch/sites/*.conf;
}
"""


def test_switch_site_text() -> None:
    assert nginx.render_switch_site(SITE, SWITCH) == EXPECTED_SWITCH_SITE


def test_the_edge_is_the_same_whatever_the_sites() -> None:
    """No name, certificate or upstream appears in it: nothing a site does reloads it."""
    assert "shop.example.com" not in nginx.render_main(LAYOUT)
    assert nginx.render_main(LAYOUT) == EXPECTED_EDGE_MAIN


def test_host_routes_lead_each_name_to_the_site_applied_last() -> None:
    other = Site(service="api", server_names=["api.example.com", "www.shop.example.com"],
                 upstreams=SITE.upstreams)
    assert nginx.host_routes([SITE, other]) == {
        "shop.example.com": "web", "www.shop.example.com": "api", "api.example.com": "api"}
    assert nginx.host_routes([other, SITE])["www.shop.example.com"] == "web"
    assert nginx.switch_link("web") == "../../web.sock"


def test_main_configuration_text() -> None:
    assert nginx.render_main(LAYOUT) == EXPECTED_EDGE_MAIN


def test_switch_main_configuration_listens_on_no_port() -> None:
    assert nginx.render_main(SWITCH) == EXPECTED_SWITCH_MAIN


def test_layouts() -> None:
    assert LAYOUT.switch_layout == NginxLayout(Path("/srv/agent/nginx/switch"), 8080, 8443,
                                               switch=True)
    assert LAYOUT.site_file("web") == Path("/srv/agent/nginx/sites/web.conf")
    assert SWITCH.site_file("web") == Path("/srv/agent/nginx/switch/sites/web.conf")
    assert SWITCH.pid_file == Path("/srv/agent/nginx/switch/nginx.pid")
    assert SWITCH.socket("web") == Path("/run/dockyard-nginx/bef87d8b30de/web.sock")
    runtime = Path("/run/dockyard-nginx/bef87d8b30de")
    assert (LAYOUT.hosts, LAYOUT.tls, LAYOUT.acme) == (
        runtime / "hosts", runtime / "tls", runtime / "acme")
    assert LAYOUT.runtime == SWITCH.runtime == runtime


def test_argv() -> None:
    base = ["nginx", "-p", "/srv/agent/nginx/", "-e", "/srv/agent/nginx/logs/error.log",
            "-c", "/srv/agent/nginx/nginx.conf"]
    assert nginx.check_argv("nginx", LAYOUT) == [*base, "-t", "-q"]
    assert nginx.start_argv("nginx", LAYOUT) == base
    assert nginx.reload_argv("nginx", LAYOUT) == [*base, "-s", "reload"]
    assert nginx.stop_argv("nginx", LAYOUT) == [*base, "-s", "quit"]
    assert nginx.start_argv("nginx", SWITCH) == [
        "nginx", "-p", "/srv/agent/nginx/switch/", "-e",
        "/srv/agent/nginx/switch/logs/error.log", "-c", "/srv/agent/nginx/switch/nginx.conf"]


def test_socket_paths_stay_short_whatever_the_agent_directory() -> None:
    deep = NginxLayout(Path("/srv/" + "d" * 200)).switch_layout
    assert len(str(deep.socket("a" * 63))) < 107
    assert deep.socket("web").parent != SWITCH.socket("web").parent


@pytest.mark.parametrize(
    "root", ["relative/dir", "/srv/my agent", "/srv/a;b", "/srv/{x}", "/srv/x\n"])
def test_an_nginx_directory_that_would_break_the_file_is_refused(root: str) -> None:
    with pytest.raises(ValueError, match="plain path"):
        NginxLayout(Path(root))


def test_only_the_edge_logs_requests_and_the_log_can_be_turned_off() -> None:
    quiet = NginxLayout(Path("/srv/agent/nginx"), 8080, 8443, request_log=False)
    assert "    access_log off;\n" in nginx.render_main(quiet)
    assert "log_format" not in nginx.render_main(quiet)
    assert "log_format" not in nginx.render_main(SWITCH)
    assert LAYOUT.requests_log == Path("/srv/agent/nginx/logs/requests.log")
