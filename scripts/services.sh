#!/usr/bin/env bash
# Local services for fanout: real Apache Kafka (KRaft, combined broker+controller nodes) and real
# Apache Cassandra, run from their Maven Central jars with the JDK 17 `java` (no Docker, no
# release tarballs). Everything lives under .local/.
#
#   scripts/services.sh up [kafka|cassandra|all|NODE]     start (idempotent) and wait until ready
#   scripts/services.sh down [kafka|cassandra|all|NODE]   stop exactly the pids in .local/<node>/pid
#   scripts/services.sh status                            every node: running/stopped, pid, RSS, answers
#   scripts/services.sh clean-data                        stop every node, remove its data (keeps jars)
#   scripts/services.sh jars                              resolve the jars only (e.g. before going offline)
#
# Sizes (FANOUT_NODES, `make up NODES=3`):
#   1 (default) nodes `kafka` and `cassandra` on 127.0.0.1                 (.local/kafka, .local/cassandra)
#   3           nodes `kafka-1..3` and `cassandra-1..3` on 127.0.0.1/.2/.3 (.local/kafka-N, .local/cassandra-N)
# `up`/`down` of kafka, cassandra or all act on the nodes of that size; down, status and clean-data
# with no argument handle every node of both sizes. A NODE name (e.g. kafka-2) starts or stops one node.
#
# Env: FANOUT_NODES (1 or 3), FANOUT_KAFKA_HEAP (default 512m, 384m per node of 3),
#      FANOUT_CASSANDRA_HEAP (default 1G, 768M per node of 3), FANOUT_SERVICES_TIMEOUT (readiness
#      timeout in seconds, default 120, 600 for 3 nodes), JAVA (default: java).
# Cassandra server config (benchmarks/server_config.py compares them; defaults = the chosen ones):
#      FANOUT_CASSANDRA_MEMTABLE            skiplist | trie                        (default skiplist)
#      FANOUT_CASSANDRA_MEMTABLE_ALLOCATION heap_buffers | offheap_buffers | offheap_objects
#                                                                                  (default heap_buffers)
#      FANOUT_CASSANDRA_CONCURRENT_WRITES   write threads, 1-1024                  (default 8)
#      FANOUT_CASSANDRA_COMMITLOG           periodic | group                       (default periodic)
#        periodic: acknowledged at once, fsync every 10 s; a killed node (kill -9) loses the writes
#        of its last ~100 ms (its replay stops at the last sync marker), a crashed machine up to 10 s.
#        group: acknowledged once on disk (10 ms window): nothing acknowledged is lost, every write
#        waits for an fsync. Measured: benchmarks/commitlog_loss.py, README "Durability of the node".
#      They are written into .local/<node>/cassandra.yaml when the node starts (`up` of a stopped node).
# Ports on each node's address: Kafka 9092 (PLAINTEXT) + 9093 (CONTROLLER); Cassandra 9042 (CQL) +
# 7000 (storage); Cassandra JMX on 127.0.0.1:7199 (7199, 7299, 7399 for the cluster's nodes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOCAL=$ROOT/.local
JAVA=${JAVA:-java}
PYTHON=${PYTHON:-python3}
NODES=${FANOUT_NODES:-1}
ALL_NODES=(kafka cassandra kafka-1 kafka-2 kafka-3 cassandra-1 cassandra-2 cassandra-3)
# Murmur3 tokens that split the ring in three equal ranges (one token per node).
CLUSTER_TOKENS=(-9223372036854775808 -3074457345618258603 3074457345618258602)

declare -A PORT=([kafka]=9092 [cassandra]=9042)
declare -A OTHER_PORTS=([kafka]="9093" [cassandra]="7000")
declare -A MAIN_CLASS=([kafka]=kafka.Kafka [cassandra]=org.apache.cassandra.service.CassandraDaemon)

