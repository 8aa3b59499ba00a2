#!/usr/bin/env bash
# Creates one virtualenv per peer of `bench/compare` under .venv-peers/<name>, with pinned versions
# that work next to redis-py 8 (../shared/TOOLCHAIN.md section 11). Idempotent: a venv whose
# .pins file matches its requirement line is left alone. Installs run in parallel; any failure
# fails the script. Usage: scripts/install-peers.sh [name ...]   (default: every peer)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/.venv-peers
PY=${PYTHON:-python3}
REDIS="redis[hiredis]==8.1.0 hiredis==3.5.0"

# arq 0.28 needs redis<6, so 0.25.0 is the newest that runs on redis 8. saq[redis] caps redis<8,
# so plain saq (which imports typing_extensions without declaring it). celery needs the [redis]
# extra (kombu's redis transport and its `packaging` pin).
declare -A PINS=(
    [celery]="celery[redis]==5.7.0 kombu==5.7.0 $REDIS"
    [arq]="arq==0.25.0 uvloop==0.23.0 $REDIS"
    [saq]="saq==0.26.4 typing_extensions==4.16.0 uvloop==0.23.0 $REDIS"
    [taskiq]="taskiq==0.13.0 taskiq-redis==1.2.4 uvloop==0.23.0 $REDIS"
)

install_one() {
    local name=$1 venv=$ROOT/$1 want=${PINS[$1]}
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.pins" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    rm -rf "$venv"
    # No ensurepip in the venv: the outer pip installs into it (--python), which saves seconds.
    "$PY" -m venv --without-pip "$venv"
    # shellcheck disable=SC2086  # the pins are a word list on purpose
    "$PY" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check \
        --no-input $want
    "$PY" -m pip --python "$venv/bin/python" check >/dev/null
    printf '%s' "$want" >"$venv/.pins"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(celery arq saq taskiq)
mkdir -p "$ROOT"
pids=()
for name in "${names[@]}"; do
    [ -n "${PINS[$name]:-}" ] || { echo "install-peers: unknown peer $name" >&2; exit 2; }
    # pip warns about local index folders that do not exist on these machines; the warning is noise.
    install_one "$name" > >(grep -v "is ignored: it is neither" >&2) 2>&1 &
    pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "install-peers: ${names[$i]} failed" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "install-peers: ${names[*]} ready in $ROOT" >&2
exit "$status"
