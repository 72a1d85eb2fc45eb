"""`snakemake --profile profiles/slurm` on a real one-node SLURM cluster started here (Debian's Slurm packages).

The cluster lives in a temporary directory: its own munge key and socket, slurm.conf with free ports on 127.0.0.1,
state, spool and logs; slurmctld, slurmd and munged run in the foreground as children of this test and are always
stopped at the end. Skipped when the Slurm binaries are missing or the test does not run as root (slurmd must).
The cluster's slurm.conf is found through SLURM_CONF, which snakemake-executor-plugin-slurm-jobstep 0.6.1 strips
before the srun inside each job ("srun: fatal: Could not establish a configuration source"): the `slurm` and `test`
extras pin 0.6.0.
"""

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cfgrl.pipeline.spec import w_label
from tests.conftest import REPO
from tests.test_end_to_end import TINY, parse_tables

BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "srun", "scancel")
MISSING = [b for b in BINARIES if shutil.which(b) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"SLURM not installed (missing {', '.join(MISSING)}); "
                       "apt-get install munge slurmctld slurmd slurm-client"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a one-node SLURM cluster needs root (slurmd launches the jobs)"),
]

# TINY with one seed, fewer w and the reported w fixed: 2 training and 2 evaluation jobs (one per checkpoint: gcbc's
# single cell, gc_cfgrl's w = 0 and w = 2 together) through SLURM.
SPEC = copy.deepcopy(TINY)
SPEC.update(name="tiny-slurm", seeds=[0])
SPEC["methods"]["gc_cfgrl"].update(w=[0, 2], select={"type": "fixed", "value": 2})


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on 127.0.0.1 right now."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def slurm_conf(root: Path, host: str, ctld_port: int, slurmd_port: int) -> str:
    """The design notes' one-node recipe, everything under root. config_overrides lets the node advertise at least
    8 GB so train's mem_mb=4000 fits on a small CI machine (nothing enforces memory: no cgroups here)."""
    cpus = os.cpu_count() or 1
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return f"""\
ClusterName=cfgrltest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.log
MpiDefault=none
ReturnToService=2
MinJobAge=300
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={max(mem_mb, 8000)} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def slurm_cluster():
    """SLURM_CONF-carrying environment of a running one-node cluster; torn down (jobs included) afterwards."""
    # munged wants every directory above its socket world-executable: pytest's tmp_path (0700 parent) is not.
    root = Path(tempfile.mkdtemp(prefix="cfgrl-slurm-"))
    root.chmod(0o755)
    host = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port = free_ports(2)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (root / "slurm.conf").write_text(slurm_conf(root, host, ctld_port, slurmd_port))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_")) and v != "SLURM_CONF"]:
        del env[var]  # never talk to (or inherit settings of) another cluster

    procs: list[subprocess.Popen] = []

    def start(name: str, *cmd: str) -> None:
        out = open(root / f"{name}.out", "w")
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root))
        out.close()

    try:
        start("munged", "munged", "-F", f"--socket={root}/munge.socket", f"--key-file={key}",
              f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed", f"--log-file={root}/munged.log")
        deadline = time.time() + 15
        while not (root / "munge.socket").exists():
            assert time.time() < deadline and procs[0].poll() is None, (root / "munged.out").read_text()
            time.sleep(0.1)
        start("slurmctld", "slurmctld", "-D", "-c")
        start("slurmd", "slurmd", "-D")
        deadline, state = time.time() + 60, ""
        while state != "idle":
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join((root / f).read_text()[-1500:] for f in ("slurmctld.log", "slurmd.log")
                               if (root / f).exists())
                pytest.fail(f"one-node SLURM cluster not idle after 60 s (sinfo: {state!r}):\n{logs}")
            time.sleep(0.5)
            state = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%t"], env=env, capture_output=True,
                                   text=True, timeout=20).stdout.strip()
        yield {"env": env, "root": root, "host": host}
    finally:
        if any(p.poll() is None for p in procs[1:]):  # cancel leftover jobs of this cluster only
            subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True, timeout=20)
            time.sleep(1)
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_slurm_profile_runs_the_dag_through_a_real_slurm_cluster(slurm_cluster, tmp_path):
    env, root = slurm_cluster["env"], slurm_cluster["root"]
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "slurm"),
           "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--config", f"spec={spec}",
           # a two-core test node: two jobs at a time, no retries, keep SLURM's logs to check them. The plugin polls
           # `init` s after a submission, then waits 10 s longer each time nothing finished: polls at 6 s and 22 s
           # catch a ~12 s job (snakemake + cfgrl start-up) where the default 40 s would make the test minutes longer.
           "--jobs", "2", "--local-cores", "2", "--latency-wait", "5", "--retries", "0",
           "--slurm-init-seconds-before-status-checks", "6", "--slurm-keep-successful-logs"]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    elapsed = time.time() - t0
    assert proc.returncode == 0, proc.stderr[-4000:] + "\n--- slurmctld.log ---\n" + (
        root / "slurmctld.log").read_text()[-3000:]
    assert "Falling back to 'sacct'" not in proc.stderr  # the profile's squeue status command was used

    # every train and evaluate job went through sbatch and finished as a SLURM job on this node
    comp = (root / "jobcomp.log").read_text().splitlines()
    assert len(comp) == 2 + 2, comp
    assert all("JobState=COMPLETED" in line for line in comp), comp
    assert all(f"NodeList={slurm_cluster['host']}" in line for line in comp), comp
    logs = tmp_path / ".snakemake" / "slurm_logs"
    job_logs = {rule: [p.read_text() for folder in logs.glob(f"rule_{rule}") for p in folder.rglob("*.log")]
                for rule in ("train_*", "evaluate_gcbc_test", "evaluate_gc_cfgrl_test")}
    assert [len(texts) for texts in job_logs.values()] == [2, 1, 1], sorted(p.name for p in logs.iterdir())
    # each log is the sbatch output of a job that ran the rule under srun to completion
    assert all("(100%) done" in text and "Provided remote nodes" in text for texts in job_logs.values()
               for text in texts)
    assert not (logs / "rule_data").exists() and not (logs / "rule_report").exists()  # localrules stay local

    # the report agrees with the per-cell results, as in a local run
    out = tmp_path / "results" / SPEC["name"]
    cells = {}
    for path in sorted((out / "eval" / "test").glob("*/*/seed*/w*.json")):
        result = json.loads(path.read_text())
        cells.setdefault((result["method"], "—" if "w" not in result else w_label(result["w"])), []).append(
            sum(e["success"] for e in result["episodes"]) / len(result["episodes"]))
    assert set(cells) == {("gcbc", "—"), ("gc_cfgrl", "0"), ("gc_cfgrl", "2")}
    assert all(len(v) == 1 for v in cells.values())
    table = parse_tables((out / "report.md").read_text())
    assert set(table) == set(cells)
    for key, seeds in cells.items():
        assert table[key] == float(f"{100 * sum(seeds) / len(seeds):.1f}"), key
    print(f"SLURM run: {elapsed:.0f} s")