log() { printf '%s\n' "$*"; }
die() { printf 'services.sh: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------------------ nodes
# A node is `kafka` or `cassandra` (the one-node stack) or `kafka-N`/`cassandra-N` (the cluster).
kind() { echo "${1%%-*}"; }
number() { if [[ $1 == *-* ]]; then echo "${1##*-}"; else echo 1; fi; }
in_cluster() { [[ $1 == *-* ]]; }
host() { echo "127.0.0.$(number "$1")"; }
size() { if in_cluster "$1"; then echo 3; else echo 1; fi; }
jmx_port() { echo $((7199 + 100 * ($(number "$1") - 1))); }
pidfile() { echo "$LOCAL/$1/pid"; }

nodes_of() { # kind, size -> its nodes
  if [[ $2 == 1 ]]; then echo "$1"; else echo "$1-1 $1-2 $1-3"; fi
}

targets() {
  [[ $NODES == 1 || $NODES == 3 ]] || die "FANOUT_NODES must be 1 or 3, not '$NODES'"
  case ${1:-all} in
    all) echo "$(nodes_of kafka "$NODES") $(nodes_of cassandra "$NODES")" ;;
    kafka | cassandra) nodes_of "$1" "$NODES" ;;
    kafka-[123] | cassandra-[123]) echo "$1" ;;
    *) die "unknown service '$1' (expected kafka, cassandra, all, or a node such as kafka-2)" ;;
  esac
}

# True while any thread of process $1 still runs. A JVM's main thread can exit first, leaving
# the thread-group leader a zombie ("Z") while the other threads (and its sockets) live on.
alive() {
  local pid=$1 state threads
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ $state != Z ]] && return 0
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [[ ${threads:-0} -gt 1 ]]
}

# The pid recorded for node $1, if that process is alive and is that node (guards against pid reuse).
our_pid() {
  local node=$1 svc f pid cmdline
  svc=$(kind "$node")
  f=$(pidfile "$node")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$LOCAL/lib/$svc/"* && $cmdline == *"${MAIN_CLASS[$svc]}"* && $cmdline == *"$LOCAL/$node/"* ]] \
    || return 1
  echo "$pid"
}

rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The readiness check of node $1 (Kafka Metadata / CQL SELECT, expecting every node of its size).
ready_args() {
  local node=$1
  case $(kind "$node") in
    kafka) echo "kafka --host $(host "$node") --nodes $(size "$node")" ;;
    cassandra) echo "cassandra --host $(host "$node") --nodes $(size "$node")" ;;
  esac
}

# Protocol-level probe, one attempt.
answers() {
  local args
  read -r -a args <<<"$(ready_args "$1")"
  "$PYTHON" "$ROOT/scripts/wait_ready.py" "${args[@]}" --once >/dev/null 2>&1
}

server_log() {
  case $(kind "$1") in
    kafka) echo "$LOCAL/$1/logs/server.log" ;;
    cassandra) echo "$LOCAL/$1/logs/system.log" ;;
  esac
}

# ------------------------------------------------------------------------------------- jars
ensure_jars() {
  local svc=$1 lib=$LOCAL/lib/$1 pom=$ROOT/services/$1/pom.xml stamp
  stamp=$lib/.resolved
  if [[ -d $lib && -f $stamp && ! $pom -nt $stamp ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: needed once to resolve the $svc jars from Maven Central"
  log "$svc: resolving jars with Maven (services/$svc/pom.xml) ..."
  local tmp=$LOCAL/lib/.$svc.tmp
  rm -rf "$tmp"
  mkdir -p "$LOCAL/lib"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    || die "$svc: Maven could not resolve services/$svc/pom.xml"
  touch "$tmp/.resolved"
  rm -rf "$lib"
  mv "$tmp" "$lib"
}

# ----------------------------------------------------------------------------------- config
render() { # template, destination, then placeholder=value pairs: @placeholder@ -> value
  local template=$1 dest=$2 pair
  shift 2
  local args=()
  for pair in "$@"; do
    args+=(-e "s#@${pair%%=*}@#${pair#*=}#g")
  done
  sed "${args[@]}" "$template" >"$dest.tmp"
  mv "$dest.tmp" "$dest"
}

one_of() { # variable name, allowed values (the first is the default) -> its value, or die
  local name=$1 value=${!1:-$2} allowed
  shift
  for allowed in "$@"; do [[ $value == "$allowed" ]] && { echo "$value"; return 0; }; done
  die "$name must be one of $*, not '$value'"
}

concurrent_writes() {
  local value=${FANOUT_CASSANDRA_CONCURRENT_WRITES:-8}
  [[ $value =~ ^[1-9][0-9]{0,3}$ && $value -le 1024 ]] \
    || die "FANOUT_CASSANDRA_CONCURRENT_WRITES must be a number of threads from 1 to 1024, not '$value'"
  echo "$value"
}

commitlog_sync() { # periodic | group -> the cassandra.yaml lines (one line, \n-separated for sed)
  case $1 in
    group) echo 'commitlog_sync: group\ncommitlog_sync_group_window: 10ms' ;;
    periodic) echo 'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms' ;;
  esac
}

