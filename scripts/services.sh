#!/usr/bin/env bash
# Local services for fanout: one real Apache Kafka broker (KRaft, combined broker+controller)
# and one real Apache Cassandra node, both on 127.0.0.1, run from their Maven Central jars
# with the JDK 17 `java` (no Docker, no release tarballs). Everything lives under .local/.
#
#   scripts/services.sh up [kafka|cassandra|all]     start (idempotent) and wait until ready
#   scripts/services.sh down [kafka|cassandra|all]   stop exactly the pids in .local/<svc>/pid
#   scripts/services.sh status                       running/stopped, pid, RSS, protocol answers
#   scripts/services.sh clean-data                   stop, then remove .local/<svc>/data (keeps jars)
#
# Env: FANOUT_KAFKA_HEAP (default 512m), FANOUT_CASSANDRA_HEAP (default 1G),
#      FANOUT_SERVICES_TIMEOUT (readiness timeout in seconds, default 120), JAVA (default: java).
# Ports: Kafka 9092 (PLAINTEXT) + 9093 (CONTROLLER); Cassandra 9042 (CQL) + 7000 (storage) + 7199 (JMX).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOCAL=$ROOT/.local
JAVA=${JAVA:-java}
PYTHON=${PYTHON:-python3}
KAFKA_HEAP=${FANOUT_KAFKA_HEAP:-512m}
CASSANDRA_HEAP=${FANOUT_CASSANDRA_HEAP:-1G}
TIMEOUT=${FANOUT_SERVICES_TIMEOUT:-120}
ALL_SERVICES=(kafka cassandra)

declare -A PORT=([kafka]=9092 [cassandra]=9042)
declare -A OTHER_PORTS=([kafka]="9093" [cassandra]="7000 7199")
declare -A MAIN_CLASS=([kafka]=kafka.Kafka [cassandra]=org.apache.cassandra.service.CassandraDaemon)

log() { printf '%s\n' "$*"; }
die() { printf 'services.sh: %s\n' "$*" >&2; exit 1; }

pidfile() { echo "$LOCAL/$1/pid"; }

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

# The pid recorded for $1, if that process is alive and is our server (guards against pid reuse).
our_pid() {
  local svc=$1 f pid cmdline
  f=$(pidfile "$svc")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$LOCAL/lib/$svc/"* && $cmdline == *"${MAIN_CLASS[$svc]}"* ]] || return 1
  echo "$pid"
}

rss_mib() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Protocol-level probe (Kafka Metadata / CQL SELECT), one attempt.
answers() { "$PYTHON" "$ROOT/scripts/wait_ready.py" "$1" --once >/dev/null 2>&1; }

server_log() {
  case $1 in
    kafka) echo "$LOCAL/kafka/logs/server.log" ;;
    cassandra) echo "$LOCAL/cassandra/logs/system.log" ;;
  esac
}

targets() {
  case ${1:-all} in
    all) echo "${ALL_SERVICES[@]}" ;;
    kafka | cassandra) echo "$1" ;;
    *) die "unknown service '$1' (expected kafka, cassandra or all)" ;;
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
render() { # template -> destination, @LOCAL_DIR@ replaced by the absolute .local path
  sed "s#@LOCAL_DIR@#${LOCAL}#g" "$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

write_config() {
  local svc=$1 dir=$LOCAL/$1
  mkdir -p "$dir/logs" "$dir/data"
  case $svc in
    kafka)
      render "$ROOT/services/kafka/server.properties.in" "$dir/server.properties"
      cp "$ROOT/services/kafka/log4j2.properties" "$dir/log4j2.properties"
      ;;
    cassandra)
      mkdir -p "$dir/tmp" "$dir/triggers"
      render "$ROOT/services/cassandra/cassandra.yaml.in" "$dir/cassandra.yaml"
      cp "$ROOT/services/cassandra/logback.xml" "$dir/logback.xml"
      ;;
  esac
}

