#!/usr/bin/env bash
# A throw-away Keycloak for the end-to-end tests, without Docker (issue 5).
#   scripts/keycloak.sh fetch    download + unpack + pre-build the pinned Keycloak into the cache (once)
#   scripts/keycloak.sh start    start it on free loopback ports with tests/keycloak/*-realm.json imported;
#                                prints KEYCLOAK_URL=http://127.0.0.1:<port>
#   scripts/keycloak.sh stop     stop the server that `start` recorded, and only it; delete its data
#   scripts/keycloak.sh status   print the state file of the running server
# Environment: TOKENWARD_KEYCLOAK_CACHE (default ~/.cache/tokenward/keycloak),
#   TOKENWARD_KEYCLOAK_STATE (state file, default $CACHE/running.env), TOKENWARD_KEYCLOAK_TIMEOUT
#   (seconds to wait for readiness, default 180), TOKENWARD_KEYCLOAK_JAVA_HOME (a JDK 17, 21 or 25;
#   default: JAVA_HOME, else `java` on PATH).
set -euo pipefail

# The newest 26.x on Maven Central; runs on the machine's OpenJDK 17 (Keycloak 26 supports 17, 21, 25).
KC_VERSION=26.7.3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TOKENWARD_KEYCLOAK_CACHE:-$HOME/.cache/tokenward/keycloak}
DIST=$CACHE/keycloak-$KC_VERSION
STATE=${TOKENWARD_KEYCLOAK_STATE:-$CACHE/running.env}
TIMEOUT=${TOKENWARD_KEYCLOAK_TIMEOUT:-180}
REALMS=$ROOT/tests/keycloak

# Build-time options. start-dev rebuilds the server (~30 s) whenever these differ from the last
# build, so `fetch` builds once with exactly these and every `start` reuses that build.
BUILD_OPTS=(--health-enabled=true)
# C1 only and the serial GC: `start` to ready, realm import included, went from ~24 s to ~15 s on
# 2 cores (measured); these tests never run long enough for C2 to pay off.
export JAVA_OPTS_APPEND="${JAVA_OPTS_APPEND:-} -XX:TieredStopAtLevel=1 -XX:-UseG1GC -XX:+UseSerialGC"
export KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=admin
[[ -n ${TOKENWARD_KEYCLOAK_JAVA_HOME:-} ]] && export JAVA_HOME=$TOKENWARD_KEYCLOAK_JAVA_HOME

# Signals end the script through `exit`, so that the EXIT traps below (clean-up) run.
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM

say() { echo "keycloak.sh: $*" >&2; }
die() { say "$*"; exit 1; }
check_java() { [[ -x ${JAVA_HOME:-/none}/bin/java ]] || command -v java >/dev/null || die "no JDK 17+ found"; }

free_ports() {  # two distinct free loopback ports: HTTP and management (health)
    python3 -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))'
}

# launch HOME LOG [ARGS...]: start-dev in its own session, so that stopping its process group
# reaches kc.sh and the JVM and nothing else. Sets PID, PORT, MPORT.
launch() {
    local home=$1 log=$2; shift 2
    read -r PORT MPORT < <(free_ports)
    setsid "$home/bin/kc.sh" start-dev "${BUILD_OPTS[@]}" --http-host=127.0.0.1 --http-port="$PORT" \
        --http-management-port="$MPORT" "$@" </dev/null >"$log" 2>&1 &
    PID=$!
}

# wait_ready LOG [REALM...]: health/ready, then each realm's discovery document (the import is done).
wait_ready() {
    local log=$1 realm; shift
    local deadline=$((SECONDS + TIMEOUT))
    until curl -sf -o /dev/null "http://127.0.0.1:$MPORT/health/ready"; do
        kill -0 "$PID" 2>/dev/null || { tail -n 40 "$log" >&2; say "Keycloak exited during start-up"; return 1; }
        ((SECONDS < deadline)) || { tail -n 40 "$log" >&2; say "not ready after ${TIMEOUT}s"; return 1; }
        sleep 0.5
    done
    for realm in "$@"; do
        curl -sf -o /dev/null "http://127.0.0.1:$PORT/realms/$realm/.well-known/openid-configuration" ||
            { tail -n 40 "$log" >&2; say "realm $realm was not imported"; return 1; }
    done
}

# alive PID DIR: the process group PID still runs a Keycloak from DIR (not a recycled pid, not a zombie).
alive() { pgrep -a -g "$1" | grep -qF "$2/"; }

stop_group() {  # stop_group PID DIR: TERM the process group, KILL it after 30 s
    local pid=$1 dir=$2
    alive "$pid" "$dir" || return 0
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq 60); do alive "$pid" "$dir" || return 0; sleep 0.5; done
    say "still running after 30 s: KILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
}