write_config() {
  local node=$1 dir=$LOCAL/$1 svc n
  svc=$(kind "$node")
  n=$(number "$node")
  mkdir -p "$dir/logs" "$dir/data"
  case $svc in
    kafka)
      local quorum="controller.quorum.bootstrap.servers=127.0.0.1:9093" rf=1 isr=1
      if in_cluster "$node"; then
        quorum="controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093" rf=3 isr=2
      fi
      render "$ROOT/services/kafka/server.properties.in" "$dir/server.properties" \
        "NODE_ID=$n" "HOST=$(host "$node")" "QUORUM=$quorum" "DIR=$dir" "RF=$rf" "MIN_ISR=$isr"
      cp "$ROOT/services/kafka/log4j2.properties" "$dir/log4j2.properties"
      ;;
    cassandra)
      local token=0 hints=false seeds=127.0.0.1:7000
      if in_cluster "$node"; then # every node a seed (as ccm does): any two can start without the third
        token=${CLUSTER_TOKENS[$((n - 1))]} hints=true seeds=127.0.0.1:7000,127.0.0.2:7000,127.0.0.3:7000
      fi
      local memtable allocation writes commitlog # checked first: a bad value stops `up` before any file is written
      memtable=$(one_of FANOUT_CASSANDRA_MEMTABLE skiplist trie)
      commitlog=$(one_of FANOUT_CASSANDRA_COMMITLOG periodic group)
      allocation=$(one_of FANOUT_CASSANDRA_MEMTABLE_ALLOCATION heap_buffers offheap_buffers offheap_objects)
      writes=$(concurrent_writes)
      mkdir -p "$dir/tmp" "$dir/triggers"
      render "$ROOT/services/cassandra/cassandra.yaml.in" "$dir/cassandra.yaml" \
        "DIR=$dir" "HOST=$(host "$node")" "TOKEN=$token" "HINTS=$hints" "SEEDS=$seeds" \
        "MEMTABLE=$memtable" "MEMTABLE_ALLOCATION=$allocation" "CONCURRENT_WRITES=$writes" \
        "COMMITLOG_SYNC=$(commitlog_sync "$commitlog")"
      cp "$ROOT/services/cassandra/logback.xml" "$dir/logback.xml"
      ;;
  esac
}

# ------------------------------------------------------------------------------------ Kafka
kafka_jvm_opts() {
  local dir=$LOCAL/$1 heap=${FANOUT_KAFKA_HEAP:-512m}
  in_cluster "$1" && heap=${FANOUT_KAFKA_HEAP:-384m}
  KAFKA_OPTS=(
    "-Xms$heap" "-Xmx$heap"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    "-Dkafka.logs.dir=$dir/logs"
    "-Dlog4j2.configurationFile=$dir/log4j2.properties"
    -cp "$LOCAL/lib/kafka/*"
  )
}

