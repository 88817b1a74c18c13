"""nginx in front of a generated project, the way tests run it on 127.0.0.1.

A prod project's `deploy/nginx.conf` is an http-level file that the distribution's own
/etc/nginx/nginx.conf includes. Here a minimal main config (MAIN below) plays the part of that
file: it holds what belongs to the machine (worker count, temp paths, mime types) and includes a
copy of the generated file in which `rewrite_site` changes only:

- the upstream's `server 127.0.0.1:8000 PARAMS;` line: one such line per replica port, with the
  generated PARAMS unchanged;
- the `listen` lines: `listen 80;` and `listen 443 ssl;` become `listen 127.0.0.1:PORT;` and
  `listen 127.0.0.1:PORT ssl;` on free ports; the `listen [::]:...` lines are dropped (the test
  listens on 127.0.0.1 only);
- five absolute paths: certbot's webroot, the certificate and its key (a self-signed certificate
  made by the test, as nothing can issue a real one for 127.0.0.1), the access log, and, for
  Django, the static files directory.

Everything else is the generated file byte for byte; `changed_lines` lets a test prove it. The
README's `nginx-limits` step (worker_connections, worker_rlimit_nofile) is run on MAIN as it
would be on /etc/nginx/nginx.conf.
TLS is real: nginx ends it and sends `X-Forwarded-Proto: https` from `$scheme`, as in production.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from newstack.smoke import Server, readme_commands

NGINX_HINT = ("nginx is not installed: `apt-get install -y nginx-light` (Debian's nginx; .ci/run "
              "installs it)")

# The part of Debian's /etc/nginx/nginx.conf that a run in a temporary directory needs.
MAIN = """\
# Plays the part of the distribution's /etc/nginx/nginx.conf for a test run in {root}.
worker_processes 2;
events {{
    worker_connections 768;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    access_log off;
    include {root}/site.conf;
}}
"""

UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:8000( [^;]*)?;$", re.MULTILINE)
LISTEN = re.compile(r"^(\s*)listen (80|443)( ssl)?;$", re.MULTILINE)
LISTEN_V6 = re.compile(r"^\s*listen \[::\]:\d+[^;]*;\n", re.MULTILINE)
PATHS = {
    "ssl_certificate": re.compile(r"^(\s*ssl_certificate) /\S+;$", re.MULTILINE),
    "ssl_certificate_key": re.compile(r"^(\s*ssl_certificate_key) /\S+;$", re.MULTILINE),
    "access_log": re.compile(r"^(\s*access_log) /\S+( \w+)?;$", re.MULTILINE),
    "static": re.compile(r"^(\s*alias) /\S+;$", re.MULTILINE),
    "webroot": re.compile(r"^(\s*root) /\S+;$", re.MULTILINE),  # certbot's challenge files
}


def nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(NGINX_HINT, pytrace=False)
    return found


@dataclass
class Site:
    """Where one test's nginx listens and writes."""

    root: Path
    upstreams: list[int]
    http_port: int
    https_port: int
    static_root: Path | None = None
    cert: Path = field(init=False)
    key: Path = field(init=False)

    def __post_init__(self):
        self.cert, self.key = self.root / "tls.crt", self.root / "tls.key"

    @property
    def webroot(self) -> Path:
        return self.root / "certbot"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @property
    def conf(self) -> Path:
        return self.root / "nginx.conf"

    def argv(self) -> list[str]:
        """In the foreground, with its pid file in the test's directory and its errors on stderr
        (-e: also before the config is read), so that it runs as any user and leaves a system
        nginx alone."""
        return [nginx(), "-e", "stderr", "-p", str(self.root), "-c", str(self.conf),
                "-g", f"daemon off; pid {self.root}/nginx.pid; error_log stderr;"]

    def test_argv(self) -> list[str]:
        return [nginx(), "-t", "-q", "-e", "stderr", "-p", str(self.root), "-c", str(self.conf),
                "-g", f"pid {self.root}/nginx.pid; error_log stderr;"]


def _sub(pattern: re.Pattern, replace, text: str, expected: int, what: str) -> str:
    result, count = pattern.subn(replace, text)
    assert count == expected, f"{what}: {count} lines matched, expected {expected}"
    return result


