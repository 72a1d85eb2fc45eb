"""The installed Snakemake honours --cores. Snakemake 9.10-9.16 released a finished job's cores twice (snakemake
issues #3815, #3913): after the suite's data rule (threads: workflow.cores) it started every training job at once,
4 single-thread jobs on 2 cores. The DAG here has the suite's shape: one all-cores job, then independent
one-thread jobs."""

import subprocess
import sys

SNAKEFILE = """
rule prepare:
    output: "prepared"
    threads: workflow.cores
    shell: "touch {output}"

def one_thread_job(i):
    rule:
        name: f"job{i}"
        input: "prepared"
        output: f"span{i}.txt"
        threads: 1
        shell: "start=$(date +%s.%N); sleep 1.5; echo $start $(date +%s.%N) > {output}"

for i in range(4):
    one_thread_job(i)

rule everything:
    input: [f"span{i}.txt" for i in range(4)]
    default_target: True
"""


def test_no_more_jobs_run_at_once_than_cores(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(tmp_path),
                           "-s", str(tmp_path / "Snakefile")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    spans = [tuple(map(float, (tmp_path / f"span{i}.txt").read_text().split())) for i in range(4)]
    most_at_once = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert most_at_once <= 2, f"{most_at_once} one-thread jobs ran at once on --cores 2: {spans}"
