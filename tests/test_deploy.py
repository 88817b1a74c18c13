"""deploy/: the nginx config and the Kubernetes manifests of every prod project, checked offline
against the project's own settings (gunicorn.conf.py or serve.py, the Dockerfile, the allowed hosts), with
`nginx -t`, and with kubernetes-validate's bundled schemas for a pinned Kubernetes version.
The same nginx config under real load is tests/generated/test_replicas.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from newstack.smoke import readme_commands, split_command
from newstack.stacks import COMBINATIONS, find_combination, server_row

from .conftest import run
from .generated.proxy import (
    MAIN,
    PATHS,
    Site,
    changed_lines,
    check_config,
    prepare,
    rewrite_first_boot,
)

PROD_IDS = [c.id for c in COMBINATIONS if c.target == "prod"]
DEV_IDS = [c.id for c in COMBINATIONS if c.target == "dev"]
# The oldest Kubernetes minor the manifests are written for (the preStop `sleep` action is on by
# default from 1.30) and the newest that kubernetes-validate bundles schemas for.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
MANIFESTS = ("deployment", "service", "hpa", "pdb", "configmap", "ingress", "jobs/migrate")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def server_settings(project: Path) -> dict:
    """gunicorn.conf.py's values, read by running it as gunicorn does; or their counterparts in
    serve.py (None where Granian has none: no worker timeout)."""
    if (project / "shop" / "serve.py").exists():
        code = "import json, shop.serve as s; print(json.dumps(s.defaults()))"
        found = json.loads(run([sys.executable, "-c", code], cwd=project, check=True).stdout)
        trusted = re.search(r'"FORWARDED_ALLOW_IPS", "([^"]+)"',
                            (project / "shop" / "serve.py").read_text()).group(1)
        # Granian closes an idle connection when no request head arrives within
        # GRANIAN_HTTP1_HEADER_READ_TIMEOUT (30 s by default; measured: closed after 30.0 s)
        return {"timeout": None, "keepalive": 30, "forwarded_allow_ips": trusted,
                "graceful_timeout": int(found["GRANIAN_WORKERS_KILL_TIMEOUT"]),
                "bind": f"{found['GRANIAN_HOST']}:{found['GRANIAN_PORT']}"}
    names = ("timeout", "graceful_timeout", "keepalive", "forwarded_allow_ips", "bind")
    code = ("import json, runpy; s = runpy.run_path('gunicorn.conf.py'); "
            f"print(json.dumps({{k: s[k] for k in {names!r}}}))")
    secrets = {"DJANGO_SECRET_KEY": "x" * 50, "FLASK_SECRET_KEY": "x" * 50}  # required to start
    result = run([sys.executable, "-c", code], cwd=project, check=True, env=secrets)
    return json.loads(result.stdout)


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[unit]


def directives(conf: str, name: str) -> list[str]:
    """The arguments of every `name ...;` directive, comments left out."""
    text = re.sub(r"#[^\n]*", "", conf)
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+([^;]*);", text)]


def block(conf: str, start: str) -> str:
    """The body of the block that begins with `start {`."""
    text = re.sub(r"#[^\n]*", "", conf)
    begin = text.index(start + " {") + len(start) + 2
    depth, end = 1, begin
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[begin:end - 1]


def manifests(project: Path) -> dict[str, dict]:
    return {name: yaml.safe_load((project / "deploy" / "k8s" / f"{name}.yaml").read_text())
            for name in MANIFESTS}


# nginx --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", PROD_IDS)
def test_nginx_accepts_the_config_and_the_test_changes_only_what_it_says(projects, tmp_path, cid):
    project = projects[cid]
    django = find_combination(cid).framework == "django"
    # Any ports: `nginx -t` reads them and binds nothing.
    site = Site(tmp_path, [18001, 18002, 18003], 18080, 18443,
                tmp_path / "static" if django else None)
    generated = (project / "deploy" / "nginx.conf").read_text()
    rewritten = prepare(project, site)
    checked = check_config(site)
    assert checked.returncode == 0, checked.stderr
    changed = changed_lines(generated, rewritten)
    allowed = re.compile(r"^\s*(server 127\.0\.0\.1:8000 |listen |(ssl_certificate|"
                         r"ssl_certificate_key|access_log|alias|root) /)")
    assert changed and all(allowed.match(line) for line in changed), changed
    # 1 upstream line, 4 listen lines, the webroot, the certificate, its key, the access log, the
    # static files
    assert len(changed) == 1 + 4 + 4 + django
    assert rewritten.count("server 127.0.0.1:180") == 3


@pytest.mark.parametrize("cid", PROD_IDS)
def test_nginx_proxies_as_the_app_and_its_server_expect(projects, cid):
    project = projects[cid]
    combination = find_combination(cid)
    conf = (project / "deploy" / "nginx.conf").read_text()
    settings = server_settings(project)
    upstream = block(conf, "upstream shop")

    # Replicas: one generated (the port the server binds by default), idle connections kept
    # open, and closed before the server closes them.
    [server] = directives(upstream, "server")
    assert server.startswith("127.0.0.1:8000 ") and settings["bind"].endswith(":8000")
    assert int(directives(upstream, "keepalive")[0]) > 0
    assert seconds(directives(upstream, "keepalive_timeout")[0]) < settings["keepalive"]
    assert directives(conf, "proxy_http_version") == ["1.1"]

    # The client's host, address and scheme; gunicorn trusts them from nginx on this host.
    headers = dict(h.split(None, 1) for h in directives(conf, "proxy_set_header"))
    assert headers["Host"] == "$host" and headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Forwarded-Ssl"] == headers["X-Forwarded-Protocol"] == '""'
    assert "127.0.0.1" in settings["forwarded_allow_ips"]
    assert any("ssl" in listen for listen in directives(conf, "listen"))
    assert "return 301 https://$host$request_uri" in conf

    # Buffering, timeouts, retries of what can be retried.
    assert directives(conf, "proxy_request_buffering") == ["on"]
    assert directives(conf, "proxy_buffering")[0] == "on"
    read_timeout = seconds(directives(conf, "proxy_read_timeout")[0])
    assert read_timeout > (settings["timeout"] or 0)
    assert set(directives(conf, "proxy_next_upstream")[0].split()) == {
        "error", "timeout", "http_502", "http_503", "http_504"}  # never non_idempotent
    assert seconds(directives(conf, "proxy_next_upstream_timeout")[0]) < (
        settings["timeout"] or read_timeout)

    if combination.protocol == "asgi":
        assert headers["Upgrade"] == "$http_upgrade"
        assert "default upgrade;" in block(conf, "map $http_upgrade $shop_connection")
        assert seconds(directives(block(conf, "location /ws/"), "proxy_read_timeout")[0]) >= 3600
        events = block(conf, "location = /api/events")
        assert directives(events, "proxy_buffering") == ["off"]
        assert "/ws/echo" in (project / "README.md").read_text()
    else:
        assert "Upgrade" not in headers and headers["Connection"] == '""'
        assert "/ws/" not in conf and "/api/events" not in conf

    if combination.framework == "django":
        static = block(conf, "location /static/")
        assert directives(static, "alias")[0].endswith("/staticfiles/")
        assert directives(static, "gzip_static") == ["on"]
    else:  # the app serves /static/ from its package
        assert "location /static/" not in conf


def readme_block(project: Path, marker: str) -> str:
    """A block of several commands under `<!-- newstack:MARKER -->` (readme_commands: one line)."""
    readme = (project / "README.md").read_text()
    return re.search(rf"<!-- newstack:{marker} -->\n```sh\n(.+?\n)```", readme, re.DOTALL).group(1)


@pytest.mark.parametrize("cid", PROD_IDS)
def test_nginx_first_boot_config_loads_with_no_certificate_and_serves_the_challenge(
        projects, tmp_path, cid):
    """The README's order: the first-boot config alone (no certificate yet), certbot --webroot
    into the directory it serves, then deploy/nginx.conf, which keeps serving it for renewals."""
    project = projects[cid]
    first_boot = readme_block(project, "nginx-first-boot")
    full = readme_block(project, "nginx-full")
    [installed] = re.findall(r"sudo cp (deploy/\S+) /etc/nginx/conf\.d/", first_boot)
    webroot = re.search(r"certbot certonly --webroot -w (\S+) ", first_boot).group(1)
    assert f"sudo mkdir -p {webroot}\n" in first_boot
    assert first_boot.index(installed) < first_boot.index("nginx -t") < first_boot.index("certbot certonly")
    assert "sudo cp deploy/nginx.conf /etc/nginx/conf.d/" in full and "nginx -t" in full
    generated = (project / installed).read_text()
    assert "ssl_certificate" not in generated and " ssl;" not in generated
    for conf in (generated, (project / "deploy" / "nginx.conf").read_text()):
        challenge = block(conf, "location /.well-known/acme-challenge/")
        assert directives(challenge, "root") == [webroot]
    assert "return 301 https://$host$request_uri;" in block(
        (project / "deploy" / "nginx.conf").read_text(), "location /")

    site = Site(tmp_path, [18001], 18080, 18443)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "site.conf").write_text(rewrite_first_boot(generated, site))
    site.conf.write_text(MAIN.format(root=tmp_path))
    checked = check_config(site)
    assert checked.returncode == 0, checked.stderr
    assert not site.cert.exists()
    # The full config in the same state fails: why the first-boot step exists.
    prepare(project, site)
    site.cert.unlink()
    refused = check_config(site)
    assert refused.returncode != 0 and "tls.crt" in refused.stderr


@pytest.mark.parametrize("which", ["nginx.first-boot.conf", "nginx.conf"])
def test_port_80_answers_certbot_s_challenge_from_its_webroot(projects, tmp_path, which):
    """A real nginx on each config: the token certbot writes is served over plain HTTP; the rest
    waits (first boot) or moves to HTTPS."""
    import http.client

    from newstack.smoke import free_port

    project = projects["flask-wsgi-prod"]
    site = Site(tmp_path, [free_port()], free_port(), free_port())
    if which == "nginx.conf":
        prepare(project, site)
    else:
        (tmp_path / "tmp").mkdir()
        generated = (project / "deploy" / which).read_text()
        (tmp_path / "site.conf").write_text(rewrite_first_boot(generated, site))
        site.conf.write_text(MAIN.format(root=tmp_path))
    if os.geteuid() == 0:  # workers as this user, who can read the test's private directory
        site.conf.write_text("user root;\n" + site.conf.read_text())
    token = site.webroot / ".well-known" / "acme-challenge" / "Tok3n_-x"
    token.parent.mkdir(parents=True)
    token.write_text("Tok3n_-x.thumbprint")
    server = subprocess.Popen(site.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        answers = {}
        for path in ("/.well-known/acme-challenge/Tok3n_-x", "/"):
            for _ in range(100):
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=5)
                    connection.request("GET", path, headers={"Host": "shop.example.com"})
                    response = connection.getresponse()
                    answers[path] = (response.status, response.read().decode(),
                                     response.getheader("Location"))
                    break
                except ConnectionRefusedError:
                    assert server.poll() is None, server.stderr.read().decode()
                    time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert answers["/.well-known/acme-challenge/Tok3n_-x"][:2] == (200, "Tok3n_-x.thumbprint")
    if which == "nginx.conf":
        assert answers["/"][0] == 301 and answers["/"][2] == "https://shop.example.com/"
    else:
        assert answers["/"][0] == 503


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit's keys by section, each with its values in order (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, value = line.split("=", 1)
            current.setdefault(key, []).append(value)
    return sections


def systemd_verify(unit: Path) -> subprocess.CompletedProcess:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed: `apt-get install -y systemd` (.ci/run "
                    "installs it)", pytrace=False)
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("cid", PROD_IDS)
def test_systemd_unit_runs_the_nginx_command_and_passes_systemd_analyze_verify(
        projects, tmp_path, cid):
    project = projects[cid]
    [unit_path] = (project / "deploy").glob("*.service")
    app = unit_path.stem
    text = unit_path.read_text()
    unit = unit_sections(text)
    service = unit["Service"]
    commands = readme_commands(project)
    env, argv = split_command(commands["nginx-command"])
    home = f"/srv/{app}"
    [start] = service["ExecStart"]
    assert start.split()[0] == f"{home}/.venv/bin/{argv[0]}"
    assert split_command(start)[1][1:] == argv[1:]
    [environment] = service["Environment"]
    assert dict(pair.split("=", 1) for pair in environment.split()) == env
    assert service["EnvironmentFile"] == [f"{home}/.env"]
    assert service["WorkingDirectory"] == [home]
    assert service["User"] == [app] != ["root"] and service["Group"] == [app]
    assert service["Restart"] == ["on-failure"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == [value], key
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # The README creates that user and directory and enables the unit.
    steps = readme_block(project, "systemd")
    assert f"useradd --system --home-dir {home} " in steps and f" {app}\n" in steps
    assert f"sudo cp deploy/{unit_path.name} /etc/systemd/system/" in steps
    assert f"systemctl enable --now {app}" in steps

    # systemd-analyze verify checks that ExecStart's program exists: a venv where the unit
    # expects it, pointing at this one's programs.
    root = tmp_path / "srv"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / argv[0]).symlink_to(Path(sys.executable).parent / argv[0])
    (root / ".env").touch()
    checked_unit = tmp_path / unit_path.name
    checked_unit.write_text(text.replace(home, str(root)))
    checked = systemd_verify(checked_unit)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr
    # and it reports a misspelt key or a bad value (on stderr, still exiting 0)
    checked_unit.write_text(text.replace(home, str(root)).replace(
        "ProtectSystem=strict", "ProtectSystem=strictly").replace("Restart=", "Restrat="))
    complaints = systemd_verify(checked_unit).stderr
    assert "Unknown key" in complaints and "Restrat" in complaints, complaints
    assert "protect system" in complaints.lower(), complaints


# Compose --------------------------------------------------------------------------------------

COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"  # see schemas/README.md


def compose_errors(document: dict) -> list[str]:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("cid", PROD_IDS)
def test_compose_file_fits_the_spec_and_the_project(projects, cid):
    project = projects[cid]
    stack = find_combination(cid).stack
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    assert compose_errors(compose) == []
    services = compose["services"]
    app, migrate, nginx, db = (services[name] for name in ("app", "migrate", "nginx", "db"))

    # The image the Dockerfile builds, on the port it sets, with the settings the app reads.
    port = re.search(r"PORT=(\d+)", (project / "Dockerfile").read_text()).group(1)
    assert app["build"] == migrate["build"] == "." and app["image"] == migrate["image"]
    assert app["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert app["env_file"] == migrate["env_file"] == ".env"
    assert ".env" in (project / ".gitignore").read_text()
    env = app["environment"]
    assert env == migrate["environment"]
    user, password, name = (db["environment"][k] for k in
                            ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"))
    assert env["DATABASE_URL"] == f"postgresql://{user}:{password}@db:5432/{name}"
    example = (project / ".env.example").read_text()
    for key in env:
        assert re.search(rf"(?m)^{key}=", example) or key == "FORWARDED_ALLOW_IPS", key
    if stack.extras and dict(stack.extras).get("redis"):
        assert env["REDIS_URL"] == "redis://redis:6379/0" and "redis" in services
        assert app["depends_on"]["redis"] == {"condition": "service_healthy"}
    else:
        assert "REDIS_URL" not in env and "redis" not in services

    # Migrations first, to completion; the database healthy before either.
    assert " ".join(migrate["command"]) == stack.migrate
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert migrate["depends_on"]["db"] == app["depends_on"]["db"] == {
        "condition": "service_healthy"}
    assert "healthcheck" in db and migrate["restart"] == "no"

    # nginx: the project's config pointed at the app service, certbot's files from the host.
    assert nginx["profiles"] == ["nginx"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nginx["volumes"]}
    conf = mounts["/etc/nginx/conf.d/default.conf"]
    assert (project / conf).exists()
    upstream = block((project / conf).read_text(), f"upstream {app['image'].replace('-', '_')}")
    assert directives(upstream, "server")[0].startswith(f"app:{port} ")
    generated = (project / "deploy" / "nginx.conf").read_text()
    assert changed_lines(generated, (project / conf).read_text()) == [
        "    server 127.0.0.1:8000 max_fails=0;"]
    assert mounts["/var/www/certbot"] == "/var/www/certbot"
    assert mounts["/etc/letsencrypt"] == "/etc/letsencrypt"
    if stack.prod_setup:  # Django: the static files nginx serves
        static = directives(block(generated, "location /static/"), "alias")[0].rstrip("/")
        assert static in mounts
        assert nginx["depends_on"]["collectstatic"] == {
            "condition": "service_completed_successfully"}
    assert nginx["depends_on"]["app"] == {"condition": "service_healthy"}
    assert "HEALTHCHECK" in (project / "Dockerfile").read_text()
    readme = readme_block(project, "compose")
    assert "docker compose up" in readme and "--profile nginx" in readme


def test_compose_schema_catches_a_broken_file(projects):
    compose = yaml.safe_load((projects["flask-wsgi-prod"] / "compose.yaml").read_text())
    compose["services"]["app"]["depends_on"]["migrate"]["condition"] = "service_finished"
    compose["services"]["app"]["portz"] = ["8000:8000"]
    errors = compose_errors(compose)
    assert any("service_finished" in e for e in errors) and any("portz" in e for e in errors)


# Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("cid", PROD_IDS)
def test_manifests_validate_offline(projects, cid, version, record_property):
    import kubernetes_validate

    checked = []
    for manifest in manifests(projects[cid]).values():
        kubernetes_validate.validate(manifest, version, strict=True)
        checked.append(manifest["kind"])
    assert len(checked) == len(MANIFESTS)
    record_property("figures", f"{cid}: kubernetes-validate {kubernetes_validate.__version__} "
                               f"--strict, Kubernetes {version}: {', '.join(checked)} valid")


def test_validation_catches_a_broken_manifest(projects):
    import kubernetes_validate

    deployment = manifests(projects["flask-wsgi-prod"])["deployment"]
    http_get = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    http_get["paht"] = http_get.pop("path")
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("cid", PROD_IDS)
def test_manifests_fit_the_image_and_the_app(projects, cid):
    project = projects[cid]
    stack = find_combination(cid).stack
    found = manifests(project)
    deployment, service, hpa = found["deployment"], found["service"], found["hpa"]
    pdb, configmap = found["pdb"], found["configmap"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    dockerfile = (project / "Dockerfile").read_text()
    settings = server_settings(project)

    # One name, one set of labels, everything pointing at the Deployment's pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert service["spec"]["selector"] == labels == pdb["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["maxUnavailable"] == 1

    # The image's user and port.
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile).group(1)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]
    port = re.search(r"PORT=(\d+)", dockerfile).group(1)
    assert container["ports"] == [{"name": "http", "containerPort": int(port)}]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {
        "cpu", "memory"}

    # Probes on /healthz with a Host the app accepts; stop after what gunicorn needs.
    hosts = configmap["data"][stack.hosts_env].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] == "http"
        assert get["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    assert "localhost" in hosts
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings["graceful_timeout"]

    # The environment: settings from the ConfigMap, secrets from the Secret.
    sources = container["envFrom"]
    assert sources[0] == {"configMapRef": {"name": configmap["metadata"]["name"]}}
    secret = sources[1]["secretRef"]
    assert secret["name"] == deployment["metadata"]["name"]
    assert secret.get("optional", False) is (not stack.secret_env)
    assert stack.secret_env not in json.dumps(configmap["data"]) or not stack.secret_env
    assert configmap["data"]["FORWARDED_ALLOW_IPS"] == "*"
    if find_combination(cid).server == "gunicorn":
        assert configmap["data"]["GUNICORN_MAX_REQUESTS"] == "0"
        async_worker = stack.worker_classes[0].async_worker
        assert configmap["data"]["WEB_CONCURRENCY"] == ("1" if async_worker else "3")
    else:  # Granian: one worker per core, no recycling unless asked for
        assert configmap["data"]["WEB_CONCURRENCY"] == "1"
        assert not {k for k in configmap["data"] if "LIFETIME" in k or "MAX_RSS" in k}
    assert container["resources"]["limits"]["cpu"] == "1"


@pytest.mark.parametrize("cid", PROD_IDS)
def test_the_migration_job_is_the_app_s_pod_running_its_migrate_command(projects, cid, tmp_path):
    project = projects[cid]
    stack = find_combination(cid).stack
    found = manifests(project)
    app, job = found["deployment"]["spec"]["template"], found["jobs/migrate"]["spec"]["template"]
    [container], [migrate] = app["spec"]["containers"], job["spec"]["containers"]
    assert job["spec"]["restartPolicy"] == "Never"
    assert migrate["image"] == container["image"]
    for key in ("envFrom", "env", "securityContext"):
        assert migrate[key] == container[key], key
    for key in ("securityContext", "automountServiceAccountToken"):
        assert job["spec"][key] == app["spec"][key], key
    # its pod is not one the Service routes to or the PodDisruptionBudget counts
    assert job["metadata"]["labels"] != found["service"]["spec"]["selector"]
    assert " ".join(migrate["command"]) == stack.migrate
    # the README's and deployment.yaml's steps create every key the pods require, then migrate
    required = {ref["valueFrom"]["secretKeyRef"]["key"] for ref in container["env"]}
    for text in ((project / "README.md").read_text(),
                 (project / "deploy" / "k8s" / "deployment.yaml").read_text()):
        steps = text[text.index("kubectl create secret"):]
        steps = steps[:steps.index("kubectl apply -k deploy/k8s/\n")]
        assert {key for key in required if f"--from-literal={key}=" in steps} == required
        # the ConfigMap the Job reads exists before it runs
        assert (steps.index("kubectl apply -f deploy/k8s/configmap.yaml") <
                steps.index("kubectl apply -k deploy/k8s/jobs/") < steps.index("kubectl wait"))
    # The command works in the project with the ConfigMap's settings and the Secret's keys.
    configmap = found["configmap"]["data"]
    secrets = {stack.secret_env: "k" * 50} if stack.secret_env else {}
    database = tmp_path / "job.sqlite3"
    bin_dir = str(Path(sys.executable).parent)
    argv = [sys.executable if migrate["command"][0] == "python" else
            str(Path(bin_dir) / migrate["command"][0]), *migrate["command"][1:]]
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **configmap, **secrets,
                               "DATABASE_URL": f"sqlite:///{database}"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert database.stat().st_size > 0


@pytest.mark.parametrize("cid", PROD_IDS)
def test_ingress_routes_the_configmap_s_host_to_the_service(projects, cid):
    project = projects[cid]
    stack = find_combination(cid).stack
    found = manifests(project)
    ingress, service = found["ingress"], found["service"]
    hosts = found["configmap"]["data"][stack.hosts_env].split(",")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == hosts[0] and rule["host"] != "localhost"
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]],
                                       "secretName": f"{service['metadata']['name']}-tls"}]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": service["metadata"]["name"],
                                          "port": {"name": service["spec"]["ports"][0]["name"]}}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "10m"
    # cert-manager: documented, left for the user to switch on with their issuer
    text = (project / "deploy" / "k8s" / "ingress.yaml").read_text()
    assert "# cert-manager.io/cluster-issuer: " in text
    assert not any(key.startswith("cert-manager") for key in annotations)
    if stack.realtime:  # WebSockets and SSE outlive ingress-nginx's 60 s default
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(annotations[f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    else:
        assert "nginx.ingress.kubernetes.io/proxy-read-timeout" not in annotations


def kustomization(project: Path, where: str) -> dict:
    return yaml.safe_load((project / "deploy" / "k8s" / where / "kustomization.yaml").read_text())


@pytest.mark.parametrize("cid", PROD_IDS)
def test_kustomizations_cover_the_manifests_and_set_their_image(projects, cid):
    """No kustomize binary installs from PyPI (the `kustomize` package is an unrelated Python
    library): what `kustomize build` would check about these files, checked here."""
    project = projects[cid]
    k8s = project / "deploy" / "k8s"
    main, jobs = kustomization(project, ""), kustomization(project, "jobs")
    for found in (main, jobs):
        assert found["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
        assert found["kind"] == "Kustomization"
    # Every manifest in one of them; the Job in its own, applied and awaited first.
    listed = {*main["resources"], *(f"jobs/{r}" for r in jobs["resources"])}
    files = {str(p.relative_to(k8s)) for p in k8s.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == files == {f"{name}.yaml" for name in MANIFESTS}
    assert jobs["resources"] == ["migrate.yaml"]
    # The image: one entry, the same in both, naming the image every container is written with.
    assert main["images"] == jobs["images"]
    [entry] = main["images"]
    images = {c["image"] for m in manifests(project).values() if m["kind"] in ("Deployment", "Job")
              for c in m["spec"]["template"]["spec"]["containers"]}
    assert images == {f"{entry['name']}:{entry['newTag']}"}
    # The README's steps set it in both with `kustomize edit set image` and apply with -k.
    readme = (project / "README.md").read_text()
    for where in ("deploy/k8s", "deploy/k8s/jobs"):
        assert f"(cd {where} && kustomize edit set image {entry['name']}=$IMAGE)" in readme
    assert "kubectl apply -k deploy/k8s/jobs/\n" in readme and "kubectl apply -k deploy/k8s/\n" in readme
    assert "kubectl apply -f deploy/k8s/\n" not in readme  # it would send kustomization.yaml


def test_kubernetes_names_follow_dns_rules_for_any_project_name(tmp_path):
    from newstack import render

    name = "My_Service-" + "x" * 51 + "_y"  # 64 characters, underscores, a '-' at 63
    answers = render.Answers.complete(name, "flask", "wsgi", "prod", None, fill_defaults=True)
    project = render.generate(answers, tmp_path / "p")
    found = manifests(project)
    names = {m["metadata"]["name"] for m in found.values()}
    for label in (*names, *found["jobs/migrate"]["spec"]["template"]["metadata"]["labels"].values()):
        assert DNS_LABEL.match(label) and len(label) <= 63, label
    assert names == {"my-service-" + "x" * 51, "my-service-" + "x" * 44 + "-migrate"}


# Django under ASGI: a shared channel layer behind a setting ----------------------------------


@pytest.mark.parametrize("redis_url, backend", [
    ("", "channels.layers.InMemoryChannelLayer"),
    ("redis://127.0.0.1:6379/0", "channels_redis.core.RedisChannelLayer"),
])
def test_django_asgi_channel_layer_follows_redis_url(projects, redis_url, backend):
    project = projects["django-asgi-prod"]
    code = ("import django; django.setup(); from django.conf import settings; "
            "from channels.layers import get_channel_layer; layer = get_channel_layer(); "
            "print(settings.CHANNEL_LAYERS['default']['BACKEND'], type(layer).__name__)")
    result = run([sys.executable, "-c", code], cwd=project,
                 env={"DJANGO_SETTINGS_MODULE": "shop.settings", "DJANGO_SECRET_KEY": "x" * 50,
                      "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [backend, backend.rsplit(".", 1)[1]]


def test_django_asgi_ships_the_redis_extra(projects):
    import tomllib

    for cid in ("django-asgi-prod", "django-asgi-dev"):
        pyproject = tomllib.loads((projects[cid] / "pyproject.toml").read_text())
        assert pyproject["project"]["optional-dependencies"]["redis"] == ["channels-redis>=4.2"]
    # the image installs the lock, which holds the extra
    assert "RUN pip install --require-hashes -r requirements.txt" in (
        projects["django-asgi-prod"] / "Dockerfile").read_text()
    assert "\nchannels-redis==" in (projects["django-asgi-prod"] / "requirements.txt").read_text()
    readme = (projects["django-asgi-prod"] / "README.md").read_text()
    assert "REDIS_URL" in readme and "channels_redis" in readme
    assert "REDIS_URL=" in (projects["django-asgi-prod"] / ".env.example").read_text()


# README -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", PROD_IDS + DEV_IDS)
def test_readme_explains_the_three_ways_to_run_in_production(projects, cid):
    readme = (projects[cid] / "README.md").read_text()
    headings = re.findall(r"(?m)^#{2,3} .+$", readme)
    server = find_combination(cid).server
    section = ["## Running in production", f"### One host, {server_row(server or 'gunicorn').label} alone",
               "### One host behind nginx", "### A cluster on Kubernetes"]
    if cid.endswith("dev"):
        assert not set(section) & set(headings)
        return
    start = headings.index(section[0])
    assert headings[start:start + 4] == section
    assert "deploy/nginx.conf" in readme and "kubectl apply -k deploy/k8s/" in readme
    commands = readme_commands(projects[cid])
    env, argv = split_command(commands["nginx-command"])
    assert argv == split_command(commands["prod-command"])[1]
    recycling = {"GUNICORN_MAX_REQUESTS": "0"} if server == "gunicorn" else {}
    assert env == {"HOST": "127.0.0.1", "PORT": "8000", **recycling}
    conf = (projects[cid] / "deploy" / "nginx.conf").read_text()
    assert commands["nginx-command"] in conf


def test_the_rewrite_patterns_cover_every_absolute_path(projects):
    """Any new absolute path in the generated config would escape the test's directory."""
    conf = (projects["django-asgi-prod"] / "deploy" / "nginx.conf").read_text()
    code = re.sub(r"#[^\n]*", "", conf)
    paths = [line for line in code.splitlines()
             if re.match(r"\s*(?!location\b|return\b)\w+\s+(.*\s)?/\w", line)]
    assert len(paths) == 5, paths
    assert all(any(p.match(line) for p in PATHS.values()) for line in paths), paths
