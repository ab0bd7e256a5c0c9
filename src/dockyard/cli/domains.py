"""`dockyard domains add|list|show|renew|remove`: a service's own hostnames with HTTPS and
DNS, each one API call."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from dockyard.cli.client import ApiClient, CliError, seg
from dockyard.cli.output import JsonFlag, done, show, show_one
from dockyard.cli.resources import ProjectOpt, ServiceOpt

app = typer.Typer(help="Your own hostnames for a service, with HTTPS and DNS.",
                  no_args_is_help=True)
LIST_COLUMNS = ["hostname", "service", "tls", "certificate", "expires", "dns"]
SLOW = httpx.Timeout(30.0, read=300.0)  # obtaining a certificate takes a while
HostArg = Annotated[str, typer.Argument(help="The domain, like shop.example.com.")]
TlsOpt = Annotated[str, typer.Option(
    "--tls", help="acme (default), cloudflare (an origin certificate) or none.")]
AcmeOpt = Annotated[str | None, typer.Option(
    "--acme-directory", help="An ACME directory URL (default: the control plane's).")]
DnsOpt = Annotated[str | None, typer.Option(
    "--dns", help="A Cloudflare credential: Dockyard keeps the A/AAAA records.")]
ProxiedFlag = Annotated[bool, typer.Option(
    "--proxied", help="Proxy the DNS records through Cloudflare.")]
NoRedirectFlag = Annotated[bool, typer.Option(
    "--no-redirect", help="Serve plain HTTP too (no redirect to HTTPS).")]
HstsFlag = Annotated[bool, typer.Option("--hsts", help="Send Strict-Transport-Security.")]


@app.command("add")
def add(hostname: HostArg, project: ProjectOpt, service: ServiceOpt, tls: TlsOpt = "acme",
        acme_directory: AcmeOpt = None, dns: DnsOpt = None, proxied: ProxiedFlag = False,
        no_redirect: NoRedirectFlag = False, hsts: HstsFlag = False,
        as_json: JsonFlag = False) -> None:
    """Route HOSTNAME to a service on every server that runs it, then get its certificate."""
    body = {"hostname": hostname.lower(), "tls": tls, "acme_directory": acme_directory,
            "dns_credential": dns, "dns_proxied": proxied, "redirect_https": not no_redirect,
            "hsts": hsts}
    path = f"/projects/{seg(project)}/services/{seg(service)}/domains"
    found = ApiClient.from_config().request("POST", path, json=body, timeout=SLOW)
    _report(found, as_json)


@app.command("list")
def list_domains(project: Annotated[str | None, typer.Option("--project", "-p")] = None,
                 as_json: JsonFlag = False) -> None:
    """The workspace's domains (or one project's)."""
    rows = ApiClient.from_config().get("/domains", project=project)
    show([_row(r) for r in rows] if not as_json else rows, LIST_COLUMNS, as_json)


@app.command("show")
def show_domain(hostname: HostArg, as_json: JsonFlag = False) -> None:
    """One domain: its certificate and DNS state, and the last error of each."""
    show_one(ApiClient.from_config().get(f"/domains/{seg(hostname.lower())}"), as_json)


@app.command("renew")
def renew(hostname: HostArg, as_json: JsonFlag = False) -> None:
    """Obtain a new certificate now and install it on every server."""
    found = ApiClient.from_config().request(
        "POST", f"/domains/{seg(hostname.lower())}/renew", timeout=SLOW)
    _report(found, as_json)


@app.command("remove")
def remove(hostname: HostArg) -> None:
    """Stop routing HOSTNAME; its certificate and DNS records go too."""
    ApiClient.from_config().delete(f"/domains/{seg(hostname.lower())}")
    done(f"Removed {hostname.lower()}.")


def _row(found: dict[str, Any]) -> dict[str, Any]:
    return {**found, "service": f"{found['project']}/{found['service']}",
            "certificate": found["certificate_status"],
            "expires": found["certificate_expires_at"], "dns": found["dns_status"]}


def _report(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show_one(found, as_json)
        return
    name, status = found["hostname"], found["certificate_status"]
    if status == "failed":
        raise CliError(f"{name} routes over HTTP, but its certificate failed: "
                       f"{found['certificate_error']}")
    if found["dns_status"] == "failed":
        done(f"DNS of {name} failed: {found['dns_error']}")
    scheme = "https" if status == "live" else "http"
    done(f"{name} -> {found['project']}/{found['service']}: {scheme}://{name}/ "
         f"(certificate {status})")
