#!/usr/bin/env python3
"""Checks the Argo CD side of the manifests (issue 17, point 3).

Usage: check_argocd.py APPLICATION-CRD.yaml APPLICATION.yaml RENDERED-OVERLAY.yaml

1. Validates the Application against the openAPIV3Schema of the served
   version of Argo CD's own Application CRD, strictly: every object schema
   with `properties` and no `x-kubernetes-preserve-unknown-fields` gets
   `additionalProperties: false` (what the API server's pruning / strict
   field validation does). A self-test first proves that a copy with an
   unknown field and a copy with a wrong type are rejected.
2. Checks sync waves and hooks of the rendered overlay: waves are integers,
   hooks are PreSync/Sync/PostSync/SyncFail/Skip with a valid
   hook-delete-policy, and the order holds: the Namespace before everything,
   a ConfigMap/Secret no later than the workloads that use it, the
   infrastructure StatefulSets before the Jobs, every Job before the
   Deployments of cinerec's services.
"""
import copy
import re
import sys

import jsonschema
import yaml

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
DELETE = "argocd.argoproj.io/hook-delete-policy"
HOOKS = {"PreSync", "Sync", "PostSync", "SyncFail", "Skip"}
DELETE_POLICIES = {"HookSucceeded", "HookFailed", "BeforeHookCreation"}


def strict(schema):
    """Closes every object schema with properties, except preserve-unknown ones."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def crd_validator(crd_path):
    crd = yaml.safe_load(open(crd_path))
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "Application"
    served = [v for v in crd["spec"]["versions"] if v.get("served")]
    assert served, "the CRD serves no version"
    version = served[0]
    schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # metadata is checked by the API server, not by the CRD schema.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    api = f"{crd['spec']['group']}/{version['name']}"
    return api, jsonschema.Draft4Validator(schema)


def errors(validator, api, doc):
    out = [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(doc)]
    if doc.get("apiVersion") != api:
        out.append(f"apiVersion {doc.get('apiVersion')} is not the served {api}")
    return out


def self_test(validator, api, app):
    unknown = copy.deepcopy(app)
    unknown["spec"]["source"]["pathh"] = "typo"
    wrong = copy.deepcopy(app)
    wrong["spec"]["syncPolicy"]["retry"]["limit"] = "five"
    for what, doc in (("an unknown field", unknown), ("a wrong type", wrong)):
        if not errors(validator, api, doc):
            print(f"check_argocd self-test FAILED: a copy with {what} validates", file=sys.stderr)
            return False
    print("check_argocd self-test: copies with an unknown field and with a wrong type are rejected")
    return True


def refs(pod):
    """ConfigMaps and Secrets a pod template names."""
    out = set()
    for vol in pod.get("volumes") or []:
        if "configMap" in vol:
            out.add(("ConfigMap", vol["configMap"]["name"]))
        if "secret" in vol:
            out.add(("Secret", vol["secret"]["secretName"]))
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                out.add(("ConfigMap", src["configMapRef"]["name"]))
            if "secretRef" in src:
                out.add(("Secret", src["secretRef"]["name"]))
        for env in c.get("env") or []:
            ref = env.get("valueFrom") or {}
            if "configMapKeyRef" in ref:
                out.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
            if "secretKeyRef" in ref:
                out.add(("Secret", ref["secretKeyRef"]["name"]))
    return out


def waves(docs):
    out, wave = [], {}
    for d in docs:
        meta = d.get("metadata") or {}
        key = (d["kind"], meta.get("name"))
        ann = meta.get("annotations") or {}
        raw = ann.get(WAVE, "0")
        if not re.fullmatch(r"-?[0-9]+", str(raw)):
            out.append(f"{key[0]}/{key[1]}: sync-wave {raw!r} is not an integer")
            raw = "0"
        wave[key] = int(raw)
        if HOOK in ann:
            bad = set(ann[HOOK].split(",")) - HOOKS
            if bad:
                out.append(f"{key[0]}/{key[1]}: hook {ann[HOOK]!r}: {sorted(bad)} not one of {sorted(HOOKS)}")
            if DELETE in ann and set(ann[DELETE].split(",")) - DELETE_POLICIES:
                out.append(f"{key[0]}/{key[1]}: hook-delete-policy {ann[DELETE]!r} not in {sorted(DELETE_POLICIES)}")
        elif DELETE in ann:
            out.append(f"{key[0]}/{key[1]}: hook-delete-policy without a hook")
    by_kind = lambda k: [(n, w) for (kk, n), w in wave.items() if kk == k]
    for ns, w in by_kind("Namespace"):
        for (k, n), w2 in wave.items():
            if k != "Namespace" and w2 <= w:
                out.append(f"{k}/{n} (wave {w2}) is not after Namespace/{ns} (wave {w})")
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        me = (d["kind"], d["metadata"]["name"])
        for r in refs(d["spec"]["template"].get("spec", {})):
            if r in wave and wave[r] > wave[me]:
                out.append(f"{me[0]}/{me[1]} (wave {wave[me]}) uses {r[0]}/{r[1]} of later wave {wave[r]}")
    services = [
        (d["metadata"]["name"], wave[("Deployment", d["metadata"]["name"])])
        for d in docs
        if d["kind"] == "Deployment"
        and any(str(c.get("image", "")).startswith("cinerec/") for c in d["spec"]["template"]["spec"]["containers"])
    ]
    for job, jw in by_kind("Job"):
        for sts, sw in by_kind("StatefulSet"):
            if sw >= jw:
                out.append(f"Job/{job} (wave {jw}) is not after StatefulSet/{sts} (wave {sw})")
        for dep, dw in services:
            if dw <= jw:
                out.append(f"Deployment/{dep} (wave {dw}) is not after Job/{job} (wave {jw})")
    return out, wave


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    crd, app_path, rendered = argv
    api, validator = crd_validator(crd)
    app = yaml.safe_load(open(app_path))
    if not self_test(validator, api, app):
        return 1
    found = [f"{app_path}: {e}" for e in errors(validator, api, app)]
    if not found:
        print(f"check_argocd: {app_path} is valid against the {api} Application CRD schema (unknown fields rejected)")
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    bad, wave = waves(docs)
    found += [f"{rendered}: {e}" for e in bad]
    for p in found:
        print(p, file=sys.stderr)
    if found:
        return 1
    hooks = sum(1 for d in docs if HOOK in ((d.get("metadata") or {}).get("annotations") or {}))
    print(f"check_argocd: {len(wave)} objects in waves {min(wave.values())}..{max(wave.values())}, "
          f"{hooks} hooks valid, rollout order holds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
