#!/usr/bin/env bash
# Validates the Kubernetes manifests offline (issue 8, point 3):
#   1. renders the base and the k3s overlay with `kubectl kustomize`
#      (or a standalone kustomize v5 when kubectl is missing or too old);
#   2. validates every rendered object against the Kubernetes OpenAPI
#      schemas of $K8S_VERSION with kubernetes-validate (strict: unknown
#      fields are errors), from a cached virtualenv;
#   3. runs check_workloads.py: probes, requests/limits, labels, sync waves;
#   4. checks that the Argo CD Application points at a directory that renders;
#   5. checks that the superset-bundle ConfigMap lists every file of
#      dashboard/bundle/ (configMapGenerator takes no globs);
#   6. runs `promtool check config` on the rendered prometheus ConfigMap (its
#      prometheus.yml and the rules.yml generated from dev/prometheus/).
# Renders with --load-restrictor LoadRestrictionsNone: the bundle ConfigMap is
# generated from dashboard/bundle/, outside k8s/ (base/superset/kustomization.yaml).
# Installs what it lacks, idempotently, under $HOME/.cache/cinerec:
#   venv-k8s/  kubernetes-validate (PyPI)
#   bin/       kustomize (Go module proxy), only when no kubectl >= 1.27
# Exits non-zero on any failure. No cluster and no network beyond the
# package registries are needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

K8S_VERSION=${K8S_VERSION:-1.33.0}               # K3S v1.33 line
KUBERNETES_VALIDATE_VERSION=1.37.0
KUSTOMIZE_VERSION=v5.5.0
ARGOCD_VERSION=v3.5.7                           # its manifests/crds/application-crd.yaml
CACHE=${CINEREC_CACHE:-$HOME/.cache/cinerec}
VENV=$CACHE/venv-k8s
BIN=$CACHE/bin

