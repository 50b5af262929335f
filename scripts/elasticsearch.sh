#!/usr/bin/env bash
# A real Elasticsearch for tests and benchmarks: Elastic's integ-test-zip from Maven Central
# (server, netty4, x-pack core+security), cached outside the repo, run as a non-root user on
# free loopback ports. With KEATRAIL_SEARCH_ENGINE=opensearch (scripts/opensearch.sh), the same
# for OpenSearch's integ-test-zip (server and netty4; no security plugin, plain HTTP).
#
#   scripts/elasticsearch.sh fetch    download the zip into the cache (mvn)
#   scripts/elasticsearch.sh start    start it (fetching if needed), wait for yellow, print its URL
#   scripts/elasticsearch.sh stop     stop the instance started by `start` (its data stays)
#   scripts/elasticsearch.sh resume   start the stopped instance again: same data, same port
#   scripts/elasticsearch.sh url      print the URL of the running instance
#
#   scripts/elasticsearch.sh cluster start      a 3-node cluster (every node master-eligible and
#                                               data), green; prints the three URLs, one a line
#   scripts/elasticsearch.sh cluster kill N     kill -9 node N (1-3)
#   scripts/elasticsearch.sh cluster resume N   start node N again (same data and ports)
#   scripts/elasticsearch.sh cluster master     the elected master's node number
#   scripts/elasticsearch.sh cluster stop       stop every node and remove the cluster's data
#   (instance dir $RUN-cluster; heap KEATRAIL_ES_CLUSTER_HEAP, default 384m per node)
#
# Environment: KEATRAIL_ES_VERSION (default 8.19.21, the newest 8.x published as integ-test-zip),
# KEATRAIL_CACHE (default ~/.cache/keatrail), KEATRAIL_ES_RUN (instance dir, default
# /tmp/keatrail-es), KEATRAIL_ES_HEAP (default 512m), ES_JAVA_HOME (default: a JDK 17 or 21).
# With KEATRAIL_SEARCH_ENGINE=opensearch: KEATRAIL_OS_VERSION (default 2.19.6, the newest 2.x that
# runs on JDK 17), KEATRAIL_OS_RUN (default /tmp/keatrail-os), KEATRAIL_ES_HEAP as above.
set -euo pipefail

ENGINE=${KEATRAIL_SEARCH_ENGINE:-elasticsearch}
CACHE=${KEATRAIL_CACHE:-$HOME/.cache/keatrail}
HEAP=${KEATRAIL_ES_HEAP:-512m}
ES_USER=keatrail-es
case "$ENGINE" in
  elasticsearch)
    VERSION=${KEATRAIL_ES_VERSION:-8.19.21}
    RUN=${KEATRAIL_ES_RUN:-/tmp/keatrail-es}
    ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$VERSION:zip
    NAME=Elasticsearch ;;
  opensearch)
    VERSION=${KEATRAIL_OS_VERSION:-2.19.6}
    RUN=${KEATRAIL_OS_RUN:-/tmp/keatrail-os}
    ARTIFACT=org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip
    NAME=OpenSearch ;;
  *) echo "KEATRAIL_SEARCH_ENGINE must be elasticsearch or opensearch, not $ENGINE" >&2; exit 2 ;;
esac
ZIP=$CACHE/$ENGINE-$VERSION.zip

log() { echo "$ENGINE.sh: $*" >&2; }

fetch() {
  [ -s "$ZIP" ] && return 0
  mkdir -p "$CACHE"
  command -v mvn >/dev/null || { log "mvn is needed to fetch $NAME from Maven Central"; exit 1; }
  log "fetching $ARTIFACT"
  mvn -q -B dependency:copy "-Dartifact=$ARTIFACT" \
    "-DoutputDirectory=$CACHE" >&2
  [ -s "$ZIP" ] || { log "download failed: $ZIP missing"; exit 1; }
}

