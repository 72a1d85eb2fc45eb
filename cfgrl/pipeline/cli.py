"""Command line: the thin layer the Snakemake rules call. `cfgrl --help` lists the commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

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
    """Train one seed (--out) or several seeds and method entries in one process (--out-root:
    <root>/<method>/<env>/seed<k>; several entries share one IQL critic per seed under train.share_critic)."""
    from cfgrl.pipeline.train import train_job

    spec = load_spec(args.spec)
    methods = args.method.split(",")
    for method in methods:
        _method_entry(spec, method, args.env)
    seeds = [int(x) for x in args.seed.split(",")]
    if args.out is not None and len(seeds) * len(methods) != 1:
        raise UsageError("--out names one seed's folder; give --out-root for several seeds or methods")
    if args.out is None and args.out_root is None:
        raise UsageError("give --out (one seed) or --out-root (a folder of seeds)")
    outs = {(m, s): args.out if args.out is not None else args.out_root / m / args.env / f"seed{s}"
            for m in methods for s in seeds}
    result = train_job(spec, methods, args.env, seeds, args.data, outs, threads=args.threads)
    print(f"done: { {f'{m} seed {s}': r for (m, s), r in result.items()} }")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Every requested cell of one checkpoint (w values x splits) in one lockstep batch, one JSON per cell."""
    import torch

    from cfgrl.data.layout import DataError
    from cfgrl.envs.registry import MINARI
    from cfgrl.io import atomic_write_json
    from cfgrl.pipeline.evaluate import data_distance, divergences, evaluate_checkpoint
    from cfgrl.pipeline.provenance import provenance
    from cfgrl.pipeline.spec import w_label
    from cfgrl.pipeline.train import load_agent, make_sampler
    from cfgrl.seeding import derive_seed

    spec = load_spec(args.spec)
    torch.set_num_threads(args.threads or spec.eval.threads)
    env_entry = _env_entry(spec, args.env)
    _method_entry(spec, args.method, args.env)
    agent, record = load_agent(args.model)
    ws = [None if x in ("none", "") else float(x) for x in (args.w or "none").split(",")]
    if agent.guided and None in ws:
        raise UsageError(f"method {args.method} needs --w (a guidance weight, or several: --w 0,1,3)")
    splits = args.split.split(",")
    bad = [s for s in splits if s not in ("test", "validation")]
    if bad:
        raise UsageError(f"--split: '{bad[0]}' is neither test nor validation")
    if args.out is not None and len(ws) * len(splits) != 1:
        raise UsageError("--out names one cell file; give --out-root for several w or splits")
    if args.out is None and args.out_root is None:
        raise UsageError("give --out (one cell) or --out-root (a folder of cells)")
    info = env_entry.info
    env_spec, reference = None, None
    if info.kind is MINARI:  # the evaluation env `cfgrl data` recorded, else the local dataset's own
        if args.data is not None:
            with np.load(args.data) as d:
                env_spec = str(d["env_spec"]) if "env_spec" in d.files else None
                if "ref_min_score" in d.files:
                    reference = (float(d["ref_min_score"]), float(d["ref_max_score"]))
        if env_spec is None:
            from cfgrl.data.minari import eval_env_spec

            env_spec = eval_env_spec(info.eval_env_id, env_entry.data.get("path"))
    bases = {split: spec.eval.base(split) for split in splits}
    cells = evaluate_checkpoint(agent, info, list(env_entry.tasks), env_entry.episodes_per_task, ws, bases,
                                args.seed, env_spec=env_spec)
    distances: dict[float | None, dict[str, float]] = {}
    if args.data is not None:  # the reviewers' question: how far does pi_w move from pi_0 (and from the data)?
        try:  # held-out states: the validation file's
            sampler = make_sampler(info, args.data, type(agent), agent.config, validation=True)
        except (DataError, FileNotFoundError):
            sampler = make_sampler(info, args.data, type(agent), agent.config)
        states = sampler.sample(512, np.random.default_rng([args.seed, 3]))
        seed = derive_seed(spec.eval.seed, args.seed, 0, 3)
        if agent.guided:
            distances = dict(divergences(agent, states, [w for w in ws if w is not None], seed))
        else:
            distances = {None: {"data_distance": data_distance(agent, states, seed)}}
    settings = {"temperature": float(agent.temperature)} if hasattr(agent, "temperature") else {}
    for (split, w), result in cells.items():
        result.update(distances.get(w, {}))
        if reference is not None:  # Minari datasets with reference scores: minari.get_normalized_score x 100
            from cfgrl.data.minari import normalized_score

            result["normalized_return"] = float(normalized_score(result["return"], reference))
        result.update(method=args.method, registry=record["method"], settings=settings, env=args.env,
                      seed=args.seed, w=w, split=split,
                      provenance=provenance(spec, device=str(agent.device), eval_seed=bases[split],
                                            model=str(args.model), train_provenance=record["provenance"]))
        result.update(step=record["provenance"]["steps"], snapshot=args.step is not None)
        folder = args.out_root / split / args.method / args.env / f"seed{args.seed}" if args.out_root else None
        if folder is not None and args.step is not None:
            folder = folder / f"step{args.step}"
        out = args.out or folder / f"w{w_label(w)}.json"
        atomic_write_json(out, result)
        print(f"{split} {args.method} {args.env} seed{args.seed} w={w}: success {result['success']:.3f}, return "
              f"{result['return']:.2f} ({len(result['episodes'])} episodes)")
    print(f"{len(cells)} cells in {next(iter(cells.values()))['wall_s']:.1f} s")


