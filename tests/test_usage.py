"""A job's own usage record (the last line of its log) and the report's cost table that reads it."""

import subprocess
import sys

from analysis.run_record import cost_section
from cfgrl.pipeline.usage import PREFIX, read_usage, usage_line
from tests.conftest import REPO

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n    pass\n"


def test_usage_counts_the_worker_processes_a_job_waited_for():
    code = ("import subprocess, sys, time; from cfgrl.pipeline.usage import usage_record; t = time.monotonic(); "
            f"subprocess.run([sys.executable, '-c', {BURN!r}], check=True); print(usage_record(t)['cpu_s'])")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True)
    assert float(out.stdout) >= 0.3  # the child's 0.3 CPU-s at least (its interpreter start on top)


def test_read_usage_takes_the_last_record_and_tolerates_logs_without_one(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(f"step 1\n{PREFIX}{{\"cpu_s\": 1.0}}\nmore\n{usage_line(0.0)}\n")
    record = read_usage(log)
    assert record is not None and set(record) == {"cpu_s", "user_s", "sys_s", "wall_s", "max_rss_mb"}
    assert record["cpu_s"] > 0 and record["cpu_s"] != 1.0
    log.write_text("Traceback (most recent call last):\n")
    assert read_usage(log) is None
    log.write_text(f"{PREFIX}not json\n")
    assert read_usage(log) is None
    assert read_usage(tmp_path / "absent.log") is None


def test_cost_table_prefers_the_jobs_own_cpu_time_to_the_sampled_one(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for name, sampled in (("a", 15.0), ("b", 2.0)):
        bench = tmp_path / "benchmarks" / "eval" / "cfgrl" / f"{name}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(header + f"40.0\t0:00:40\t500\t0\t0\t0\t0\t0\t50\t{sampled}\n")
    log = tmp_path / "logs" / "eval" / "cfgrl" / "a.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"evaluating\n{PREFIX}{{\"cpu_s\": 33.6, \"max_rss_mb\": 700.0}}\n")
    text = "\n".join(cost_section(tmp_path))
    assert "| eval | 2 | 80 | 36 | 700 |" in text  # CPU: 33.6 measured by job a + 2.0 sampled for job b
    assert "1 of 2 jobs" in text and "for the other 1, Snakemake's sampled cpu_time" in text
