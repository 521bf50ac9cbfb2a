#!/usr/bin/env python3
"""Checks the deployment files without a Docker engine or a cluster.

- docker-compose.yml: parsed and validated as a Compose specification (the
  compose_spec package, a Rust implementation of the spec), then the rules the
  platform needs: every service healthy-checked, started after what it needs.
- every Kubernetes overlay, rendered by `kubectl kustomize` (paths given on the
  command line): each service a Deployment with gRPC probes, resources, a
  disruption budget, a graceful-shutdown window longer than the drain, its own
  database Secret; the region set everywhere; NATS with a JetStream domain and
  gateways.

Each rule is also run against a broken copy, which must fail: a check that
cannot fail is no check.

Usage: deploy/check.py <rendered overlay>...   (scripts/test renders them)
"""

import base64
import copy
import json
import sys

import compose_spec
import yaml

SERVICES = {"warranty": 50051, "repair": 50052, "logistics": 50053, "notification": 50054, "parts": 50055, "support": 50056}
DRAIN_SECONDS = 10  # runtime::grpc::DRAIN_TIMEOUT


class Invalid(Exception):
    pass


def require(condition, message):
    if not condition:
        raise Invalid(message)


def check_compose(doc):
    try:
        spec = compose_spec.PyCompose.from_json(json.dumps(doc))
        spec.validate()
    except Exception as error:  # the binding raises plain ValueErrors
        raise Invalid(f"not a valid Compose file: {error}") from error
    services = doc["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            require(str(port).startswith("127.0.0.1:"), f"compose: {name} publishes {port} beyond this machine")
    require(
        "${POSTGRES_PASSWORD:?" in str(services.get("postgres", {}).get("environment", {}).get("POSTGRES_PASSWORD")),
        "compose: PostgreSQL's password has no default",
    )
    for name in ("nats", "postgres", "otel-collector", "jaeger"):
        require(name in services, f"compose: no {name} service")
    nats = services["nats"]
    require(
        any("deploy/nats/nats.conf" in v for v in nats.get("volumes", [])),
        "compose: NATS must run with deploy/nats/nats.conf (fsync before acknowledging)",
    )
    for name, port in SERVICES.items():
        s = services.get(name)
        require(s is not None, f"compose: no {name} service")
        require(s.get("build") == ".", f"compose: {name} must be built from ./Dockerfile")
        require(f"aftersales-{name}" in s.get("command", []), f"compose: {name} runs its binary")
        require("healthcheck" in s, f"compose: {name} has no health check")
        require(
            str(port) in " ".join(s["healthcheck"]["test"]),
            f"compose: {name}'s health check asks its gRPC port {port}",
        )
        depends = s.get("depends_on", {})
        for infra in ("nats", "postgres"):
            require(
                depends.get(infra, {}).get("condition") == "service_healthy",
                f"compose: {name} must wait for a healthy {infra}",
            )
        env = s.get("environment", {})
        require(env.get("DATABASE_URL", "").endswith(f"/{name}"), f"compose: {name} has its own database")
        require(
            env.get("DATABASE_OWNER_URL", "").startswith(f"postgres://{name}_owner:")
            and env["DATABASE_OWNER_URL"].endswith(f"/{name}"),
            f"compose: {name} migrates as {name}_owner and runs as a role that cannot change its log",
        )
        require(env.get("NATS_URL", "").startswith(f"nats://{name}:"), f"compose: {name} connects to NATS as its own user")
        require("OTEL_EXPORTER_OTLP_ENDPOINT" in env, f"compose: {name} exports spans")
        require(
            ("AFTERSALES_OIDC_ISSUER" in env) != (env.get("AFTERSALES_ALLOW_UNAUTHENTICATED") == "true"),
            f"compose: {name} needs an OIDC issuer, or unauthenticated calls stated (not both)",
        )
    require(
        services["repair"]["depends_on"].get("warranty", {}).get("condition") == "service_healthy",
        "compose: repair must wait for a healthy warranty",
    )


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o and o.get("kind") == kind}


