#!/usr/bin/env bash
# A scaled-out deployment on 127.0.0.1, every process on a free port:
#
#   clients ─► LB (nginx) ─► gateway 1 ─┐
#                        └─► gateway 2 ─┴─► cache (nginx proxy_cache) ─► Electric (stand-in)
#
#   deploy/run.sh run CMD [ARGS...]   start, run CMD with the URLs in its environment, stop
#   deploy/run.sh start               start and return; the URLs are in $DEPLOY_DIR/env
#   deploy/run.sh stop                stop what `start` started (by the pids it recorded)
#
# CMD (and $DEPLOY_DIR/env) get LB_URL (where clients go), GATEWAY_URLS (space-separated),
# CACHE_URL (empty without the cache), STANDIN_URL (the stand-in's shape API and its
# /_standin/counts and /_standin/items back door), ELECTRIC_SECRET, TENANT_KEYS.
#
# Environment:
#   NO_CACHE=1          gateways talk to the stand-in directly (the same picture without cache)
#   GATEWAYS=2          how many gateway replicas
#   CARGO_PROFILE       cargo profile of the examples (default release; `dev` for tests)
#   DEPLOY_DIR          where configs, logs, pids and the cache live (default: a new temp dir
#                       for `run`, removed afterwards; target/deploy for `start`/`stop`)
#   STAND_IN_LONG_POLL_HOLD_MS   the stand-in's long-poll hold (default Electric's 20000)
#   NGINX               the nginx binary (default: the one on PATH, or /usr/sbin/nginx)
#
# Needs nginx (Debian nginx-light; scripts/install-deps.sh installs it).
#
# $DEPLOY_DIR holds Electric's secret (env, cache.conf, the cache tier's error log): everything
# in it is created private (umask 077); the directory itself is 0711 and only the nginx temp
# and cache directories are the worker user's (`nobody` when run as root), 0700.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."

mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
    run | start | stop) ;;
    *) echo "usage: deploy/run.sh run CMD [ARGS...] | start | stop" >&2; exit 2 ;;
esac

GATEWAYS=${GATEWAYS:-2}
CARGO_PROFILE=${CARGO_PROFILE:-release}
NO_CACHE=${NO_CACHE:-}

stop_all() {
    local dir=$1 pid
    [ -f "$dir/pids" ] || return 0
    # Clients' side first (the LB), Electric last; TERM, then KILL what is still there.
    for pid in $(tac "$dir/pids"); do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in $(cat "$dir/pids"); do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in $(cat "$dir/pids"); do kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$dir/pids"
}

if [ "$mode" = stop ]; then
    stop_all "${DEPLOY_DIR:-target/deploy}"
    exit 0
fi

NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "nginx is missing: run scripts/install-deps.sh" >&2; exit 1; }

case "$CARGO_PROFILE" in dev | test) profile_dir=debug ;; *) profile_dir=$CARGO_PROFILE ;; esac
cargo build --quiet --profile "$CARGO_PROFILE" --example standin --example gateway
bin=${CARGO_TARGET_DIR:-target}/$profile_dir/examples

if [ "$mode" = run ]; then
    [ $# -gt 0 ] || { echo "usage: deploy/run.sh run CMD [ARGS...]" >&2; exit 2; }
    if [ -z "${DEPLOY_DIR:-}" ]; then
        DEPLOY_DIR=$(mktemp -d)
        # A directory of its own is removed with the run; one given is kept (logs, cache).
        trap 'stop_all "$DEPLOY_DIR"; rm -rf "$DEPLOY_DIR"' EXIT
    else
        trap 'stop_all "$DEPLOY_DIR"' EXIT
    fi
    # So that the EXIT trap also runs when the script is interrupted or terminated.
    trap 'exit 130' INT
    trap 'exit 143' TERM
else
    DEPLOY_DIR=${DEPLOY_DIR:-target/deploy}
    stop_all "$DEPLOY_DIR"
fi
mkdir -p "$DEPLOY_DIR/tmp" "$DEPLOY_DIR/cache"
DEPLOY_DIR=$(cd "$DEPLOY_DIR" && pwd)
: >"$DEPLOY_DIR/pids"
# What an earlier run (or an older version of this script) left readable is made private.
chmod -R go-rwx "$DEPLOY_DIR"
# nginx's workers drop root for nobody: they pass through the directory (0711, nothing in it
# listed or read) to the cache and temp directories, which are theirs and private.
chmod 711 "$DEPLOY_DIR"
user_line=""
if [ "$(id -u)" -eq 0 ]; then
    user_line="user nobody nogroup;"
    chown -R nobody:nogroup "$DEPLOY_DIR/tmp" "$DEPLOY_DIR/cache"
fi

# Every process holds a descriptor per held long-poll (two for the LB and the gateways).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    local port=$1 name=$2
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not listen on $port; its log:" >&2
    cat "$DEPLOY_DIR/$name".*log* >&2 2>/dev/null || true
    exit 1
}
# The first line matching $2 in file $1, once it is there.
wait_line() {
    local file=$1 pattern=$2 line
    for _ in $(seq 300); do
        line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)
        [ -n "$line" ] && { echo "$line"; return 0; }
        sleep 0.1
    done
    echo "no '$pattern' in $file:" >&2; cat "$file" >&2; exit 1
}
start() { "$@" & echo $! >>"$DEPLOY_DIR/pids"; }
render() {
    sed -e "s|@DIR@|$DEPLOY_DIR|g" -e "s|@USER@|$user_line|" "$@"
}

