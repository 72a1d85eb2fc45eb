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


PRIORITY_SNAKEFILE = """
rule domain:
    output: "domain"
    threads: workflow.cores
    priority: 10
    shell: "sleep 0.5; touch {output}"

rule data_a:
    input: "domain"
    output: "data_a"
    threads: workflow.cores
    priority: 10
    shell: "date +%s.%N > {output}"

rule data_b:
    output: "data_b"
    threads: workflow.cores
    priority: 10
    shell: "date +%s.%N > {output}"

def one_thread_job(i):
    rule:
        name: f"job{i}"
        input: "data_b"
        output: f"start{i}.txt"
        threads: 1
        shell: "date +%s.%N > {output}; sleep 0.5"

for i in range(4):
    one_thread_job(i)

rule everything:
    input: ["data_a", *[f"start{i}.txt" for i in range(4)]]
    default_target: True
"""


def test_a_data_job_runs_before_one_thread_jobs_that_are_ready_beside_it(tmp_path):
    """The suite's data rules (all cores, priority 10, rules/data.smk): a data job that becomes ready while
    training jobs are ready too runs first, instead of waiting until no job holds a core (which idled a core for
    about 80 s in the default run)."""
    (tmp_path / "Snakefile").write_text(PRIORITY_SNAKEFILE)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(tmp_path),
                           "-s", str(tmp_path / "Snakefile")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data_a = float((tmp_path / "data_a").read_text())
    starts = [float((tmp_path / f"start{i}.txt").read_text()) for i in range(4)]
    assert data_a < min(starts), f"data_a at {data_a}, the one-thread jobs from {min(starts)}"
