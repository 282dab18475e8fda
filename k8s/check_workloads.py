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
  * a Job has no Argo CD sync wave (the rollout order rests on them).
"""
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
          resources: {limits: {cpu: "1", memory: 1Gi}}
"""


def self_test():
    found = problems(yaml.safe_load_all(SELF_TEST))
    expected = [
        "Deployment/bad: no app.kubernetes.io/part-of label",
        "Deployment/bad container bad: no cpu request",
        "Deployment/bad container bad: no livenessProbe",
        "Deployment/bad container bad: readinessProbe must be httpGet /readyz on port 'admin'",
    ]
    missing = [e for e in expected if e not in found]
    if missing:
        print("self-test FAILED: the checker missed", missing, file=sys.stderr)
        return 1
    print(f"check_workloads self-test: a bad Deployment gives {len(found)} problems, as it should")
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
        found += [f"{path}: {p}" for p in problems(docs)]
    for p in found:
        print(p, file=sys.stderr)
    if found:
        print(f"{len(found)} problems in {checked} workloads", file=sys.stderr)
        return 1
    print(f"{checked} workloads: probes, requests/limits, labels and sync waves present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
