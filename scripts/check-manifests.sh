#!/usr/bin/env bash
# Validates k8s/ and argocd/: YAML lint, every Kubernetes object against the
# API schema (kubernetes-validate, strict), and the ArgoCD Application's shape.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import kubernetes_validate, yamllint' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore kubernetes-validate yamllint
python3 -m yamllint -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}' k8s argocd
objects=$(ls k8s/*.yaml | grep -v kustomization.yaml)
python3 -m kubernetes_validate --strict --quiet -k 1.29.0 $objects
python3 - <<'PY'
import os, sys, yaml
app = yaml.safe_load(open("argocd/application.yaml"))
assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1", "not an ArgoCD Application"
path = app["spec"]["source"]["path"]
assert os.path.isdir(path), f"argocd source path {path} does not exist"
kust = yaml.safe_load(open(os.path.join(path, "kustomization.yaml")))
listed = set(kust["resources"])
present = {f for f in os.listdir(path) if f.endswith(".yaml") and f != "kustomization.yaml"}
missing = present - listed
assert not missing, f"k8s files not in kustomization.yaml: {sorted(missing)}"
for r in listed:
    assert os.path.exists(os.path.join(path, r)), f"kustomization lists missing file {r}"
print(f"manifests: {len(present)} files valid, argocd application points at {path}")
PY
