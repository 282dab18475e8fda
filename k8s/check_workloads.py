#!/usr/bin/env python3
"""Policy checks on rendered manifests that the OpenAPI schemas cannot express.

Usage: check_workloads.py RENDERED.yaml [RENDERED.yaml ...]
       check_workloads.py --self-test

Fails (exit 1) when
  * a Deployment/StatefulSet container lacks a readiness or a liveness probe
    (infrastructure may use tcpSocket/exec probes; cinerec's own services,
    images cinerec/*, must probe /readyz and /healthz over HTTP on the port
    named `admin`),
  * any workload container (Deployment, StatefulSet, Job; init containers
    too) lacks CPU and memory requests and limits,
  * a workload or its pod template lacks an app.kubernetes.io/{name,part-of,
    component,version} label,
  * a Job has no Argo CD sync wave (the rollout order rests on them),
  * a reference dangles: a ConfigMap/Secret named by envFrom, env or a
    volume that is not rendered, a $(VAR) in command/args that no env var or
    referenced ConfigMap defines, a Service whose selector matches no pod
    template or whose named targetPort no matching container declares.
"""
import re
import sys

import yaml

LABELS = ("name", "part-of", "component", "version")
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def problems(docs):
    out = []
    for doc in docs:
        if not doc or doc.get("kind") not in WORKLOADS:
            continue
        kind, meta = doc["kind"], doc.get("metadata", {})
        where = f"{kind}/{meta.get('name')}"
        template = doc.get("spec", {}).get("template", {})
        for what, labels in (
            ("", meta.get("labels") or {}),
            (" pod template", template.get("metadata", {}).get("labels") or {}),
        ):
            for key in LABELS:
                if not labels.get(f"app.kubernetes.io/{key}"):
                    out.append(f"{where}{what}: no app.kubernetes.io/{key} label")
        if kind == "Job" and "argocd.argoproj.io/sync-wave" not in (meta.get("annotations") or {}):
            out.append(f"{where}: no argocd.argoproj.io/sync-wave annotation")
        pod = template.get("spec", {})
        containers = [(c, False) for c in pod.get("containers") or []]
        containers += [(c, True) for c in pod.get("initContainers") or []]
        if not containers:
            out.append(f"{where}: no containers")
        for c, init in containers:
            cwhere = f"{where} container {c.get('name')}"
            res = c.get("resources") or {}
            for section in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if not (res.get(section) or {}).get(r):
                        out.append(f"{cwhere}: no {r} {section[:-1]}")
            if kind == "Job" or init:
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    out.append(f"{cwhere}: no {probe}")
                    continue
                if not str(c.get("image", "")).startswith("cinerec/"):
                    continue
                want = "/readyz" if probe == "readinessProbe" else "/healthz"
                get = p.get("httpGet") or {}
                if get.get("path") != want or get.get("port") != "admin":
                    out.append(f"{cwhere}: {probe} must be httpGet {want} on port 'admin'")
    return out


def dangling(docs):
    """References the API server would accept but that break at run time."""
    out = []
    by_kind = {}
    for d in docs:
        if d:
            by_kind.setdefault(d.get("kind"), {})[d["metadata"]["name"]] = d
    configmaps, secrets = by_kind.get("ConfigMap", {}), by_kind.get("Secret", {})

    def keys(obj):
        return set((obj.get("data") or {}).keys()) | set((obj.get("stringData") or {}).keys())

    pods = []  # (where, pod template)
    for kind in WORKLOADS:
        for name, d in by_kind.get(kind, {}).items():
            pods.append((f"{kind}/{name}", d["spec"]["template"]))
    for where, template in pods:
        pod = template.get("spec", {})
        for vol in pod.get("volumes") or []:
            if "configMap" in vol and vol["configMap"]["name"] not in configmaps:
                out.append(f"{where}: volume {vol['name']} names missing ConfigMap {vol['configMap']['name']}")
            if "secret" in vol and vol["secret"]["secretName"] not in secrets:
                out.append(f"{where}: volume {vol['name']} names missing Secret {vol['secret']['secretName']}")
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            cwhere = f"{where} container {c['name']}"
            defined = set()
            for src in c.get("envFrom") or []:
                for ref, pool in (("configMapRef", configmaps), ("secretRef", secrets)):
                    if ref in src:
                        name = src[ref]["name"]
                        if name in pool:
                            defined |= keys(pool[name])
                        elif not src[ref].get("optional"):
                            out.append(f"{cwhere}: envFrom names missing {ref[:-3]} {name}")
            for env in c.get("env") or []:
                defined.add(env["name"])
                ref = (env.get("valueFrom") or {})
                for kind, pool in (("configMapKeyRef", configmaps), ("secretKeyRef", secrets)):
                    if kind in ref and not ref[kind].get("optional"):
                        name, key = ref[kind]["name"], ref[kind]["key"]
                        if name not in pool or key not in keys(pool[name]):
                            out.append(f"{cwhere}: env {env['name']} names missing {name}/{key}")
            for arg in (c.get("command") or []) + (c.get("args") or []):
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
                    if var not in defined:
                        out.append(f"{cwhere}: $({var}) in command/args is not defined")
    for name, svc in by_kind.get("Service", {}).items():
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            continue
        matched = [
            t for _, t in pods
            if all((t.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in selector.items())
        ]
        if not matched:
            out.append(f"Service/{name}: selector {selector} matches no pod template")
            continue
        declared = {
            p.get("name")
            for t in matched
            for c in t["spec"].get("containers") or []
            for p in c.get("ports") or []
        }
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in declared:
                out.append(f"Service/{name}: targetPort {target} is declared by no matching container")
    return out


SELF_TEST = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
  labels: {app.kubernetes.io/name: bad}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: bad}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: bad}
    spec:
      containers:
        - name: bad
          image: cinerec/bad:0
          readinessProbe: {tcpSocket: {port: 1}}
          args: ["--x=$(UNDEFINED)"]
          envFrom: [{configMapRef: {name: missing}}]
          resources: {limits: {cpu: "1", memory: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  selector: {app.kubernetes.io/name: nothing}
  ports: [{port: 1, targetPort: admin}]
"""


def self_test():
    docs = list(yaml.safe_load_all(SELF_TEST))
    found = problems(docs) + dangling(docs)
    expected = [
        "Deployment/bad: no app.kubernetes.io/part-of label",
        "Deployment/bad container bad: no cpu request",
        "Deployment/bad container bad: no livenessProbe",
        "Deployment/bad container bad: readinessProbe must be httpGet /readyz on port 'admin'",
        "Deployment/bad container bad: envFrom names missing configMap missing",
        "Deployment/bad container bad: $(UNDEFINED) in command/args is not defined",
        "Service/bad: selector {'app.kubernetes.io/name': 'nothing'} matches no pod template",
    ]
    missing = [e for e in expected if e not in found]
    if missing:
        print("self-test FAILED: the checker missed", missing, file=sys.stderr)
        return 1
    print(f"check_workloads self-test: a bad Deployment and Service give {len(found)} problems, as it should")
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    found, checked = [], 0
    for path in argv:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        checked += sum(1 for d in docs if d.get("kind") in WORKLOADS)
        found += [f"{path}: {p}" for p in problems(docs) + dangling(docs)]
    for p in found:
        print(p, file=sys.stderr)
    if found:
        print(f"{len(found)} problems in {checked} workloads", file=sys.stderr)
        return 1
    print(f"{checked} workloads: probes, requests/limits, labels and sync waves present; no dangling references")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