say() { printf 'k8s/validate: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- a kustomize v5 renderer ------------------------------------------------
# The superset-bundle ConfigMap reads dashboard/bundle/ (outside k8s/), which
# kustomize's default load restrictor forbids; Argo CD needs the same flag.
render() { "${RENDER[@]}" --load-restrictor LoadRestrictionsNone "$1"; }
# K8S_RENDERER=kustomize forces the standalone kustomize (to test that path).
if [ "${K8S_RENDERER:-kubectl}" = kubectl ] && command -v kubectl >/dev/null 2>&1 \
  && kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; then
  RENDER=(kubectl kustomize)
else
  if ! { [ -x "$BIN/kustomize" ] && "$BIN/kustomize" version 2>/dev/null | grep -q "$KUSTOMIZE_VERSION"; }; then
    command -v go >/dev/null 2>&1 || {
      echo "k8s/validate: need kubectl >= 1.27 or Go (to build kustomize); Debian's kubernetes-client (1.20) is too old" >&2
      exit 1
    }
    say "installing kustomize $KUSTOMIZE_VERSION into $BIN (go install)"
    mkdir -p "$BIN"
    GOBIN=$BIN GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
  RENDER=("$BIN/kustomize" build)
fi

# --- kubernetes-validate in a cached virtualenv -------------------------------
stamp=$VENV/.kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
if [ ! -e "$stamp" ]; then
  say "creating $VENV with kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    say "installing python3-venv (Debian)"
    as_root apt-get update -qq
    as_root apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  touch "$stamp"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# --- render and validate ----------------------------------------------------
for dir in base overlays/k3s; do
  file=$out/$(echo "$dir" | tr / -).yaml
  render "$dir" > "$file"
  say "$dir: $(grep -c '^kind:' "$file") objects rendered by ${RENDER[*]}"
  # kubernetes-validate prints one line per object; keep failures visible.
  if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$file"; then
    echo "k8s/validate: $dir does not validate against Kubernetes $K8S_VERSION" >&2
    exit 1
  fi
  say "$dir: every object valid against the Kubernetes $K8S_VERSION schemas (strict)"
done

"$VENV/bin/python" check_workloads.py --self-test
"$VENV/bin/python" check_workloads.py "$out"/*.yaml

# --- the Argo CD Application ----------------------------------------------------
"$VENV/bin/python" - argocd/application.yaml <<'PY'
import os, sys, yaml
app = yaml.safe_load(open(sys.argv[1]))
assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application", "not an Argo CD Application"
src, dst = app["spec"]["source"], app["spec"]["destination"]
path = os.path.join("..", src["path"])
assert os.path.isfile(os.path.join(path, "kustomization.yaml")), f"source.path {src['path']} has no kustomization.yaml"
assert src["path"] == "k8s/overlays/k3s", "the Application must deploy the k3s overlay"
assert dst["namespace"] == "cinerec", "destination namespace must be cinerec"
assert src.get("repoURL") and src.get("targetRevision"), "repoURL and targetRevision must be set"
print(f"k8s/validate: argocd/application.yaml deploys {src['path']} into namespace {dst['namespace']}")
PY

# --- the dashboard bundle ConfigMap lists the whole bundle ------------------------
"$VENV/bin/python" - base/superset/kustomization.yaml ../dashboard/bundle <<'PY'
import os, sys, yaml
kust, bundle = sys.argv[1], sys.argv[2]
gen = [g for g in yaml.safe_load(open(kust))["configMapGenerator"] if g["name"] == "superset-bundle"][0]
listed = {}
for entry in gen["files"]:
    key, path = entry.split("=", 1)
    rel = os.path.relpath(os.path.normpath(os.path.join(os.path.dirname(kust), path)), bundle)
    assert key == rel.replace("/", "__"), f"{key}: key must be the bundle path with / as __ ({rel})"
    listed[rel] = key
files = {os.path.relpath(os.path.join(d, f), bundle) for d, _, fs in os.walk(bundle) for f in fs}
missing, extra = sorted(files - set(listed)), sorted(set(listed) - files)
assert not missing, f"dashboard/bundle files missing from superset-bundle in {kust}: {missing}"
assert not extra, f"superset-bundle lists files dashboard/bundle lacks: {extra}"
print(f"k8s/validate: superset-bundle ConfigMap carries all {len(files)} files of dashboard/bundle")
PY

# --- the Application against Argo CD's own CRD schema; sync waves and hooks ----
crd=$CACHE/argocd-$ARGOCD_VERSION/application-crd.yaml
if [ ! -s "$crd" ]; then
  say "fetching Argo CD $ARGOCD_VERSION's Application CRD (go mod download)"
  dir=$(cd "$out" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" \
    | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$(dirname "$crd")"
  cp "$dir/manifests/crds/application-crd.yaml" "$crd.tmp" && mv "$crd.tmp" "$crd"
fi
"$VENV/bin/python" check_argocd.py "$crd" argocd/application.yaml "$out/overlays-k3s.yaml"

# --- the cluster's Prometheus config and rules, as rendered -------------------------
# The prometheus ConfigMap (configMapGenerator over base/prometheus/prometheus.yml
# and dev/prometheus/rules.yml) written out as Prometheus reads it, then promtool.
command -v promtool >/dev/null 2>&1 || {
  say "installing promtool (Debian package prometheus)"
  as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}
prom=$out/prometheus
mkdir -p "$prom"
"$VENV/bin/python" - "$out/overlays-k3s.yaml" "$prom" <<'PY'
import os, sys, yaml
cms = [d for d in yaml.safe_load_all(open(sys.argv[1]))
       if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("prometheus-")]
assert len(cms) == 1, f"expected one generated prometheus ConfigMap, found {len(cms)}"
data = cms[0]["data"]
assert set(data) == {"prometheus.yml", "rules.yml"}, f"prometheus ConfigMap keys: {sorted(data)}"
for name, text in data.items():
    with open(os.path.join(sys.argv[2], name), "w") as f:
        f.write(text)
print(f"k8s/validate: {cms[0]['metadata']['name']} carries prometheus.yml and rules.yml")
PY
promtool check config "$prom/prometheus.yml"
cmp -s "$prom/rules.yml" ../dev/prometheus/rules.yml || {
  echo "k8s/validate: the cluster's rules.yml differs from dev/prometheus/rules.yml" >&2
  exit 1
}

say "OK"