# The cluster id: the one-node stack's own; the cluster's nodes share one (kept in .local/kafka-cluster.id).
kafka_cluster_id() {
  local node=$1 idfile id
  idfile=$LOCAL/$node/cluster.id
  in_cluster "$node" && idfile=$LOCAL/kafka-cluster.id
  if [[ -s $idfile ]]; then
    cat "$idfile"
    return 0
  fi
  id=$("$JAVA" "${KAFKA_OPTS[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOCAL/$node/logs/format.log" | tail -n 1)
  [[ -n $id ]] || die "$node: StorageTool random-uuid failed (see .local/$node/logs/format.log)"
  echo "$id" >"$idfile"
  echo "$id"
}

kafka_format_once() {
  local node=$1 dir=$LOCAL/$1 cluster_id
  [[ -f $dir/data/meta.properties ]] && return 0
  kafka_jvm_opts "$node"
  cluster_id=$(kafka_cluster_id "$node")
  log "$node: formatting storage (cluster id $cluster_id)"
  # One node: controller.quorum.bootstrap.servers (dynamic quorum) + --standalone; the cluster:
  # controller.quorum.voters (static quorum) and no quorum flag. See services.md.
  local quorum_flag=(--standalone)
  in_cluster "$node" && quorum_flag=()
  if ! "$JAVA" "${KAFKA_OPTS[@]}" kafka.tools.StorageTool format -c "$dir/server.properties" \
      -t "$cluster_id" "${quorum_flag[@]}" >>"$dir/logs/format.log" 2>&1; then
    tail -n 20 "$dir/logs/format.log" >&2
    die "$node: storage format failed"
  fi
}

start_kafka() {
  local node=$1 dir=$LOCAL/$1
  kafka_format_once "$node"
  kafka_jvm_opts "$node"
  rotate_logs "$node"
  setsid nohup "$JAVA" "${KAFKA_OPTS[@]}" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/console.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$node")"
}

# -------------------------------------------------------------------------------- Cassandra
start_cassandra() {
  local node=$1 dir=$LOCAL/$1 lib=$LOCAL/lib/cassandra jamm heap=${FANOUT_CASSANDRA_HEAP:-1G}
  in_cluster "$node" && heap=${FANOUT_CASSANDRA_HEAP:-768M}
  jamm=$(ls "$lib"/jamm-*.jar 2>/dev/null | head -n 1)
  [[ -n $jamm ]] || die "cassandra: no jamm jar in $lib"
  local opts=(
    "-Xms$heap" "-Xmx$heap" -Xss256k
    # G1 settings of upstream conf/jvm17-server.options (5.0)
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
    -XX:+ExitOnOutOfMemoryError -XX:StringTableSize=1000003
    # every collection's pause in logs/gc.log (as upstream's options log them), 5 files of 10 MB
    "-Xlog:gc*=info,safepoint=info:file=$dir/logs/gc.log:time,uptime,level,tags:filecount=5,filesize=10m"
    # JPMS (Java 17)
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
  )
  # Only where the JDK has javac / the attach API (a JRE does not).
  local modules
  modules=$("$JAVA" --list-modules 2>/dev/null || true)
  if [[ $modules == *jdk.compiler@* ]]; then
    opts+=(--add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
      --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED)
  fi
  if [[ $modules == *jdk.attach@* ]]; then
    opts+=(--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED)
  fi
  opts+=(
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    -Djava.net.preferIPv4Stack=true -Djava.awt.headless=true
    -Dchronicle.analytics.disable=true
    "-javaagent:$jamm"
    "-Djna.tmpdir=$dir/tmp"
    -Dcassandra-foreground=yes
    "-Dcassandra.config=file://$dir/cassandra.yaml"
    "-Dcassandra.storagedir=$dir/data"
    "-Dcassandra.logdir=$dir/logs"
    "-Dcassandra.triggers_dir=$dir/triggers"
    "-Dlogback.configurationFile=$dir/logback.xml"
    "-Dcassandra.jmx.local.port=$(jmx_port "$node")"
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
  )
  # The cluster's nodes own fixed tokens and never bootstrap: they may start together.
  in_cluster "$node" && opts+=(-Dcassandra.consistent.rangemovement=false)
  opts+=(-cp "$lib/*")
  rotate_logs "$node"
  setsid nohup "$JAVA" "${opts[@]}" org.apache.cassandra.service.CassandraDaemon \
    >>"$dir/logs/console.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$node")"
}