# ------------------------------------------------------------------------------------ Kafka
kafka_jvm_opts() {
  local dir=$LOCAL/kafka
  KAFKA_OPTS=(
    "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    "-Dkafka.logs.dir=$dir/logs"
    "-Dlog4j2.configurationFile=$dir/log4j2.properties"
    -cp "$LOCAL/lib/kafka/*"
  )
}

kafka_format_once() {
  local dir=$LOCAL/kafka cluster_id
  [[ -f $dir/data/meta.properties ]] && return 0
  kafka_jvm_opts
  cluster_id=$("$JAVA" "${KAFKA_OPTS[@]}" kafka.tools.StorageTool random-uuid 2>>"$dir/logs/format.log" | tail -n 1)
  [[ -n $cluster_id ]] || die "kafka: StorageTool random-uuid failed (see $dir/logs/format.log)"
  log "kafka: formatting storage (cluster id $cluster_id)"
  # controller.quorum.bootstrap.servers (dynamic quorum) + --standalone; see services.md.
  if ! "$JAVA" "${KAFKA_OPTS[@]}" kafka.tools.StorageTool format -c "$dir/server.properties" \
      -t "$cluster_id" --standalone >>"$dir/logs/format.log" 2>&1; then
    tail -n 20 "$dir/logs/format.log" >&2
    die "kafka: storage format failed"
  fi
  echo "$cluster_id" >"$dir/cluster.id"
}

start_kafka() {
  local dir=$LOCAL/kafka
  kafka_format_once
  kafka_jvm_opts
  rotate_logs kafka
  setsid nohup "$JAVA" "${KAFKA_OPTS[@]}" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/console.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile kafka)"
}

# -------------------------------------------------------------------------------- Cassandra
start_cassandra() {
  local dir=$LOCAL/cassandra lib=$LOCAL/lib/cassandra jamm
  jamm=$(ls "$lib"/jamm-*.jar 2>/dev/null | head -n 1)
  [[ -n $jamm ]] || die "cassandra: no jamm jar in $lib"
  local opts=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" -Xss256k
    # G1 settings of upstream conf/jvm17-server.options (5.0)
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
    -XX:+ExitOnOutOfMemoryError -XX:StringTableSize=1000003
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
    -Dcassandra.jmx.local.port=7199
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
    -cp "$lib/*"
  )
  rotate_logs cassandra
  setsid nohup "$JAVA" "${opts[@]}" org.apache.cassandra.service.CassandraDaemon \
    >>"$dir/logs/console.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile cassandra)"
}

# Keep one previous server log, so a failure report shows only this run's lines.
rotate_logs() {
  local svc=$1 f
  for f in "$(server_log "$svc")" "$LOCAL/$svc/logs/console.log"; do
    if [[ -s $f ]]; then mv -f "$f" "$f.prev"; else rm -f "$f"; fi
  done
}

# ---------------------------------------------------------------------------------- commands
stop_one() {
  local svc=$1 f pid
  f=$(pidfile "$svc")
  if ! pid=$(our_pid "$svc"); then
    [[ -f $f ]] && log "$svc: not running (removing stale pid file)" || log "$svc: not running"
    rm -f "$f"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$svc: pid $pid still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$f"
  log "$svc: stopped (pid $pid)"
}

cmd_down() {
  local svc
  for svc in $(targets "${1:-all}"); do stop_one "$svc"; done
}

report_failure() {
  local svc=$1 pid=$2 reason=$3 logf
  logf=$(server_log "$svc")
  printf '%s: NOT READY: %s\n' "$svc" "$reason" >&2
  if [[ -s $logf ]]; then
    printf -- '--- last 40 lines of %s ---\n' "${logf#"$ROOT"/}" >&2
    tail -n 40 "$logf" >&2
  fi
  local console=$LOCAL/$svc/logs/console.log
  if [[ -s $console ]]; then
    printf -- '--- last 40 lines of %s ---\n' "${console#"$ROOT"/}" >&2
    tail -n 40 "$console" >&2
  fi
  if alive "$pid"; then
    printf '%s: stopping pid %s\n' "$svc" "$pid" >&2
    stop_one "$svc" >&2
  fi
  rm -f "$(pidfile "$svc")"
}

