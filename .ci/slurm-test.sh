#!/usr/bin/env bash
# The Slurm test, for real: installs Slurm and MUNGE from the distribution's
# packages, starts a one-node cluster on this machine (munged, slurmctld and
# slurmd, all private to this script: own config, socket, ports and state under
# $SLURM_TEST_DIR), submits examples/slurm/sweep.sbatch (a 4-task job array with
# --shard auto, plus the merge job it queues), waits for both, and checks that
# the merged sweep.csv is byte for byte the one a local `clustersim sweep` writes;
# then the same for examples/slurm/plan.sbatch: a plan search whose merged plan.csv
# and winner.toml must equal a local `clustersim plan --exhaustive`.
#
# Needs root. Fails loudly (exit 1) if anything is missing; never skips. Safe to
# run again on the same machine: it stops the daemons it started last time (by
# the pid files it keeps) and starts afresh. Daemons are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
t0=$(date +%s)
state=${SLURM_TEST_DIR:-/var/tmp/clustersim-slurm-test}
export SLURM_CONF=$state/slurm.conf

say() { echo "slurm-test: $*"; }
fail() {
  echo "slurm-test: FAIL: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "must run as root (installs packages, starts munged, slurmctld and slurmd)"
mkdir -p "$state"

# --- 1. Packages -----------------------------------------------------------
if ! command -v munged >/dev/null || ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v sbatch >/dev/null; then
  say "installing munge slurmctld slurmd slurm-client from the Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q >"$state.apt.log" 2>&1 \
    || { tail -20 "$state.apt.log" >&2; fail "apt-get update failed; Slurm cannot be installed"; }
  timeout 300 apt-get install -y -q --no-install-recommends munge slurmctld slurmd slurm-client >>"$state.apt.log" 2>&1 \
    || { tail -20 "$state.apt.log" >&2; fail "apt-get install munge slurmctld slurmd slurm-client failed"; }
fi
for cmd in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$cmd" >/dev/null || fail "$cmd is not installed after installing the packages"
done
# (Not `sbatch --version`: every Slurm command reads slurm.conf first, and waits a minute for it.)
say "slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?'), $(munged --version 2>&1 | head -1)"

# --- 2. Stop what a previous run left, then a clean state ------------------
stop_daemons() {
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$state/$name.pid" ] || continue
    pid=$(cat "$state/$name.pid" 2>/dev/null || true)
    # Only a live process of that name, started from this script's pid file.
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
      done
    fi
    rm -f "$state/$name.pid"
  done
}
mkdir -p "$state"
stop_daemons
# A fresh folder per run (by pid): tasks of a killed earlier run that are still
# finishing cannot write into this run's folders.
rm -rf "$state/ctld" "$state/d" "$state"/run-* "$state"/*.log "$state/munge.socket"*
work=$state/run-$$
mkdir -p "$state/ctld" "$state/d" "$work"
chmod 755 "$state" # munged wants its socket reachable by every user (the key stays 0400)

on_exit() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    for log in munged slurmctld slurmd; do
      [ -f "$state/$log.log" ] && { echo "--- $state/$log.log (last 15 lines)" >&2; tail -15 "$state/$log.log" >&2; }
    done
    for out in "$work"/slurm-*.out; do
      [ -f "$out" ] && { echo "--- $out" >&2; tail -15 "$out" >&2; }
    done
  fi
  stop_daemons
  say "took $(($(date +%s) - t0)) s"
  exit "$rc"
}
trap on_exit EXIT

# --- 3. MUNGE ----------------------------------------------------------------
if [ ! -s "$state/munge.key" ]; then
  dd if=/dev/urandom of="$state/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$state/munge.key"
sock=$state/munge.socket
munged --force --key-file="$state/munge.key" --socket="$sock" --pid-file="$state/munged.pid" \
  --log-file="$state/munged.log" --seed-file="$state/munged.seed" \
  || fail "munged did not start"
munge -n -S "$sock" | unmunge -S "$sock" >/dev/null || fail "munge cannot encode and decode a credential"

# --- 4. A one-node cluster: this host, all its CPUs --------------------------
host=$(hostname -s)
node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... as slurmd sees this machine
case "$node" in NodeName=*) ;; *) fail "slurmd -C did not describe this node: $node" ;; esac
cat >"$SLURM_CONF" <<CONF
# Written by .ci/slurm-test.sh: a private one-node cluster on 127.0.0.1.
ClusterName=clustersim-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=10 State=UP
CONF
slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for i in $(seq 60); do
  st=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  [ "$st" = idle ] && break
  [ "$i" = 20 ] && scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
  sleep 0.5
done
[ "$st" = idle ] || fail "node $host is '$st', not idle, 30 s after starting slurmd"
say "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %t')"

# Waits (at most 150 s) until the queue is empty and every job completed.
wait_jobs() {
  local deadline left states
  deadline=$(($(date +%s) + 150))
  while :; do
    left=$(squeue -h -o '%i %j %T' 2>/dev/null || true)
    [ -z "$left" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$left" >&2; fail "jobs still queued or running after 150 s"; }
    sleep 1
  done
  states=$(scontrol show job 2>/dev/null | grep -o 'JobState=[A-Z_]*' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
  say "jobs finished: $states"
  echo "$states" | grep -q 'JobState=' || fail "scontrol shows no finished jobs"
  if echo "$states" | grep -q -E 'JobState=(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PENDING)'; then
    fail "some job did not complete: $states"
  fi
}

# --- 5. The same sweep locally and as a job array ---------------------------
timeout 600 cargo build --release --quiet || fail "cargo build --release failed"
bin=${CARGO_TARGET_DIR:-$repo/target}/release/clustersim
scenario=$repo/scenarios/seed_corrected.toml
opts=(--set workload.requests=60 --vary serving.max_seqs=4,64 --vary workload.arrival.rate_per_s=2.0,4.0,8.0,16.0)
"$bin" sweep "$scenario" "${opts[@]}" --out "$work/local" --jobs 2 >"$work/local.out" \
  || fail "the local sweep failed"
cd "$work"
jid=$(CLUSTERSIM=$bin sbatch --parsable "$repo/examples/slurm/sweep.sbatch" "$work/array" "$scenario" "${opts[@]}") \
  || fail "sbatch refused the job array"
say "submitted array job $jid; waiting (at most 150 s)"
wait_jobs
[ -f "$work/array/sweep.csv" ] || fail "the merge job wrote no $work/array/sweep.csv"
ls "$work/array"/shard-*-of-4.json >/dev/null || fail "no shard files in $work/array"
cmp "$work/local/sweep.csv" "$work/array/sweep.csv" || fail "merged sweep.csv differs from the local one"
say "the merge job's output:"
cat "$work"/slurm-*-merge.out
rows=$(($(wc -l <"$work/array/sweep.csv") - 1))
say "PASS: 4 array tasks + merge job gave the local sweep.csv byte for byte ($rows points, $(ls "$work/array"/shard-*.json | wc -l) shards)"

# --- 6. A plan search locally (--exhaustive) and as a job array ----------------
# Llama-3-8B on up to 4 H100s: the 9 DP x PP x TP splits of at most 4 GPUs, 60 requests; seconds per task.
cat >"$work/plan.toml" <<'TOML'
[scenario]
name = "ci-plan"
seed = 7
[hardware]
gpu = "h100-sxm"
nodes = 1
gpus_per_node = 8
[model]
preset = "llama-3-8b"
[workload]
requests = 60
arrival = { process = "poisson", rate_per_s = 40.0 }
prompt_tokens = { dist = "uniform", min = 500, max = 1500 }
output_tokens = { dist = "fixed", value = 32 }
[requirements]
ttft_p99_s = 0.5
[search]
max_gpus = 4
dp = [1, 2, 3, 4]
pp = [1, 2]
tp = [1, 2]
TOML
"$bin" plan "$work/plan.toml" --exhaustive --jobs 2 --out "$work/plan-local" >"$work/plan-local.out" \
  || fail "the local plan search failed"
jid=$(CLUSTERSIM=$bin sbatch --parsable "$repo/examples/slurm/plan.sbatch" "$work/plan-array" "$work/plan.toml") \
  || fail "sbatch refused the plan job array"
say "submitted plan array job $jid; waiting (at most 150 s)"
wait_jobs
for f in plan.csv winner.toml; do
  [ -f "$work/plan-array/$f" ] || fail "the plan merge job wrote no $work/plan-array/$f"
  cmp "$work/plan-local/$f" "$work/plan-array/$f" || fail "merged $f differs from the local one"
done
say "PASS: 4 plan array tasks + merge job gave the local plan.csv and winner.toml byte for byte ($(($(wc -l <"$work/plan-array/plan.csv") - 1)) plans)"