# 128 random bits. A given secret must be URL-safe: the cache tier's config matches it as
# the gateways send it (deploy/cache.nginx.conf).
export ELECTRIC_SECRET=${ELECTRIC_SECRET:-$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
[[ "$ELECTRIC_SECRET" =~ ^[A-Za-z0-9_-]+$ ]] || {
    echo "ELECTRIC_SECRET must be letters, digits, '_' and '-' only" >&2
    exit 2
}
export TENANT_KEYS=${TENANT_KEYS:-"acme=$(printf '1%.0s' {1..64}),globex=$(printf '2%.0s' {1..64})"}

STANDIN_CONTROL=1 STAND_IN_LONG_POLL_HOLD_MS=${STAND_IN_LONG_POLL_HOLD_MS:-20000} \
    start "$bin/standin" >"$DEPLOY_DIR/standin.log" 2>&1
STANDIN_URL=$(wait_line "$DEPLOY_DIR/standin.log" '^http://')
electric_port=${STANDIN_URL##*:}

CACHE_URL=""
upstream=$STANDIN_URL
if [ -z "$NO_CACHE" ]; then
    cache_port=$(free_port)
    render -e "s|@ELECTRIC_PORT@|$electric_port|g" -e "s|@CACHE_PORT@|$cache_port|g" \
        -e "s|@ELECTRIC_SECRET@|$ELECTRIC_SECRET|g" deploy/cache.nginx.conf >"$DEPLOY_DIR/cache.conf"
    start "$NGINX" -p "$DEPLOY_DIR" -c "$DEPLOY_DIR/cache.conf" -e "$DEPLOY_DIR/cache.error.log" \
        >>"$DEPLOY_DIR/cache.error.log" 2>&1
    wait_port "$cache_port" cache
    CACHE_URL=http://127.0.0.1:$cache_port
    upstream=$CACHE_URL
fi

GATEWAY_URLS=""
servers=""
for n in $(seq "$GATEWAYS"); do
    # The LB is the only trusted hop: the gateways read the client's address from it.
    ELECTRIC_URL=$upstream LISTEN_ADDR=127.0.0.1:0 TRUSTED_PROXIES=127.0.0.1/32 RUST_LOG=${RUST_LOG:-warn} \
        start "$bin/gateway" >"$DEPLOY_DIR/gateway$n.log" 2>&1
    url=$(wait_line "$DEPLOY_DIR/gateway$n.log" '^Gateway on http://' | awk '{print $3}')
    GATEWAY_URLS="$GATEWAY_URLS $url"
    servers="${servers}server ${url#http://};"
done
GATEWAY_URLS=${GATEWAY_URLS# }

lb_port=$(free_port)
render -e "s|@LB_PORT@|$lb_port|g" -e "s|@GATEWAYS@|$servers|" deploy/lb.nginx.conf >"$DEPLOY_DIR/lb.conf"
start "$NGINX" -p "$DEPLOY_DIR" -c "$DEPLOY_DIR/lb.conf" -e "$DEPLOY_DIR/lb.error.log" \
    >>"$DEPLOY_DIR/lb.error.log" 2>&1
wait_port "$lb_port" lb
LB_URL=http://127.0.0.1:$lb_port

export LB_URL GATEWAY_URLS CACHE_URL STANDIN_URL DEPLOY_DIR
# Private: it holds the secret (umask 077 above).
cat >"$DEPLOY_DIR/env" <<ENV
LB_URL=$LB_URL
GATEWAY_URLS="$GATEWAY_URLS"
CACHE_URL=$CACHE_URL
STANDIN_URL=$STANDIN_URL
ELECTRIC_SECRET=$ELECTRIC_SECRET
TENANT_KEYS=$TENANT_KEYS
DEPLOY_DIR=$DEPLOY_DIR
ENV

if [ "$mode" = start ]; then
    echo "started; clients go to $LB_URL (environment in $DEPLOY_DIR/env; stop with: DEPLOY_DIR=$DEPLOY_DIR deploy/run.sh stop)"
    exit 0
fi
"$@"