cmd_up() {
  local svcs svc pid p
  read -r -a svcs <<<"$(targets "${1:-all}")"
  command -v "$JAVA" >/dev/null || die "java not found (OpenJDK 17 is required)"
  local -A since=() waiter=() outf=() started=()
  for svc in "${svcs[@]}"; do
    if pid=$(our_pid "$svc"); then
      if answers "$svc"; then
        log "$svc already running (pid $pid, RSS $(rss_mib "$pid") MiB)"
        continue
      fi
      log "$svc: pid $pid is running but not answering yet; waiting for it"
      since[$svc]=$(date +%s.%N)
      started[$svc]=$pid
      continue
    fi
    rm -f "$(pidfile "$svc")"
    for p in ${PORT[$svc]} ${OTHER_PORTS[$svc]}; do
      if port_open "$p"; then
        die "$svc: port $p on 127.0.0.1 is already in use by a process that is not ours ($(pidfile "$svc") has no live server)"
      fi
    done
    ensure_jars "$svc"
    write_config "$svc"
  done
  # Start all (concurrently), then wait for all.
  for svc in "${svcs[@]}"; do
    [[ -n ${since[$svc]:-} ]] && continue
    our_pid "$svc" >/dev/null && continue # already running and answering
    since[$svc]=$(date +%s.%N)
    "start_$svc"
    started[$svc]=$(<"$(pidfile "$svc")")
    log "$svc: starting (pid ${started[$svc]}, logs in .local/$svc/logs/)"
  done
  for svc in "${!started[@]}"; do
    outf[$svc]=$(mktemp)
    "$PYTHON" "$ROOT/scripts/wait_ready.py" "$svc" --timeout "$TIMEOUT" \
      --pid "${started[$svc]}" --since "${since[$svc]}" >"${outf[$svc]}" 2>&1 &
    waiter[$svc]=$!
  done
  local rc=0 line secs
  for svc in "${svcs[@]}"; do
    [[ -n ${waiter[$svc]:-} ]] || continue
    pid=${started[$svc]}
    if wait "${waiter[$svc]}"; then
      line=$(tail -n 1 "${outf[$svc]}")
      secs=$(awk '{print $2}' <<<"$line")
      log "$svc ready in ${secs}s (pid $pid, RSS $(rss_mib "$pid") MiB; ${line#ready * })"
    else
      report_failure "$svc" "$pid" "$(tail -n 1 "${outf[$svc]}")"
      rc=1
    fi
    rm -f "${outf[$svc]}"
  done
  return $rc
}

cmd_status() {
  local svc pid ans
  for svc in "${ALL_SERVICES[@]}"; do
    if answers "$svc"; then ans="answers on 127.0.0.1:${PORT[$svc]}"; else ans="port ${PORT[$svc]} not answering"; fi
    if pid=$(our_pid "$svc"); then
      printf '%-10s running  pid %-8s RSS %5s MiB  %s\n' "$svc" "$pid" "$(rss_mib "$pid")" "$ans"
    else
      printf '%-10s stopped  %-34s %s\n' "$svc" "" "$ans"
    fi
  done
}

cmd_clean_data() {
  cmd_down all
  local svc
  for svc in "${ALL_SERVICES[@]}"; do
    rm -rf "${LOCAL:?}/$svc/data" "$LOCAL/$svc/cluster.id"
    log "$svc: data removed (.local/$svc/data)"
  done
}

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
  down) lock; cmd_down "${2:-all}" ;;
  status) cmd_status ;;
  clean-data) lock; cmd_clean_data ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
