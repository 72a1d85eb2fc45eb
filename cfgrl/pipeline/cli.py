"""Command line: the thin layer the Snakemake rules call. `cfgrl --help` lists the commands (the cells table and
the report are `cfgrl-analysis`, analysis/__main__.py: the layer above this one)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cfgrl import cpu_kernels
from cfgrl.pipeline.spec import EnvEntry, MethodEntry, Spec, load_spec


class UsageError(ValueError):
    """A command called with arguments that do not fit (one line)."""


def _env_entry(spec: Spec, env: str) -> EnvEntry:
    if env not in spec.envs:
        raise UsageError(f"{spec.path}: envs: '{env}' is not one of the spec's envs ({', '.join(spec.envs)})")
    return spec.envs[env]


def _method_entry(spec: Spec, label: str, env: str) -> MethodEntry:
    if label not in spec.methods:
        raise UsageError(f"{spec.path}: methods: '{label}' is not one of the spec's method entries")
    entry = spec.methods[label]
    if env not in entry.envs:
        raise UsageError(f"{spec.path}: methods.{label}: does not run on '{env}' (its envs: {', '.join(entry.envs)})")
    return entry


def cmd_check_spec(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    cells = spec.cells()
    n_train = len({(m, e, s) for _, m, e, s, _ in cells})
    print(f"{args.spec}: ok ({n_train} training runs, {len(cells)} evaluation cells)")


def cmd_data(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    entry = _env_entry(spec, args.env)
    print(entry.info.kind.make_dataset(entry.info, dict(entry.data), args.out, args.workers, args.exorl_root))


def cmd_exorl_domain(args: argparse.Namespace) -> None:
    """Download or generate one ExORL domain's episodes into <root>/<domain>/rnd (shared by its tasks)."""
    from cfgrl.envs.registry import DMC_KIND
    from cfgrl.io import atomic_write_json

    spec = load_spec(args.spec)
    data = next((dict(e.data) for e in spec.envs.values() if e.info.exorl_domain == args.domain), None)
    if data is None:
        raise UsageError(f"{args.spec}: no env of the spec reads ExORL domain '{args.domain}'")
    folder = DMC_KIND.make_domain(args.domain, data, args.root, args.workers)
    atomic_write_json(folder / "ready.json", {"domain": args.domain, "data": data})
    print(f"{args.domain}: episodes ready in {folder}")


def cmd_train(args: argparse.Namespace) -> None:
    """Train one seed or several seeds and method entries in one process (several entries share one IQL critic
    per seed under train.share_critic); --out names each run's folder, for each method every seed in order."""
    from cfgrl.pipeline.train import train_job

    spec = load_spec(args.spec)
    methods = args.method.split(",")
    for method in methods:
        _method_entry(spec, method, args.env)
    seeds = [int(x) for x in args.seed.split(",")]
    runs = [(m, s) for m in methods for s in seeds]
    if len(args.out) != len(runs):
        raise UsageError(f"--out: {len(args.out)} folders given for {len(methods)} method(s) x {len(seeds)} seed(s) "
                         "(one per run, method-major)")
    outs = dict(zip(runs, args.out, strict=True))
    result = train_job(spec, methods, args.env, seeds, args.data, outs, threads=args.threads)
    print(f"done: { {f'{m} seed {s}': r for (m, s), r in result.items()} }")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Every cell (w of the entry's grid x split) of one checkpoint in one lockstep batch, one JSON per cell."""
    import torch

    from cfgrl.pipeline.evaluate import evaluate_job

    spec = load_spec(args.spec)
    threads = args.threads or spec.eval.threads
    torch.set_num_threads(threads)  # and as many simulator processes (one per cell at most) when above 1
    _env_entry(spec, args.env)
    entry = _method_entry(spec, args.method, args.env)
    splits = args.split.split(",")
    bad = [s for s in splits if s not in ("test", "validation")]
    if bad:
        raise UsageError(f"--split: '{bad[0]}' is neither test nor validation")
    n_w = len(entry.cell_labels)
    if len(args.out) != len(splits) * n_w:
        raise UsageError(f"--out: {len(args.out)} files given for {len(splits)} split(s) x {n_w} w of "
                         f"methods.{args.method} (one per cell, split-major)")
    for line in evaluate_job(spec, args.method, args.env, args.seed, args.model, args.data, splits, args.out,
                             step=args.step, workers=threads):
        print(line)


def cmd_data_hash(args: argparse.Namespace) -> None:
    from cfgrl.pipeline.provenance import data_hash

    for path in args.files:
        print(f"{data_hash(path)}  {path}")


JOB_COMMANDS = ("data", "exorl-domain", "train", "evaluate")  # the DAG's jobs: each ends its log with its usage


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cpu_kernels.check_environment()
    except cpu_kernels.SettingError as err:
        sys.exit(f"error: {err}")
    if argv[:1] == ["download"]:  # its own parser: download {ogbench NAME | exorl DOMAIN | url URL...}
        from cfgrl.data.download import main_download

        sys.exit(main_download(argv[1:]))
    parser = argparse.ArgumentParser(prog="cfgrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-spec", help="validate a spec and count its jobs")
    p.add_argument("spec")
    p.set_defaults(func=cmd_check_spec)

    p = sub.add_parser("data", help="make one env's dataset (train .npz and its -val.npz)")
    p.add_argument("--spec", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--exorl-root", type=Path, default=None, help="folder of ExORL domains (dm_control envs)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("exorl-domain", help="download or generate one ExORL domain's episodes")
    p.add_argument("--spec", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=cmd_exorl_domain)

    sub.add_parser("download", help="download a dataset, checksum-verified (see `cfgrl download --help`)")

    p = sub.add_parser("train", help="train one (method, env, seed), or several seeds in one process")
    for name in ("--spec", "--method", "--env", "--data"):
        p.add_argument(name, required=True)
    p.add_argument("--seed", required=True, help="training seed, or several comma-separated (one process)")
    p.add_argument("--out", required=True, type=Path, nargs="+",
                   help="each run's folder: for each method, every seed in order")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate the (w, split) cells of one (method, env, seed) checkpoint")
    for name in ("--spec", "--method", "--env", "--model"):
        p.add_argument(name, required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--data", type=Path, default=None,
                   help="dataset file whose states measure ||a_w - a_0||^2 (the training data)")
    p.add_argument("--split", default="test",
                   help="test (the reported episodes), validation (separate episodes for choosing w), or both: "
                        "test,validation")
    p.add_argument("--out", required=True, type=Path, nargs="+",
                   help="the cell files, one per (split, w): for each split, every w of the entry's grid in order")
    p.add_argument("--step", type=int, default=None, help="the model is the snapshot of this training step")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("data-hash", help="sha256 of a dataset file's arrays (as recorded in every result)")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=cmd_data_hash)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except suite_errors() as err:  # the suite's own errors are one line; tracebacks are for real bugs
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        sys.exit(1)
    if args.command in JOB_COMMANDS:
        from cfgrl.pipeline.usage import usage_line

        sys.stderr.write(usage_line(started) + "\n")


def suite_errors() -> tuple[type[BaseException], ...]:
    """The exception types whose message is a complete one-line diagnosis (file and field or key named)."""
    from cfgrl.data.download import DownloadError
    from cfgrl.data.layout import DataError
    from cfgrl.pipeline.spec import SpecError

    return (SpecError, DataError, DownloadError, UsageError)
