"""Command line: the thin layer the Snakemake rules call. `cfgrl --help` lists the commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from cfgrl.spec import SpecError, load_spec


def _spec(path: str) -> dict:
    try:
        return load_spec(path)
    except SpecError as err:
        sys.exit(f"error: {err}")


def cmd_check_spec(args: argparse.Namespace) -> None:
    from cfgrl.spec import eval_cells

    spec = _spec(args.spec)
    cells = eval_cells(spec)
    n_train = len({(m, e, s) for _, m, e, s, _ in cells})
    print(f"{args.spec}: ok ({n_train} training runs, {len(cells)} evaluation cells)")


def _save_with_val(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write transition arrays (rows (N, ...), `episode_lengths` (E,), 0-d metadata) to `out` and the last 5% of
    episodes (at least 1) to its -val.npz twin."""
    from cfgrl.datagen import val_path
    from cfgrl.io import atomic_savez

    ends = np.cumsum(arrays["episode_lengths"])
    n_val = max(1, len(ends) // 20)  # validation file: the last 5% of episodes
    start = int(ends[-n_val - 1]) if len(ends) > n_val else 0
    val = {k: (v[-n_val:] if k == "episode_lengths" else v if v.ndim == 0 else v[start:]) for k, v in arrays.items()}
    atomic_savez(val_path(out), val)
    atomic_savez(out, arrays)
    print(f"wrote {out}: {len(arrays['rewards'])} transitions ({len(ends)} episodes)")


def cmd_data(args: argparse.Namespace) -> None:
    from cfgrl.datagen import generate_navigate, val_path
    from cfgrl.download import DownloadError, download_ogbench
    from cfgrl.envs import resolve_env
    from cfgrl.manipgen import generate_play

    spec = _spec(args.spec)
    info = resolve_env(args.env)
    data = spec["envs"][args.env]["data"]
    if info.kind == "dmc":
        from cfgrl.exorl import load_exorl

        arrays = load_exorl(args.env, args.exorl_root / info.datagen_env_id / "rnd", workers=args.workers)
        _save_with_val(args.out, arrays)
        return
    if info.kind == "minari":  # transitions as load_minari reads them, plus the evaluation env's JSON EnvSpec
        from cfgrl.data import DataError
        from cfgrl.minari_source import download_minari, eval_env_spec, load_minari

        try:
            if data["source"] == "download":
                download_minari(info.eval_env_id, data.get("path"))
            arrays = load_minari(info.eval_env_id, datasets_path=data.get("path"))
            arrays["env_spec"] = np.asarray(eval_env_spec(info.eval_env_id, datasets_path=data.get("path")))
        except DataError as err:
            sys.exit(f"error: {err}")
        _save_with_val(args.out, arrays)
        return
    if data["source"] == "download":
        from cfgrl.ogbench_source import parse_name

        try:
            paths = download_ogbench(parse_name(args.env).dataset_name, args.out.parent / "ogbench",
                                     mirrors=data.get("mirrors"), checksum_store=args.out.parent / "checksums.json")
        except DownloadError as err:
            sys.exit(f"error: {err}")
        for src, dest in zip(paths, [args.out, val_path(args.out)], strict=True):
            dest.unlink(missing_ok=True)
            os.link(src, dest)
        print(f"downloaded {args.env}: {', '.join(map(str, paths))}")
        return
    generate = {"navigate": generate_navigate, "play": generate_play}[info.generators[0]]
    counts = generate(info.datagen_env_id, args.out, episodes=data["episodes"], seed=data["seed"],
                      noise=data["noise"], workers=args.workers)
    print(f"wrote {args.out}: {counts['train']} train / {counts['val']} val transitions")


def cmd_exorl_domain(args: argparse.Namespace) -> None:
    """Download or generate one ExORL domain's episodes into <root>/<domain>/rnd (shared by its tasks)."""
    from cfgrl.download import DownloadError, download_exorl
    from cfgrl.envs import resolve_env
    from cfgrl.exorl import generate_exorl
    from cfgrl.io import atomic_write_json

    spec = _spec(args.spec)
    data = next(e["data"] for name, e in spec["envs"].items() if resolve_env(name).datagen_env_id == args.domain
                and resolve_env(name).kind == "dmc")
    folder = args.root / args.domain / "rnd"
    try:
        if data["source"] == "download":
            download_exorl(args.domain, args.root, mirrors=data.get("mirrors"))
        else:
            generate_exorl(args.domain, folder, episodes=data["episodes"], seed=data["seed"],
                           fit_iterations=data["fit_iterations"], workers=args.workers)
    except DownloadError as err:
        sys.exit(f"error: {err}")
    atomic_write_json(folder / "ready.json", {"domain": args.domain, "data": data})
    print(f"{args.domain}: episodes ready in {folder}")


def cmd_train(args: argparse.Namespace) -> None:
    from cfgrl.train import train

    spec = _spec(args.spec)
    result = train(spec, args.method, args.env, args.seed, args.data, args.out, threads=args.threads)
    print(f"done: {result}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from cfgrl.data import DataError
    from cfgrl.envs import resolve_env
    from cfgrl.evaluate import evaluate
    from cfgrl.io import atomic_write_json
    from cfgrl.provenance import provenance
    from cfgrl.train import load_agent

    spec = _spec(args.spec)
    torch.set_num_threads(args.threads or spec["eval"]["threads"])
    env_cfg = spec["envs"][args.env]["eval"]
    agent, record = load_agent(args.model)
    w = None if args.w in (None, "none") else float(args.w)
    if agent.guided and w is None:
        sys.exit(f"error: method {args.method} needs --w")
    eval_seed = spec["eval"]["seed" if args.split == "test" else "validation_seed"]
    info = resolve_env(args.env)
    env_spec = None
    if info.kind == "minari" and args.data is not None:  # the evaluation env `cfgrl data` recorded
        with np.load(args.data) as d:
            env_spec = str(d["env_spec"]) if "env_spec" in d.files else None
    try:
        if info.kind == "minari" and env_spec is None:  # else from the local dataset itself
            from cfgrl.minari_source import eval_env_spec

            env_spec = eval_env_spec(info.eval_env_id, spec["envs"][args.env]["data"].get("path"))
        result = evaluate(agent, info, env_cfg["tasks"], env_cfg["episodes_per_task"], w, eval_seed, args.seed,
                          env_spec=env_spec)
    except DataError as err:
        sys.exit(f"error: {err}")
    if agent.guided and args.data is not None:  # the reviewers' question: how far does pi_w move from pi_0?
        from cfgrl.evaluate import action_shift, episode_seed
        from cfgrl.train import make_sampler

        cfg = agent.config
        sampler = make_sampler(resolve_env(args.env), args.data, getattr(cfg, "geometric_discount", None),
                               getattr(cfg, "subgoal_steps", None))
        states = sampler.sample(512, np.random.default_rng([args.seed, 3]))
        result["distance_to_w0"] = action_shift(agent, states, w, episode_seed(eval_seed, args.seed, 0, 3))
    settings = {"temperature": float(agent.temperature)} if hasattr(agent, "temperature") else {}
    result.update(method=args.method, registry=record["method"], settings=settings, env=args.env, seed=args.seed,
                  w=w, split=args.split,
                  provenance=provenance(spec, device=str(agent.device), eval_seed=eval_seed,
                                        model=str(args.model), train_provenance=record["provenance"]))
    atomic_write_json(args.out, result)
    print(f"{args.method} {args.env} seed{args.seed} w={w}: success {result['success']:.3f}, return "
          f"{result['return']:.2f} ({len(result['episodes'])} episodes, {result['wall_s']:.1f} s)")


def cmd_data_hash(args: argparse.Namespace) -> None:
    from cfgrl.provenance import data_hash

    for path in args.files:
        print(f"{data_hash(path)}  {path}")


def cmd_cells(args: argparse.Namespace) -> None:
    from analysis.cells import collect_cells
    from cfgrl.io import atomic_write_text

    table = collect_cells(args.results)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(f"wrote {args.out}: {len(table)} cells")


def cmd_report(args: argparse.Namespace) -> None:
    from analysis.report import write_report

    spec = _spec(args.spec)
    path = write_report(spec, args.cells, args.outdir)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:  # its own parser: download {ogbench NAME | exorl DOMAIN | url URL...}
        from cfgrl.download import main_download

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

    p = sub.add_parser("train", help="train one (method, env, seed)")
    for name in ("--spec", "--method", "--env", "--data"):
        p.add_argument(name, required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate one (method, env, seed, w) cell")
    for name in ("--spec", "--method", "--env", "--model"):
        p.add_argument(name, required=True)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--w", default=None, help="guidance weight, or 'none' for unguided methods")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset file whose states measure ||a_w - a_0||^2 (the training data)")
    p.add_argument("--split", default="test", choices=["test", "validation"],
                   help="test: the reported episodes; validation: separate episodes for choosing w")
    p.add_argument("--out", required=True, type=Path)
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
    args.func(args)