def rewrite_first_boot(generated: str, site: Site) -> str:
    """deploy/nginx.first-boot.conf with its one `listen 80;` and its webroot moved as above."""
    text = _sub(LISTEN, rf"\1listen 127.0.0.1:{site.http_port};", generated, 1, "listen")
    text, _ = LISTEN_V6.subn("", text)
    return _sub(PATHS["webroot"], rf"\1 {site.webroot};", text, 1, "webroot")


def rewrite_site(generated: str, site: Site) -> str:
    """The generated deploy/nginx.conf with only the changes the module docstring lists."""
    text = _sub(UPSTREAM_SERVER, lambda m: "\n".join(
        f"{m.group(1)}server 127.0.0.1:{port}{m.group(2) or ''};" for port in site.upstreams),
        generated, 1, "upstream server")
    ports = {"80": site.http_port, "443": site.https_port}
    text = _sub(LISTEN, lambda m:
                f"{m.group(1)}listen 127.0.0.1:{ports[m.group(2)]}{m.group(3) or ''};",
                text, 2, "listen")
    text, _ = LISTEN_V6.subn("", text)
    text = _sub(PATHS["ssl_certificate"], rf"\1 {site.cert};", text, 1, "ssl_certificate")
    text = _sub(PATHS["ssl_certificate_key"], rf"\1 {site.key};", text, 1, "ssl_certificate_key")
    text = _sub(PATHS["access_log"], rf"\1 {site.access_log}\2;", text, 1, "access_log")
    text = _sub(PATHS["webroot"], rf"\1 {site.webroot};", text, 1, "webroot")
    if site.static_root is not None:
        text = _sub(PATHS["static"], rf"\1 {site.static_root}/;", text, 1, "static alias")
    return text


def changed_lines(generated: str, rewritten: str) -> list[str]:
    """The lines of the generated file that the rewrite removed or replaced."""
    diff = difflib.ndiff(generated.splitlines(), rewritten.splitlines())
    return [line[2:] for line in diff if line.startswith("- ")]


def self_signed(site: Site) -> None:
    """A certificate for localhost and 127.0.0.1, valid for a day, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    site.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    site.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def prepare(project: Path, site: Site) -> str:
    """Write the main config, the rewritten site and the certificate; return the site text."""
    (site.root / "tmp").mkdir(exist_ok=True)
    generated = (project / "deploy" / "nginx.conf").read_text()
    rewritten = rewrite_site(generated, site)
    (site.root / "site.conf").write_text(rewritten)
    site.conf.write_text(MAIN.format(root=site.root))
    limits = readme_commands(project).get("nginx-limits")
    if limits:  # the README's step, on MAIN in place of /etc/nginx/nginx.conf
        argv = shlex.split(limits.replace("/etc/nginx/nginx.conf", str(site.conf)))
        subprocess.run(argv[1:] if argv[0] == "sudo" else argv, check=True, timeout=30)
    self_signed(site)
    return rewritten


def check_config(site: Site) -> subprocess.CompletedProcess:
    return subprocess.run(site.test_argv(), capture_output=True, check=False, text=True, timeout=30)


def start(project: Path, site: Site, log: Path) -> Server:
    """nginx on the project's deploy/nginx.conf for `site`, once `nginx -t` accepts it; the caller
    stops it."""
    site.root.mkdir(exist_ok=True)
    prepare(project, site)
    checked = check_config(site)
    assert checked.returncode == 0, checked.stderr
    return Server(site.argv(), site.root, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, log)


LOG_LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) .*?"(?P<agent>[^"]*)" '
    r'upstream="(?P<upstream>[^"]*)" upstream_status="(?P<upstream_status>[^"]*)" '
    r'.* msec=(?P<msec>[\d.]+)$')


@dataclass
class Logged:
    path: str
    status: int
    agent: str
    upstreams: list[str]  # every replica the request was sent to, in order; [] when nginx served it
    msec: float

    @property
    def served_by(self) -> str | None:
        return self.upstreams[-1] if self.upstreams else None


def read_access_log(site: Site) -> list[Logged]:
    entries = []
    for line in site.access_log.read_text().splitlines():
        match = LOG_LINE.search(line)
        assert match, f"access log line not in the generated format: {line}"
        upstream = match["upstream"]
        entries.append(Logged(match["path"], int(match["status"]), match["agent"],
                              [] if upstream == "-" else re.split(r", | : ", upstream),
                              float(match["msec"])))
    return entries
