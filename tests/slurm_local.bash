# A private single-node Slurm cluster for the tests (sourced): munged,
# slurmctld and slurmd from Debian's packages, run as background processes
# of the test with every file under one folder, so nothing in /etc or /run
# is touched and the machine needs no systemd.
#
#   slurm_have              true when the programs are installed
#   slurm_start DIR CPUS    start a cluster in DIR (empty or absent), whose
#                           node claims CPUS cores; exports SLURM_CONF
#   slurm_stop DIR          cancel its jobs and stop its daemons
#
# Without slurmdbd there is no accounting (sacct), which agon sweep does not
# need.  batch_sched_delay=0 lets the scheduler start array tasks at once
# instead of in 3-second waves.

slurm_have() {
  local p
  for p in munged mungekey slurmctld slurmd sbatch squeue scontrol scancel sinfo; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || return 1
  done
}

# Two consecutive free TCP ports from 6817 on.
slurm_free_ports() {
  local used p
  used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  for p in $(seq 6817 2 6999); do
    if ! grep -qx "$p" <<<"$used" && ! grep -qx "$((p + 1))" <<<"$used"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

slurm_start() {
  local d=$1 cpus=$2 host port mem i
  PATH=$PATH:/usr/sbin
  mkdir -p "$d" && chmod 755 "$d"
  # munged refuses a socket folder that others cannot enter, and a key
  # others can read.
  mkdir -p "$d/key" "$d/run" "$d/state" "$d/spool" "$d/log" && chmod 700 "$d/key" && chmod 755 "$d/run"
  mungekey --create --keyfile="$d/key/munge.key" --bits=1024 || return 1
  munged -F --key-file="$d/key/munge.key" --socket="$d/run/munge.socket" \
    --pid-file="$d/run/munged.pid" --seed-file="$d/key/munged.seed" --log-file="$d/log/munged.log" \
    </dev/null >>"$d/log/munged.out" 2>&1 &
  echo $! >"$d/munged.pid"
  host=$(hostname -s)
  port=$(slurm_free_ports) || return 1
  mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
  cat >"$d/slurm.conf" <<CONF
ClusterName=agontest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/run/munge.socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$d/slurm.conf
  for i in $(seq 100); do [ -S "$d/run/munge.socket" ] && break; sleep 0.05; done
  slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$d/log/slurmctld.out" 2>&1 &
  echo $! >"$d/slurmctld.pid"
  for i in $(seq 200); do scontrol ping >/dev/null 2>&1 && break; sleep 0.05; done
  slurmd -D -N "$host" -f "$SLURM_CONF" </dev/null >>"$d/log/slurmd.out" 2>&1 &
  echo $! >"$d/slurmd.pid"
  for i in $(seq 400); do
    [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ] && return 0
    sleep 0.05
  done
  echo "slurm_start: the node did not become idle; see $d/log" >&2
  return 1
}

slurm_stop() {
  local d=$1 name pid i jobs
  [ -f "$d/slurm.conf" ] || return 0
  export SLURM_CONF=$d/slurm.conf
  # Jobs outlive slurmd (their slurmstepd keeps running): cancel first.
  jobs=$(squeue -h -o %A 2>/dev/null)
  [ -n "$jobs" ] && scancel $jobs 2>/dev/null
  for i in $(seq 200); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  for name in slurmd slurmctld munged; do
    pid=$(cat "$d/$name.pid" 2>/dev/null) || continue
    kill -TERM "$pid" 2>/dev/null
  done
  for name in slurmd slurmctld munged; do
    pid=$(cat "$d/$name.pid" 2>/dev/null) || continue
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    rm -f "$d/$name.pid"
  done
}