java_home() {
  if [ -n "${ES_JAVA_HOME:-}" ]; then echo "$ES_JAVA_HOME"; return; fi
  # Elasticsearch 8 and OpenSearch 2 run on JDK 17 and 21; newer JDKs lack the Security Manager they use.
  for candidate in /usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64 /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/openjdk-17; do
    if [ -x "$candidate/bin/java" ]; then echo "$candidate"; return; fi
  done
  dirname "$(dirname "$(readlink -f "$(command -v java)")")"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_es_user() {
  if [ "$(id -u)" = 0 ]; then
    id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
    chown -R "$ES_USER" "$RUN"
    runuser -u "$ES_USER" -- env "$@"
  else
    env "$@"
  fi
}

url() { cat "$RUN/url"; }

running() {
  [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null
}

start() {
  if running; then url; return 0; fi
  fetch
  rm -rf "$RUN"
  mkdir -p "$RUN/data" "$RUN/logs"
  unzip -q "$ZIP" -d "$RUN"
  echo "$(free_port) $(free_port)" > "$RUN/ports"
  launch
}

resume() {
  if running; then url; return 0; fi
  [ -f "$RUN/ports" ] || { log "no stopped instance in $RUN to resume"; exit 1; }
  launch
}

launch() {
  local home port tport jhome
  home=$(echo "$RUN"/"$ENGINE"-*)
  read -r port tport < "$RUN/ports"
  jhome=$(java_home)
  log "starting $NAME $VERSION on 127.0.0.1:$port (java: $jhome, heap $HEAP)"
  local env=("ES_JAVA_HOME=$jhome" "ES_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP") extra=(-Expack.security.enabled=false)
  if [ "$ENGINE" = opensearch ]; then
    env=("OPENSEARCH_JAVA_HOME=$jhome" "OPENSEARCH_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP")
    extra=()
  fi
  as_es_user "${env[@]}" \
    "$home/bin/$ENGINE" -d -p "$RUN/pid" \
    -Ediscovery.type=single-node "${extra[@]}" -Enetwork.host=127.0.0.1 \
    -Ehttp.port="$port" -Etransport.port="$tport" \
    -Epath.data="$RUN/data" -Epath.logs="$RUN/logs" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    -Eaction.destructive_requires_name=false >"$RUN/stdout.log" 2>&1 || {
      log "$NAME did not start:"; tail -n 30 "$RUN/stdout.log" "$RUN"/logs/*.log 2>/dev/null >&2; exit 1; }
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 180); do
    if curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=1s" >/dev/null 2>&1; then
      echo "$url" > "$RUN/url"
      echo "$url"
      return 0
    fi
    if ! running && [ -f "$RUN/pid" ]; then break; fi
    sleep 1
  done
  log "$NAME did not become ready; its log:"
  tail -n 40 "$RUN"/logs/*.log >&2 2>/dev/null || true
  exit 1
}

stop() {
  if running; then
    local pid
    pid=$(cat "$RUN/pid")
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/pid" "$RUN/url"
}

# A 3-node cluster on loopback: one unpacked home, a data and log directory per node.
CRUN=$RUN-cluster
CHEAP=${KEATRAIL_ES_CLUSTER_HEAP:-384m}

cluster_node_running() { [ -f "$CRUN/node$1.pid" ] && kill -0 "$(cat "$CRUN/node$1.pid")" 2>/dev/null; }

cluster_launch() {
  local n=$1 home jhome seeds="" masters="" i
  home=$(echo "$CRUN"/"$ENGINE"-*)
  jhome=$(java_home)
  for i in 1 2 3; do
    seeds="$seeds${seeds:+,}127.0.0.1:$(cut -d' ' -f2 "$CRUN/ports$i")"
    masters="$masters${masters:+,}node$i"
  done
  local port tport
  read -r port tport < "$CRUN/ports$n"
  mkdir -p "$CRUN/data$n" "$CRUN/logs$n"
  [ "$(id -u)" = 0 ] && chown -R "$ES_USER" "$CRUN"
  log "starting cluster node $n on 127.0.0.1:$port (heap $CHEAP)"
  as_es_user "ES_JAVA_HOME=$jhome" "ES_JAVA_OPTS=-Xms$CHEAP -Xmx$CHEAP" \
    "$home/bin/$ENGINE" -d -p "$CRUN/node$n.pid" \
    -Ecluster.name=keatrail-test -Enode.name="node$n" -Expack.security.enabled=false -Enetwork.host=127.0.0.1 \
    -Ehttp.port="$port" -Etransport.port="$tport" \
    -Ediscovery.seed_hosts="$seeds" -Ecluster.initial_master_nodes="$masters" \
    -Epath.data="$CRUN/data$n" -Epath.logs="$CRUN/logs$n" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    -Eaction.destructive_requires_name=false >"$CRUN/stdout$n.log" 2>&1 || {
      log "cluster node $n did not start:"; tail -n 30 "$CRUN/stdout$n.log" "$CRUN"/logs"$n"/*.log 2>/dev/null >&2; exit 1; }
}

cluster_wait() {
  local status=$1 port
  read -r port _ < "$CRUN/ports1"
  for _ in $(seq 1 240); do
    for i in 1 2 3; do
      read -r port _ < "$CRUN/ports$i"
      if curl -fsS "http://127.0.0.1:$port/_cluster/health?wait_for_status=$status&wait_for_nodes=${2:-3}&timeout=1s" >/dev/null 2>&1; then return 0; fi
    done
    sleep 1
  done
  log "the cluster did not become $status; node logs:"
  tail -n 20 "$CRUN"/logs*/*.log >&2 2>/dev/null || true
  exit 1
}

cluster() {
  [ "$ENGINE" = elasticsearch ] || { log "cluster: Elasticsearch only"; exit 2; }
  case "${1:-}" in
    start)
      fetch
      cluster stop
      mkdir -p "$CRUN"
      unzip -q "$ZIP" -d "$CRUN"
      for i in 1 2 3; do echo "$(free_port) $(free_port)" > "$CRUN/ports$i"; done
      for i in 1 2 3; do cluster_launch "$i"; done
      cluster_wait green 3
      for i in 1 2 3; do echo "http://127.0.0.1:$(cut -d' ' -f1 "$CRUN/ports$i")"; done ;;
    kill) kill -9 "$(cat "$CRUN/node$2.pid")"; rm -f "$CRUN/node$2.pid" ;;
    resume) cluster_node_running "$2" || cluster_launch "$2" ;;
    master)
      local i port name
      for i in 1 2 3; do
        cluster_node_running "$i" || continue
        read -r port _ < "$CRUN/ports$i"
        name=$(curl -fsS "http://127.0.0.1:$port/_cat/master?h=node" 2>/dev/null) || continue
        echo "${name#node}" | tr -d '[:space:]'; echo; return 0
      done
      exit 1 ;;
    stop)
      for i in 1 2 3; do
        if cluster_node_running "$i"; then kill -9 "$(cat "$CRUN/node$i.pid")"; fi
      done
      rm -rf "$CRUN" ;;
    *) echo "usage: $0 cluster start|kill N|resume N|master|stop" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  cluster) shift; cluster "$@" ;;
  fetch) fetch ;;
  start) start ;;
  resume) resume ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 fetch|start|stop|resume|url|cluster" >&2; exit 2 ;;
esac
