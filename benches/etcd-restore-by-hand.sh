#!/usr/bin/env bash
# The baseline for benches/etcd-drill: the etcd-restore drill's steps done by hand with etcdctl,
# the way an operator would script them. Usage: etcd-restore-by-hand.sh ENDPOINT WORKDIR
set -euo pipefail
endpoint=$1
work=$2/by-hand-$$
mkdir -p "$work"
ctl() { ETCDCTL_API=3 etcdctl "$@"; }
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}

# Take the snapshot and note what it holds.
ctl --endpoints="$endpoint" snapshot save "$work/snapshot.db" >/dev/null 2>&1
revision=$(ctl snapshot status "$work/snapshot.db" -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
keys=$(ctl --endpoints="$endpoint" get "" --prefix --keys-only --limit=1 -w json --rev="$revision" | sed 's/.*"count":\([0-9]*\).*/\1/')

# Restore into a scratch member and start it.
client=$(free_port); peer=$(free_port)
ctl snapshot restore "$work/snapshot.db" --data-dir "$work/member" --name scratch \
  --initial-cluster "scratch=http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster-token "by-hand-$$" >/dev/null 2>&1
etcd --name scratch --data-dir "$work/member" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "scratch=http://127.0.0.1:$peer" --logger=zap --log-outputs "$work/etcd.log" >/dev/null 2>&1 &
member=$!

# Wait until it serves, then check revision and key count.
until ctl --endpoints="http://127.0.0.1:$client" endpoint health >/dev/null 2>&1; do sleep 0.01; done
got=$(ctl --endpoints="http://127.0.0.1:$client" get "" --prefix --keys-only --limit=1 -w json)
[ "$(echo "$got" | sed 's/.*"revision":\([0-9]*\).*/\1/')" = "$revision" ] || { echo "revision mismatch" >&2; exit 1; }
[ "$(echo "$got" | sed 's/.*"count":\([0-9]*\).*/\1/')" = "$keys" ] || { echo "key count mismatch" >&2; exit 1; }

# Stop it and remove everything.
kill "$member"; wait "$member" 2>/dev/null || true
rm -rf "$work"