def cmd_data_hash(args: argparse.Namespace) -> None:
    from cfgrl.pipeline.provenance import data_hash

    for path in args.files:
        print(f"{data_hash(path)}  {path}")


def cmd_cells(args: argparse.Namespace) -> None:
    from analysis.cells import collect_cells
    from cfgrl.io import atomic_write_text

    table = collect_cells(args.results)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(f"wrote {args.out}: {len(table)} cells")


def cmd_report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a batch job draws to files; chosen here, not when analysis is imported
    from analysis.report import write_report

    spec = load_spec(args.spec)
    path = write_report(spec, args.cells, args.outdir)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
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
    p.add_argument("--out", type=Path, default=None, help="the seed's folder (one seed)")
    p.add_argument("--out-root", type=Path, default=None, help="write <root>/<method>/<env>/seed<k> per seed")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate the (w, split) cells of one (method, env, seed) checkpoint")
    for name in ("--spec", "--method", "--env", "--model"):
        p.add_argument(name, required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--w", default=None, help="guidance weight(s), comma-separated, or 'none' for unguided methods")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset file whose states measure ||a_w - a_0||^2 (the training data)")
    p.add_argument("--split", default="test",
                   help="test (the reported episodes), validation (separate episodes for choosing w), or both: "
                        "test,validation")
    p.add_argument("--out", type=Path, default=None, help="the cell file (one w and one split)")
    p.add_argument("--out-root", type=Path, default=None,
                   help="write <root>/<split>/<method>/<env>/seed<k>/[step<N>/]w<w>.json for every cell")
    p.add_argument("--step", type=int, default=None,
                   help="the model is the snapshot of this training step (cells under step<N>/)")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("data-hash", help="sha256 of a dataset file's arrays (as recorded in every result)")
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=cmd_data_hash)

    p = sub.add_parser("cells", help="collect per-cell result files into one table")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("results", nargs="+")
    p.set_defaults(func=cmd_cells)

    p = sub.add_parser("report", help="statistics, figures and report.md from a cells table")
    p.add_argument("--spec", required=True)
    p.add_argument("--cells", required=True, type=Path)
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except suite_errors() as err:  # the suite's own errors are one line; tracebacks are for real bugs
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        sys.exit(1)


def suite_errors() -> tuple[type[BaseException], ...]:
    """The exception types whose message is a complete one-line diagnosis (file and field or key named)."""
    from cfgrl.data.download import DownloadError
    from cfgrl.data.layout import DataError
    from cfgrl.pipeline.spec import SpecError

    return (SpecError, DataError, DownloadError, UsageError)