fetch() {
    [[ -d $DIST ]] && { say "cached: $DIST"; return; }
    command -v mvn >/dev/null || die "mvn not found"
    check_java
    mkdir -p "$CACHE"
    # Leftovers of fetches killed by SIGKILL (which skips the traps).
    find "$CACHE" -maxdepth 1 -name 'fetch.*' -mmin +720 -exec rm -rf {} + 2>/dev/null || true
    local t0=$SECONDS
    TMP=$(mktemp -d "$CACHE/fetch.XXXXXX") PID=
    trap '[[ -n $PID ]] && stop_group "$PID" "$TMP"; rm -rf "$TMP"' EXIT
    say "downloading org.keycloak:keycloak-quarkus-dist:$KC_VERSION from Maven Central"
    mvn -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz" \
        -DoutputDirectory="$TMP" >"$TMP/mvn.log" 2>&1 || { cat "$TMP/mvn.log" >&2; die "download failed"; }
    tar -xzf "$TMP/keycloak-quarkus-dist-$KC_VERSION.tar.gz" -C "$TMP"
    rm "$TMP/keycloak-quarkus-dist-$KC_VERSION.tar.gz"
    say "downloaded and unpacked in $((SECONDS - t0)) s; first start (builds for dev mode, creates the database)"
    # One warm-up start-dev, kept: the dev-mode build in lib/quarkus, and the freshly created
    # database (schema + master realm, no test realm) as a template each run copies.
    local kc=$TMP/keycloak-$KC_VERSION
    launch "$kc" "$TMP/warmup.log"
    wait_ready "$TMP/warmup.log"
    stop_group "$PID" "$TMP"; PID=
    mkdir "$kc/data.template"
    mv "$kc/data/h2" "$kc/data.template/h2"
    rm -rf "$kc/data"
    # Atomic: DIST exists only when complete. -T: a concurrent fetch that won the race is kept.
    mv -T "$kc" "$DIST" 2>/dev/null || [[ -d $DIST ]]
    rm -rf "$TMP"; trap - EXIT
    say "ready in $DIST ($((SECONDS - t0)) s in all)"
}

start() {
    [[ -d $DIST ]] || fetch
    check_java
    if [[ -f $STATE ]]; then
        # shellcheck disable=SC1090
        (source "$STATE"; ! alive "$KEYCLOAK_PID" "$KEYCLOAK_RUN_DIR") ||
            die "already running (state file $STATE); run: $0 stop"
        stop
    fi
    # Old logs, and leftovers of runs whose clean-up never ran (SIGKILL skips traps).
    find "$CACHE" -maxdepth 1 -name 'run.*' -mmin +720 -exec rm -rf {} + 2>/dev/null || true
    local t0=$SECONDS run f realms=()
    run=$(mktemp -d "$CACHE/run.XXXXXX")
    # A per-run home: hard links to the read-only distribution, its own data directory (a copy
    # of the template database plus the realms to import), so no run sees another's state.
    cp -al "$DIST" "$run/kc"
    rm -rf "$run/kc/data.template"
    mkdir -p "$run/kc/data/import"
    cp -a "$DIST/data.template/h2" "$run/kc/data/h2"
    for f in "$REALMS"/*-realm.json; do
        cp "$f" "$run/kc/data/import/"
        realms+=("$(basename "$f" -realm.json)")
    done
    launch "$run/kc" "$run.log" --import-realm
    # The state goes down before the wait, so `stop` also reaches an interrupted start.
    cat >"$STATE" <<EOF
KEYCLOAK_PID=$PID
KEYCLOAK_PORT=$PORT
KEYCLOAK_MANAGEMENT_PORT=$MPORT
KEYCLOAK_URL=http://127.0.0.1:$PORT
KEYCLOAK_LOG=$run.log
KEYCLOAK_RUN_DIR=$run
EOF
    trap 'stop' EXIT
    wait_ready "$run.log" "${realms[@]}"
    trap - EXIT
    say "ready in $((SECONDS - t0)) s (pid $PID, realms: ${realms[*]}, log $run.log)"
    echo "KEYCLOAK_URL=http://127.0.0.1:$PORT"
}

stop() {
    [[ -f $STATE ]] || { say "not running (no $STATE)"; return 0; }
    local KEYCLOAK_PID KEYCLOAK_RUN_DIR KEYCLOAK_LOG
    # shellcheck disable=SC1090
    source "$STATE"
    stop_group "$KEYCLOAK_PID" "$KEYCLOAK_RUN_DIR"
    rm -rf "$KEYCLOAK_RUN_DIR" "$STATE"
    say "stopped (log kept for 12 h: $KEYCLOAK_LOG)"
}

status() {
    [[ -f $STATE ]] || die "not running"
    cat "$STATE"
}

case ${1:-} in
    fetch | start | stop | status) "$1" ;;
    *) die "usage: $0 fetch|start|stop|status" ;;
esac
