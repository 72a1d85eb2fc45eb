# Helpers of the workflow files (inputs and settings a job reads from the spec), and the results layout, named
# here once: the rules pass these paths to the CLI, which composes none.


def train_dir(label, env, seed):
    """The folder of one (method entry, env, seed) training run: model.pt, metrics.csv, snapshots/."""
    return f"{OUT}/train/{label}/{env}/seed{seed}"


def model_file(label, env, seed, step=None):
    """A training run's final model, or the snapshot of eval.at_steps at training step `step`."""
    base = train_dir(label, env, seed)
    return f"{base}/model.pt" if step is None else f"{base}/snapshots/step{step}.pt"


def cell_file(split, label, env, seed, w, step=None):
    """One evaluation cell: split, method entry, env, training seed, w label (MethodEntry.cell_labels) and, for a
    snapshot of eval.at_steps, its training step."""
    snapshot = "" if step is None else f"step{step}/"
    return f"{OUT}/eval/{split}/{label}/{env}/seed{seed}/{snapshot}w{w}.json"


def exorl_input(wildcards):
    """A dm_control env's data comes from its domain's episodes (shared by the domain's tasks)."""
    domain = SPEC.envs[wildcards.env].info.exorl_domain
    return [f"{OUT}/data/exorl/{domain}/rnd/ready.json"] if domain else []


def domain_hash(wildcards):
    """The data settings of the envs that read one ExORL domain."""
    return ",".join(
        sorted(
            HASHES["data"][name]
            for name, env in SPEC.envs.items()
            if env.info.exorl_domain == wildcards.domain
        )
    )


def metric_files(wildcards):
    """The training curves of every reported training run (the report's training-curve figures)."""
    return sorted(
        {
            f"{train_dir(m, e, s)}/metrics.csv"
            for split, m, e, s, _ in CELLS
            if split == "test"
        }
    )


def grad_norm_files(wildcards):
    """The per-sample gradient-norm diagnostics of every reported training run (the report's Fig. 2)."""
    return sorted(
        {
            f"{train_dir(m, e, s)}/grad_norms.npz"
            for split, m, e, s, _ in CELLS
            if split == "test"
        }
    )


def _train_outputs(label, seed_pattern):
    """What training one seed writes (seed_pattern: a number or the {seed} wildcard)."""
    base = train_dir(label, "{env}", seed_pattern)
    return [
        model_file(label, "{env}", seed_pattern),
        f"{base}/metrics.csv",
        f"{base}/grad_norms.npz",
    ] + [model_file(label, "{env}", seed_pattern, step) for step in SPEC.eval.at_steps]


def _define_train_job(labels, env, seeds):
    """One training job: the entries `labels` (several: one IQL critic per seed, train.share_critic) on `env`,
    for `seeds`, in one process."""
    block = f"{seeds[0]}-{seeds[-1]}"
    # the benchmark and log folder of the job (the report's cost table reads it)
    name = "+".join(labels)

    rule:
        name:
            f"train_{'_'.join(labels)}_{re.sub(r'[^A-Za-z0-9_]', '_', env)}_seeds{block}"
        input:
            data=f"{OUT}/data/{{env}}.npz",
        output:
            [
                path
                for label in labels
                for seed in seeds
                for path in _train_outputs(label, seed)
            ],
        log:
            f"{OUT}/logs/train/{name}/{{env}}/seeds{block}.log",
        benchmark:
            f"{OUT}/benchmarks/train/{name}/{{env}}/seeds{block}.tsv"
        wildcard_constraints:
            env=re.escape(env),
        conda:
            "../environment.yml"
        threads: SPEC.train_threads
        resources:
            mem_mb=4000,
            gpu=SPEC.train_gpus,
        params:
            spec=SPEC_PATH,
            methods=",".join(labels),
            seeds=",".join(str(s) for s in seeds),
            spec_hash=",".join(HASHES["train"][f"{label}|{env}"] for label in labels),
            dirs=[train_dir(label, env, seed) for label in labels for seed in seeds],
        shell:
            "cfgrl train --spec {params.spec} --method {params.methods} --env {wildcards.env}"
            " --seed {params.seeds} --data {input.data} --out {params.dirs} --threads {threads}"
            " > {log} 2>&1"
