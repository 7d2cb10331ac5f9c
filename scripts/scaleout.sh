#!/usr/bin/env bash
# scaleout.sh — tokenrelay scaled out on one machine: every service its own
# process, two OrderProcessing replicas behind the gateway, PostgreSQL for
# state. It builds the binaries into a temporary directory, creates a fresh
# set of schemas (scaleout_<time>_<pid>_<service>) in the database of
# TOKENRELAY_TEST_POSTGRES_URL, generates key rings and vault keys in a
# temporary data directory, starts identity, the gateway, coupons, points,
# payments and two orderprocessing replicas on free loopback ports (the
# others are ready only once they have the gateway's keys), seeds the
# demo data through the gateway, runs complete checkouts through it, and
# stops everything it started (by pid), drops its schemas and removes its
# temporary files, on success, failure or Ctrl-C alike.
#
#   make scaleout                      # or: scripts/scaleout.sh
#   SCALEOUT_KEEP=1 scripts/scaleout.sh  # keep running after the checkouts until Ctrl-C
#   SCALEOUT_CHECKOUTS=5 scripts/scaleout.sh
#   SCALEOUT_RUN='go run ./bench/load -url "$SCALEOUT_GATEWAY" ...' scripts/scaleout.sh
#
# With SCALEOUT_RUN set, the script seeds the demo data only (no demo
# checkouts) and then runs that command with bash from the repository root,
# with the deployment in the environment: SCALEOUT_GATEWAY (the gateway's
# base URL), SCALEOUT_PIDS (the pids of every process it started, comma-
# separated) and SCALEOUT_METRICS (their base URLs, in the same order, each
# serving /metrics). The command's exit status is the script's; everything
# is stopped and removed afterwards as always. make bench-scaleout uses it.
#
# Logs of every process are in $WORK/logs while it runs; on failure their
# last lines are printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_URL="${TOKENRELAY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
CHECKOUTS="${SCALEOUT_CHECKOUTS:-3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tokenrelay-scaleout.XXXXXX")"
PREFIX="scaleout_$(date +%s)_$$"
BIN="$WORK/bin"
DATA="$WORK/data"
LOGS="$WORK/logs"
PIDS=()
BASES=() # base URL of each process in PIDS, same order
STATUS=1

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#PIDS[@]})); then
    log "stopping ${#PIDS[@]} processes: ${PIDS[*]}"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      local alive=0
      for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.2
    done
    kill -KILL "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  if ((STATUS != 0)) && [[ -d "$LOGS" ]]; then
    for f in "$LOGS"/*.log; do
      [[ -s "$f" ]] || continue
      printf -- '--- %s (last lines)\n' "$(basename "$f")" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [[ -x "$BIN/scaleoutctl" ]]; then
    "$BIN/scaleoutctl" drop-schemas -db "$PG_URL" -prefix "$PREFIX" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BIN" "$DATA" "$LOGS"
chmod 700 "$DATA"

log "building the binaries into $BIN"
cd "$ROOT"
for svc in identity gateway coupons points payments orderprocessing; do
  go build -o "$BIN/${svc}d" "./services/$svc/cmd/${svc}d"
done
go build -o "$BIN/scaleoutctl" ./services/scaleout/cmd/scaleoutctl

if ! "$BIN/scaleoutctl" ping -db "$PG_URL"; then
  log "PostgreSQL is not reachable at TOKENRELAY_TEST_POSTGRES_URL; start it or set the variable"
  exit 1
fi

mapfile -t P < <("$BIN/scaleoutctl" ports 7)
GW=${P[0]} ID=${P[1]} CO=${P[2]} PT=${P[3]} PAY=${P[4]} OP1=${P[5]} OP2=${P[6]}
url() { printf 'http://127.0.0.1:%s' "$1"; }
GW_JWKS="$(url "$GW")/.well-known/jwks.json"
# Both OrderProcessing replicas serve the one key set they share: a domain
# tries them in turn, so one replica down does not lock it out.
OP_JWKS="$(url "$OP1")/.well-known/jwks.json,$(url "$OP2")/.well-known/jwks.json"

cat >"$WORK/routes.json" <<JSON
{"routes": [
  {"capability": "coupons:redeem",   "issuer": "coupons",  "stage": 1, "endpoint": "$(url "$CO")",  "jwks": "$(url "$CO")/.well-known/jwks.json"},
  {"capability": "points:spend",     "issuer": "points",   "stage": 1, "endpoint": "$(url "$PT")",  "jwks": "$(url "$PT")/.well-known/jwks.json"},
  {"capability": "payments:capture", "issuer": "payments", "stage": 2, "endpoint": "$(url "$PAY")", "jwks": "$(url "$PAY")/.well-known/jwks.json"}
]}
JSON

# The gateway's Txn-Token Service lets OrderProcessing (either replica: one
# key set) continue its orders' transactions on every saga call.
cat >"$WORK/workloads.json" <<JSON
{"workloads": [{"name": "order-processing", "jwks": "$OP_JWKS", "subjects": ["*"],
  "scopes": ["coupons:redeem", "points:spend", "payments:capture"], "continue": true}]}
JSON

# start NAME PORT BINARY ARGS...: one process, logging to $LOGS/NAME.log.
start() {
  local name=$1 port=$2 bin=$3
  shift 3
  "$BIN/$bin" -addr "127.0.0.1:$port" -data "$DATA/$name" "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  BASES+=("$(url "$port")")
  log "started $name (pid $!) at $(url "$port")"
}
healthy() { "$BIN/scaleoutctl" wait -url "$(url "$1")" -timeout 30s; }
# keys PORT N: healthy, then N peers' key sets loaded. Readiness waits for
# the gateway's keys only: OrderProcessing and the domains trust each
# other's, and the first to start fails its first fetch of the other's and
# answers unavailable for up to a second after (scaleout.WaitKeysLoaded).
keys() { "$BIN/scaleoutctl" wait -url "$(url "$1")" -timeout 30s -keys "$2"; }

store() { printf -- '-db\n%s\n-schema\n%s\n-db-max-conns\n4\n' "$PG_URL" "${PREFIX}_$1"; }
mapfile -t S_ID < <(store identity)
mapfile -t S_CO < <(store coupons)
mapfile -t S_PT < <(store points)
mapfile -t S_PAY < <(store payments)
mapfile -t S_OP < <(store orderprocessing)

log "schemas ${PREFIX}_* in $(sed -E 's#//[^@/]*@#//#' <<<"$PG_URL")"
# The gateway first (after identity, whose keys it trusts by URL): every
# other process is ready only once it has loaded the gateway's keys
# (gateway-keys), and the gateway's own readiness waits for no peer's keys.
start identity "$ID" identityd "${S_ID[@]}" -issuer "$(url "$ID")" -seed-demo-users -gateway-jwks "$GW_JWKS"
start gateway "$GW" gatewayd -workloads-file "$WORK/workloads.json" \
  -issuer "$(url "$ID")=$(url "$ID")/.well-known/jwks.json" \
  -route "identity=$(url "$ID")" -route "coupons=$(url "$CO")" -route "points=$(url "$PT")" \
  -route "payments=$(url "$PAY")" -route "orderprocessing=$(url "$OP1"),$(url "$OP2")"
healthy "$GW"
for svc in coupons:"$CO":couponsd:S_CO points:"$PT":pointsd:S_PT payments:"$PAY":paymentsd:S_PAY; do
  IFS=: read -r name port bin var <<<"$svc"
  declare -n store_args="$var"
  start "$name" "$port" "$bin" "${store_args[@]}" -gateway-jwks "$GW_JWKS" -order-processing-jwks "$OP_JWKS"
  unset -n store_args
done
# The replicas share one key ring and one set of vault keys: the first
# creates them, so the second starts once the first is up.
OP_SHARED=(-keys "$DATA/order-processing/keys" -vault "$DATA/order-processing/vault"
  -routes "$WORK/routes.json" -gateway-jwks "$GW_JWKS" -txn-token-url "$(url "$GW")")
start order-processing-1 "$OP1" orderprocessingd "${S_OP[@]}" "${OP_SHARED[@]}"
healthy "$OP1"
start order-processing-2 "$OP2" orderprocessingd "${S_OP[@]}" "${OP_SHARED[@]}"
keys "$ID" 1                                                    # the gateway's
for port in "$CO" "$PT" "$PAY"; do keys "$port" 2; done          # the gateway's, OrderProcessing's
for port in "$OP1" "$OP2"; do keys "$port" 4; done               # the gateway's, the domains'
keys "$GW" 2                                                     # identity's, OrderProcessing's (Txn-Token Service)
log "every process is healthy; the gateway is $(url "$GW")"

if [[ -n "${SCALEOUT_RUN:-}" ]]; then
  log "seeding the demo data through the gateway"
  "$BIN/scaleoutctl" seed -url "$(url "$GW")" -data "$DATA"
  log "running SCALEOUT_RUN against $(url "$GW") (processes ${PIDS[*]})"
  (
    IFS=,
    export SCALEOUT_GATEWAY="$(url "$GW")" SCALEOUT_PIDS="${PIDS[*]}" SCALEOUT_METRICS="${BASES[*]}"
    unset IFS
    cd "$ROOT" && bash -euo pipefail -c "$SCALEOUT_RUN"
  )
else
  log "seeding the demo data and running $CHECKOUTS checkouts through the gateway"
  "$BIN/scaleoutctl" demo -url "$(url "$GW")" -data "$DATA" -checkouts "$CHECKOUTS"
fi

for port in "$OP1" "$OP2"; do
  placed=$(curl -fsS "$(url "$port")/metrics" | awk '/^tokenrelay_rpc_requests_total\{code="ok",procedure="\/tokenrelay.orderprocessing.v1.OrderProcessingService\/PlaceOrder"\}/ {print $2}')
  log "order-processing replica at $(url "$port") placed ${placed:-0} orders"
done

if [[ -n "${SCALEOUT_KEEP:-}" ]]; then
  log "running until Ctrl-C: gateway $(url "$GW"), logs in $LOGS"
  log "try: buf curl --http2-prior-knowledge --list-methods $(url "$GW")"
  wait -n "${PIDS[@]}" || true
fi
STATUS=0
log "scale-out run passed"
