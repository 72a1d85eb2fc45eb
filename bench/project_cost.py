"""Project a spec's training cost from a measured update rate: runs x updates / (seed-updates per second).

    python bench/project_cost.py specs/paper-exorl.yaml --updates-per-s 5.4
    python bench/project_cost.py specs/paper-exorl.yaml --updates-per-s 120 --rate fql=200 --per-job 8

--updates-per-s: seed-updates/s of one training job at the spec's size (from bench/bench_update.py or
bench/bench_train.py on the target hardware: e.g. the `group` row at k = the spec's train.seed_group); --rate
method=X overrides it per method entry (or registry name). --per-job: seeds sharing one device in a seed group
(the rate is then per job, divided among its seeds). Prints, per method entry, the training runs, updates and
device-hours, and the total. Evaluation is not included (see docs/performance.md for its measured share).
"""

from __future__ import annotations

import argparse
import math

from cfgrl.pipeline.spec import load_spec


def project(spec_path: str, updates_per_s: float, rates: dict[str, float], per_job: int = 1
            ) -> list[tuple[str, int, int, float]]:
    """(method entry, training runs, updates per run, device-hours) rows; per_job seeds share one device."""
    spec = load_spec(spec_path)
    rows = []
    for label, entry in spec.methods.items():
        rate = rates.get(label, rates.get(entry.registry, updates_per_s))
        runs = len(entry.envs) * len(spec.training_seeds(label))
        jobs = len(entry.envs) * math.ceil(len(spec.training_seeds(label)) / per_job)
        hours = jobs * per_job * entry.config.steps / rate / 3600  # a job of k seeds takes k updates per step
        rows.append((label, runs, entry.config.steps, hours))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec")
    parser.add_argument("--updates-per-s", type=float, required=True, help="seed-updates/s of one training job")
    parser.add_argument("--rate", action="append", default=[], help="method=updates/s override (repeatable)")
    parser.add_argument("--per-job", type=int, default=1, help="seeds per training job (seed_group)")
    args = parser.parse_args(argv)
    rates = {k: float(v) for k, v in (r.split("=", 1) for r in args.rate)}
    rows = project(args.spec, args.updates_per_s, rates, args.per_job)
    print("| method | training runs | updates per run | device-hours |\n|---|---|---|---|")
    for label, runs, steps, hours in rows:
        print(f"| {label} | {runs} | {steps} | {hours:.1f} |")
    print(f"| total | {sum(r[1] for r in rows)} | | {sum(r[3] for r in rows):.1f} |")


if __name__ == "__main__":
    main()
