#!/bin/sh
# Starts one Redis Cluster node of a blobcache shard, and never brings it back as an empty
# master of its old slots (docs/decisions/0020-redis-node-restart-in-place.md).
#
# Redis keeps no data here (S3 is the durable tier), but the cluster config (nodes.conf)
# survives a container restart. A master restarted with it comes back with its identity and
# slots, empty, before the cluster notices it was gone; its replicas then resync from it
# and lose the blobs that were not yet in S3. So, when nodes.conf says this node was a
# master with slots and replicas, the script first hands the slots to the replica that
# holds the most data (CLUSTER FAILOVER FORCE, then TAKEOVER if the vote does not come),
# and only then starts redis-server, which rejoins with its old identity, learns that its
# slots moved on (a higher config epoch) and becomes a replica of the new master.
#
# Usage: start.sh --port PORT --dir DIR [--cluster-node-timeout MS] [redis-server options]
# The options are passed to redis-server unchanged; the script adds cluster mode, the
# config file DIR/nodes.conf, no persistence and, when REDIS_PASSWORD is set, that password
# (for clients and replication). Peers are asked with redis-cli, with the same password.
# Needs only sh, coreutils, redis-server and redis-cli.
set -eu

port=6379
dir=.
node_timeout=15000
previous=
for arg in "$@"; do
  case "$previous" in
    --port) port=$arg ;;
    --dir) dir=$arg ;;
    --cluster-node-timeout) node_timeout=$arg ;;
  esac
  previous=$arg
done

log() {
  printf '%s start.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

start_redis() {
  if [ -n "${REDIS_PASSWORD:-}" ]; then
    set -- "$@" --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD"
  fi
  exec redis-server "$@" --cluster-enabled yes --cluster-config-file nodes.conf \
    --dir "$dir" --save '' --appendonly no
}

if [ -n "${REDIS_PASSWORD:-}" ]; then
  REDISCLI_AUTH=$REDIS_PASSWORD
  export REDISCLI_AUTH
fi

conf=$dir/nodes.conf
if [ ! -s "$conf" ]; then
  log "no cluster config: starting as a new node on port $port"
  start_redis "$@"
fi

# nodes.conf lines: <id> <ip:port@cport[,hostname]> <flags> <master id|-> <ping> <pong>
# <config epoch> <link state> [slot ...]; a last line starts with 'vars'.
my_id=
my_flags=
my_slots=
while read -r id _addr flags _master _ping _pong _epoch _link slots; do
  case ",$flags," in
    *,myself,*)
      my_id=$id
      my_flags=$flags
      my_slots=$slots
      ;;
  esac
done <"$conf"

case ",$my_flags," in
  *,master,*) ;;
  *)
    log "was a replica ($my_id): rejoining as one, it resyncs from its master"
    start_redis "$@"
    ;;
esac
if [ -z "$my_slots" ]; then
  log "was a master without slots ($my_id): nothing to hand over"
  start_redis "$@"
fi

# Replicas of this node, as 'host port' lines.
replicas=
while read -r id addr flags master _rest; do
  [ "$master" = "$my_id" ] || continue
  case ",$flags," in *,fail,* | *,noaddr,*) continue ;; esac
  host=${addr%%:*}
  rport=${addr#*:}
  rport=${rport%%@*}
  replicas="$replicas$host $rport
"
done <"$conf"
if [ -z "$replicas" ]; then
  # Nothing else holds this shard's data: come back as its (empty) master. The operator
  # only allows replica-less shards with Sync durability, where S3 has every blob.
  log "was a master without replicas ($my_id): rejoining as the master of its slots"
  start_redis "$@"
fi

cr=$(printf '\r')

# Prints '<role> <master id> <replication offset>' of the node at $1:$2, or nothing.
describe() {
  nodes=$(redis-cli --no-auth-warning -h "$1" -p "$2" CLUSTER NODES </dev/null 2>/dev/null) || return 0
  role=
  master=
  while read -r _id _addr flags m _rest; do
    case ",$flags," in
      *,myself,*)
        role=slave
        case ",$flags," in *,master,*) role=master ;; esac
        master=$m
        ;;
    esac
  done <<EOF
$nodes
EOF
  [ -n "$role" ] || return 0
  offset=0
  info=$(redis-cli --no-auth-warning -h "$1" -p "$2" INFO replication </dev/null 2>/dev/null) || info=
  while IFS=: read -r field value; do
    value=${value%"$cr"}
    case "$field" in slave_repl_offset) offset=$value ;; esac
  done <<EOF
$info
EOF
  echo "$role $master $offset"
}

# Hands this node's slots to its replica with the most data, and returns once a replica is
# the master (or there is nothing to protect). A function: 'set --' in it only touches the
# function's own arguments, not the redis-server options.
hand_over_slots() {
  # Long enough for the failover the cluster may start by itself, and more.
  wait_ms=$((node_timeout * 6))
  [ "$wait_ms" -ge 30000 ] || wait_ms=30000
  started=$(date +%s)
  deadline=$((started + wait_ms / 1000))
  takeover_after=$((started + (node_timeout * 2) / 1000 + 2))
  asked=
  while :; do
    best=
    best_offset=0
    reachable=0
    while read -r host rport; do
      [ -n "$host" ] || continue
      # shellcheck disable=SC2046 # split on purpose: role, master, offset
      set -- $(describe "$host" "$rport")
      [ $# -eq 3 ] || continue
      reachable=$((reachable + 1))
      if [ "$1" = master ]; then
        log "replica $host:$rport is the master now: starting (this node rejoins as a replica)"
        return 0
      fi
      if [ "$2" = "$my_id" ] && [ "$3" -gt "$best_offset" ]; then
        best="$host $rport"
        best_offset=$3
      fi
    done <<EOF
$replicas
EOF
    now=$(date +%s)
    if [ "$reachable" -gt 0 ] && [ -z "$best" ]; then
      log "no replica holds data of this shard: rejoining as its master"
      return 0
    fi
    if [ "$now" -ge "$deadline" ]; then
      if [ "$reachable" -eq 0 ]; then
        log "no replica answered for $((wait_ms / 1000)) s: rejoining as the master of its slots"
        return 0
      fi
      log "replica $best still holds this shard's data and was not promoted: not starting (the next start tries again)"
      exit 1
    fi
    if [ -n "$best" ]; then
      # shellcheck disable=SC2086 # split on purpose: host, port
      set -- $best
      if [ -z "$asked" ]; then
        log "asking replica $1:$2 (offset $best_offset) to take over (CLUSTER FAILOVER FORCE)"
        redis-cli --no-auth-warning -h "$1" -p "$2" CLUSTER FAILOVER FORCE </dev/null >/dev/null 2>&1 || true
        asked=force
      elif [ "$asked" = force ] && [ "$now" -ge "$takeover_after" ]; then
        log "no vote came: asking replica $1:$2 to take over without one (CLUSTER FAILOVER TAKEOVER)"
        redis-cli --no-auth-warning -h "$1" -p "$2" CLUSTER FAILOVER TAKEOVER </dev/null >/dev/null 2>&1 || true
        asked=takeover
      fi
    fi
    sleep 0.2
  done
}

log "was a master with slots and replicas ($my_id): handing its slots to a replica first"
hand_over_slots
start_redis "$@"