def check_overlay(objects, name):
    namespaces = [o for o in objects if o and o.get("kind") == "Namespace"]
    require(len(namespaces) == 1, f"{name}: one namespace")
    namespace = namespaces[0]["metadata"]["name"]
    for o in objects:
        if o and o.get("kind") != "Namespace":
            require(
                o["metadata"].get("namespace") == namespace,
                f"{name}: {o['kind']} {o['metadata']['name']} outside {namespace}",
            )
    configs = [o for o in by_kind(objects, "ConfigMap").values() if "AFTERSALES_REGION" in o.get("data", {})]
    require(len(configs) == 1, f"{name}: one aftersales ConfigMap")
    region = configs[0]["data"]["AFTERSALES_REGION"]
    require(region not in ("", "unset"), f"{name}: the region is not set")
    for variable in ("AFTERSALES_TLS_CERT", "AFTERSALES_TLS_KEY", "AFTERSALES_TLS_CA"):
        require(configs[0]["data"].get(variable, "").startswith("/tls/"), f"{name}: gRPC over TLS needs {variable}")
    issuer = configs[0]["data"].get("AFTERSALES_OIDC_ISSUER", "")
    require(issuer.startswith("https://"), f"{name}: calls must be authenticated by an https OIDC issuer")
    require(
        "AFTERSALES_ALLOW_UNAUTHENTICATED" not in configs[0]["data"],
        f"{name}: unauthenticated calls are for development machines only",
    )
    deployments = by_kind(objects, "Deployment")
    budgets = by_kind(objects, "PodDisruptionBudget")
    secrets = by_kind(objects, "Secret")
    for service, port in SERVICES.items():
        d = deployments.get(service)
        require(d is not None, f"{name}: no {service} Deployment")
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            require(
                container.get(probe, {}).get("exec", {}).get("command")
                == ["aftersales", "health", "--url", f"https://localhost:{port}"],
                f"{name}: {service} needs a gRPC health {probe} over TLS on {port}",
            )
        tls = {v["name"]: v for v in pod.get("volumes", [])}.get("tls", {})
        require(
            tls.get("secret", {}).get("secretName") == f"{service}-tls"
            and any(m["name"] == "tls" for m in container.get("volumeMounts", [])),
            f"{name}: {service} serves gRPC over TLS from the Secret {service}-tls",
        )
        certificate = by_kind(objects, "Certificate").get(service, {})
        require(
            certificate.get("spec", {}).get("secretName") == f"{service}-tls",
            f"{name}: {service}-tls must be issued by cert-manager",
        )
        resources = container.get("resources", {})
        require(
            {"cpu", "memory"} <= set(resources.get("requests", {})) and "memory" in resources.get("limits", {}),
            f"{name}: {service} needs cpu and memory requests and a memory limit",
        )
        env = {e["name"]: e for e in container.get("env", [])}
        require(
            "AFTERSALES_ALLOW_UNAUTHENTICATED" not in env,
            f"{name}: {service} must not take unauthenticated calls",
        )
        grace = int(env["AFTERSALES_DRAIN_GRACE_SECONDS"]["value"])
        require(
            pod.get("terminationGracePeriodSeconds", 30) > grace + DRAIN_SECONDS,
            f"{name}: {service}'s termination grace must exceed its drain ({grace} + {DRAIN_SECONDS} s)",
        )
        nats_secret = env.get("NATS_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name")
        nats_url = next(
            (v for k, v in secrets.get(nats_secret, {}).get("data", {}).items() if k == "url"), ""
        )
        require(base64.b64decode(nats_url).startswith(b"tls://"), f"{name}: {service} connects to NATS over TLS")
        require((nats_secret or "").startswith(f"{service}-nats"), f"{name}: {service} connects to NATS as its own user ({service}-nats)")
        require(nats_secret in secrets, f"{name}: {service}'s NATS Secret is not rendered")
        secret = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        require(secret.startswith(f"{service}-database"), f"{name}: {service} reads another's database")
        require(secret in secrets, f"{name}: {service}'s database Secret {secret} is not rendered")
        owner = env.get("DATABASE_OWNER_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
        require(
            owner.get("name") == secret and "owner-url" in secrets.get(secret, {}).get("data", {}),
            f"{name}: {service} migrates as its database's owner and runs as a role that cannot change its log (DATABASE_OWNER_URL)",
        )
        notary = [
            v["secret"]["secretName"]
            for v in pod.get("volumes", [])
            if v.get("name") == "notary" and "secret" in v
        ]
        require(
            env.get("AFTERSALES_NOTARY_KEY_FILE", {}).get("value", "").startswith("/etc/aftersales/notary/")
            and notary
            and notary[0].startswith(f"{service}-notary")
            and notary[0] in secrets,
            f"{name}: every replica of {service} signs its chain heads with one key, from the Secret {service}-notary",
        )
        keyring = [
            v["secret"]["secretName"]
            for v in pod.get("volumes", [])
            if v.get("name") == "keyring" and "secret" in v
        ]
        keyring_url = env.get("AFTERSALES_KEYRING_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
        require(
            (keyring_url.get("name") or "").startswith("keyring-database")
            and keyring_url.get("name") in secrets
            and env.get("AFTERSALES_KEY_ENCRYPTION_KEY_FILE", {}).get("value", "").startswith("/etc/aftersales/keyring/")
            and keyring
            and keyring[0].startswith("keyring-kek")
            and keyring[0] in secrets,
            f"{name}: {service} seals personal data with the region's one keyring (keyring-database, keyring-kek)",
        )
        if service == "repair":
            url = env.get("AFTERSALES_WARRANTY_URL", {}).get("value", "")
            require(url.startswith("https://"), f"{name}: repair calls warranty over TLS")
            parts = env.get("AFTERSALES_PARTS_URL", {}).get("value", "")
            require(parts.startswith("https://"), f"{name}: repair calls parts over TLS")
            for variable in ("AFTERSALES_OIDC_CLIENT_ID", "AFTERSALES_OIDC_CLIENT_SECRET"):
                ref = env.get(variable, {}).get("valueFrom", {}).get("secretKeyRef", {})
                require(ref.get("name") in secrets, f"{name}: repair calls warranty as itself: {variable} from a rendered Secret")
        if service == "parts":
            for variable in ("AFTERSALES_LOGISTICS_URL", "AFTERSALES_WARRANTY_URL"):
                url = env.get(variable, {}).get("value", "")
                require(url.startswith("https://"), f"{name}: parts calls {variable} over TLS")
            for variable in ("AFTERSALES_OIDC_CLIENT_ID", "AFTERSALES_OIDC_CLIENT_SECRET"):
                ref = env.get(variable, {}).get("valueFrom", {}).get("secretKeyRef", {})
                require(ref.get("name") in secrets, f"{name}: parts calls logistics and warranty as itself: {variable} from a rendered Secret")
            listen = env.get("AFTERSALES_PARTS_LISTEN", {}).get("value", "")
            require(listen.startswith("0.0.0.0:"), f"{name}: parts listens beyond its pod (AFTERSALES_PARTS_LISTEN)")
        labels = d["spec"]["selector"]["matchLabels"]
        require(
            any(b["spec"]["selector"]["matchLabels"] == labels for b in budgets.values()),
            f"{name}: {service} has no PodDisruptionBudget",
        )
    gateway = deployments.get("gateway")
    require(gateway is not None, f"{name}: no gateway Deployment")
    (web,) = gateway["spec"]["template"]["spec"]["containers"]
    web_env = {e["name"]: e for e in web.get("env", [])}
    require(web_env.get("AFTERSALES_GATEWAY_SECURE", {}).get("value") == "true", f"{name}: the gateway's cookies are Secure")
    for variable in ("AFTERSALES_WARRANTY_URL", "AFTERSALES_REPAIR_URL", "AFTERSALES_LOGISTICS_URL", "AFTERSALES_NOTIFICATION_URL", "AFTERSALES_PARTS_URL", "AFTERSALES_SUPPORT_URL"):
        require(web_env.get(variable, {}).get("value", "").startswith("https://"), f"{name}: the gateway calls the services over TLS")
    require("readinessProbe" in web, f"{name}: the gateway needs a readiness probe")
    conf = next(
        (o["data"]["nats.conf"] for o in by_kind(objects, "ConfigMap").values() if "nats.conf" in o.get("data", {})),
        "",
    )
    require(f"domain: {region}" in conf, f"{name}: NATS needs JetStream domain {region}")
    require("sync_interval: always" in conf, f"{name}: NATS must fsync before acknowledging")
    require(conf.count("cert_file: /etc/nats-tls/tls.crt") >= 3, f"{name}: NATS clients, routes and leaf nodes over TLS")
    require("nats://" not in conf and "nats-leaf://" not in conf, f"{name}: no plaintext NATS URL")
    leafnodes = by_kind(objects, "Service").get("nats-leafnodes", {})
    require(
        any("internal" in k for k in leafnodes.get("metadata", {}).get("annotations", {})),
        f"{name}: the link between regions is an internal load balancer",
    )
    auth = next(
        (o["data"]["authorization.conf"] for o in by_kind(objects, "ConfigMap").values() if "authorization.conf" in o.get("data", {})),
        "",
    )
    require("include ./authorization.conf" in conf and f'user: "repair"' in auth, f"{name}: NATS needs one user per service")
    require(f"aftersales.{region}.repair.>" in auth, f"{name}: NATS users are for region {region}")
    require(
        "leafnodes {" in conf and "verify: true" in conf and "no_advertise: true" in conf,
        f"{name}: regions link as leaf nodes over mutual TLS, through the load balancer only",
    )
    rules = by_kind(objects, "PrometheusRule").get("aftersales", {})
    alerts = {r.get("alert") for g in rules.get("spec", {}).get("groups", []) for r in g.get("rules", [])}
    require(
        {"ReplicaOutOfContact", "ReplicaLagging", "ForwardQueueWaiting", "ForwardQueueStuck"} <= alerts,
        f"{name}: alerts on replication from other regions and the forward queue",
    )
    require("gateway {" not in conf, f"{name}: no supercluster gateway (each region keeps its own JetStream)")
    warranty = deployments.get("warranty", {})
    (container,) = warranty["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    require(
        "AFTERSALES_REGIONS_FILE" in env
        and any(v.get("configMap", {}).get("name", "").startswith("regions") for v in warranty["spec"]["template"]["spec"]["volumes"]),
        f"{name}: warranty reads the region directory",
    )
    require(by_kind(objects, "StatefulSet").get("nats", {}).get("spec", {}).get("replicas") == 3, f"{name}: three NATS servers")
    return region


def must_fail(check, broken, what):
    try:
        check(broken)
    except Invalid:
        return
    raise SystemExit(f"self-test: a broken {what} passed the checks")


def main(paths):
    compose = yaml.safe_load(open("docker-compose.yml"))
    check_compose(compose)
    broken = copy.deepcopy(compose)
    del broken["services"]["postgres"]
    must_fail(check_compose, broken, "compose file (no postgres)")
    broken = copy.deepcopy(compose)
    del broken["services"]["repair"]["healthcheck"]
    must_fail(check_compose, broken, "compose file (a service without a health check)")
    broken = copy.deepcopy(compose)
    broken["services"]["postgres"]["ports"] = ["5432:5432"]
    must_fail(check_compose, broken, "compose file (PostgreSQL on every interface)")
    print("docker-compose.yml: valid")

    regions = set()
    for path in paths:
        objects = list(yaml.safe_load_all(open(path)))
        regions.add(check_overlay(objects, path))
        broken = copy.deepcopy(objects)
        for o in broken:
            if o and o.get("kind") == "Deployment" and o["metadata"]["name"] == "repair":
                del o["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        must_fail(lambda b: check_overlay(b, path), broken, "overlay (no readiness probe)")
        broken = [o for o in copy.deepcopy(objects) if not (o and o.get("kind") == "PodDisruptionBudget")]
        must_fail(lambda b: check_overlay(b, path), broken, "overlay (no disruption budgets)")
        broken = copy.deepcopy(objects)
        for o in broken:
            if o and o.get("kind") == "ConfigMap" and "AFTERSALES_OIDC_ISSUER" in o.get("data", {}):
                del o["data"]["AFTERSALES_OIDC_ISSUER"]
        must_fail(lambda b: check_overlay(b, path), broken, "overlay (no OIDC issuer)")
        broken = [o for o in copy.deepcopy(objects) if not (o and o.get("kind") == "Certificate")]
        must_fail(lambda b: check_overlay(b, path), broken, "overlay (no certificates)")
        print(f"{path}: valid")
    if paths:
        require(len(regions) == len(paths), "every overlay is its own region")
    print(f"regions: {', '.join(sorted(regions))}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Invalid as error:
        raise SystemExit(f"deploy/check.py: {error}")