# Keep one previous server log, so a failure report shows only this run's lines.
rotate_logs() {
  local node=$1 f
  for f in "$(server_log "$node")" "$LOCAL/$node/logs/console.log"; do
    if [[ -s $f ]]; then mv -f "$f" "$f.prev"; else rm -f "$f"; fi
  done
}

# ---------------------------------------------------------------------------------- commands
# Stop the given nodes: SIGTERM to all of them at once (a cluster shuts down together), then wait
# for each, SIGKILL after 30s.
stop_nodes() {
  local node f pid
  local -A pids=()
  for node in "$@"; do
    f=$(pidfile "$node")
    if ! pid=$(our_pid "$node"); then
      if [[ -f $f ]]; then log "$node: not running (removing stale pid file)"; rm -f "$f"; fi
      continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    pids[$node]=$pid
  done
  local i
  for node in "$@"; do
    [[ -n ${pids[$node]:-} ]] || continue
    pid=${pids[$node]}
    for ((i = 0; i < 300; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "$node: pid $pid still alive after 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    rm -f "$(pidfile "$node")"
    log "$node: stopped (pid $pid)"
  done
}

cmd_down() {
  local nodes
  if [[ -z ${1:-} ]]; then
    nodes=("${ALL_NODES[@]}")
    local node any=""
    for node in "${nodes[@]}"; do [[ -f $(pidfile "$node") ]] && any=1; done
    [[ -n $any ]] || log "nothing running"
  else
    read -r -a nodes <<<"$(targets "$1")"
  fi
  stop_nodes "${nodes[@]}"
}

report_failure() {
  local node=$1 pid=$2 reason=$3 logf
  logf=$(server_log "$node")
  printf '%s: NOT READY: %s\n' "$node" "$reason" >&2
  if [[ -s $logf ]]; then
    printf -- '--- last 40 lines of %s ---\n' "${logf#"$ROOT"/}" >&2
    tail -n 40 "$logf" >&2
  fi
  local console=$LOCAL/$node/logs/console.log
  if [[ -s $console ]]; then
    printf -- '--- last 40 lines of %s ---\n' "${console#"$ROOT"/}" >&2
    tail -n 40 "$console" >&2
  fi
  if alive "$pid"; then
    printf '%s: stopping pid %s\n' "$node" "$pid" >&2
    stop_nodes "$node" >&2
  fi
  rm -f "$(pidfile "$node")"
}

# Refuse to start nodes of one size while nodes of the other size run: they share addresses and ports.
check_other_size() {
  local wanted=$1 node pid
  for node in "${ALL_NODES[@]}"; do
    [[ $(size "$node") == "$wanted" ]] && continue
    if pid=$(our_pid "$node"); then
      die "$node (pid $pid) of the $(size "$node")-node stack is running: run \`make down\` first"
    fi
  done
}

cmd_up() {
  local nodes node pid p timeout
  read -r -a nodes <<<"$(targets "${1:-all}")"
  command -v "$JAVA" >/dev/null || die "java not found (OpenJDK 17 is required)"
  check_other_size "$(size "${nodes[0]}")"
  timeout=${FANOUT_SERVICES_TIMEOUT:-120}
  in_cluster "${nodes[0]}" && timeout=${FANOUT_SERVICES_TIMEOUT:-600}
  local -A since=() waiter=() outf=() started=()
  for node in "${nodes[@]}"; do
    if pid=$(our_pid "$node"); then
      if answers "$node"; then
        log "$node already running (pid $pid, RSS $(rss_mib "$pid") MiB)"
        continue
      fi
      log "$node: pid $pid is running but not answering yet; waiting for it"
      since[$node]=$(date +%s.%N)
      started[$node]=$pid
      continue
    fi
    rm -f "$(pidfile "$node")"
    local addresses=()
    for p in ${PORT[$(kind "$node")]} ${OTHER_PORTS[$(kind "$node")]}; do addresses+=("$(host "$node"):$p"); done
    [[ $(kind "$node") == cassandra ]] && addresses+=("127.0.0.1:$(jmx_port "$node")")
    for p in "${addresses[@]}"; do
      if port_open "${p%:*}" "${p#*:}"; then
        die "$node: $p is already in use by a process that is not ours ($(pidfile "$node") has no live server)"
      fi
    done
    ensure_jars "$(kind "$node")"
    write_config "$node"
  done
  # Start all (concurrently), then wait for all.
  for node in "${nodes[@]}"; do
    [[ -n ${since[$node]:-} ]] && continue
    our_pid "$node" >/dev/null && continue # already running and answering
    since[$node]=$(date +%s.%N)
    "start_$(kind "$node")" "$node"
    started[$node]=$(<"$(pidfile "$node")")
    log "$node: starting (pid ${started[$node]}, logs in .local/$node/logs/)"
  done
  local args
  for node in "${!started[@]}"; do
    outf[$node]=$(mktemp)
    read -r -a args <<<"$(ready_args "$node")"
    "$PYTHON" "$ROOT/scripts/wait_ready.py" "${args[@]}" --timeout "$timeout" \
      --pid "${started[$node]}" --since "${since[$node]}" >"${outf[$node]}" 2>&1 &
    waiter[$node]=$!
  done
  local rc=0 line secs
  for node in "${nodes[@]}"; do
    [[ -n ${waiter[$node]:-} ]] || continue
    pid=${started[$node]}
    if wait "${waiter[$node]}"; then
      line=$(tail -n 1 "${outf[$node]}")
      secs=$(awk '{print $2}' <<<"$line")
      log "$node ready in ${secs}s (pid $pid, RSS $(rss_mib "$pid") MiB; ${line#ready * })"
    else
      report_failure "$node" "$pid" "$(tail -n 1 "${outf[$node]}")"
      rc=1
    fi
    rm -f "${outf[$node]}"
  done
  return $rc
}

cmd_status() {
  local node pid ans where
  for node in "${ALL_NODES[@]}"; do
    # the cluster's nodes only once they exist
    in_cluster "$node" && [[ ! -d $LOCAL/$node ]] && continue
    where="$(host "$node"):${PORT[$(kind "$node")]}"
    if answers "$node"; then ans="answers on $where"; else ans="$where not answering"; fi
    if pid=$(our_pid "$node"); then
      printf '%-12s running  pid %-8s RSS %5s MiB  %s\n' "$node" "$pid" "$(rss_mib "$pid")" "$ans"
    else
      [[ $ans == answers* ]] && ans="$ans (another server: not this node)"
      printf '%-12s stopped  %-34s %s\n' "$node" "" "$ans"
    fi
  done
}

cmd_clean_data() {
  cmd_down
  local node
  for node in "${ALL_NODES[@]}"; do
    [[ -d $LOCAL/$node ]] || continue
    rm -rf "${LOCAL:?}/$node/data" "$LOCAL/$node/cluster.id"
    log "$node: data removed (.local/$node/data)"
  done
  rm -f "$LOCAL/kafka-cluster.id"
}

usage() {
  sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# up/down/clean-data of one checkout are serialized: two concurrent `up`s would otherwise both
# see "not running" and race to start (and bind) the same servers.
lock() {
  mkdir -p "$LOCAL"
  exec 9>"$LOCAL/.services.lock"
  if ! flock -n 9; then
    log "services.sh: waiting for another services.sh in this checkout to finish ..."
    flock -w 600 9 || die "could not lock $LOCAL/.services.lock within 600s"
  fi
}

case ${1:-} in
  up) lock; cmd_up "${2:-all}" ;;
  down) lock; cmd_down "${2:-}" ;;
  status) cmd_status ;;
  clean-data) lock; cmd_clean_data ;;
  jars) lock; ensure_jars kafka; ensure_jars cassandra ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
