# One evaluation job per checkpoint: every w of a method entry, on each split its seed is evaluated on (test: the
# reported episodes; validation: the episodes its selection rule chooses on), in one lockstep batch.


def _define_evaluate_rule(label, splits, seeds):
    entry = SPEC.methods[label]
    ws = [w_label(w) for w in entry.w] if entry.w is not None else ["none"]

    rule:
        name:
            f"evaluate_{label}_{'_'.join(splits)}"
        input:
            model=f"{OUT}/train/{label}/{{env}}/seed{{seed}}/model.pt",
            data=f"{OUT}/data/{{env}}.npz",
        output:
            [
                f"{OUT}/eval/{split}/{label}/{{env}}/seed{{seed}}/w{w}.json"
                for split in splits
                for w in ws
            ],
        log:
            f"{OUT}/logs/eval/{label}/{{env}}/seed{{seed}}-{'_'.join(splits)}.log",
        benchmark:
            f"{OUT}/benchmarks/eval/{label}/{{env}}/seed{{seed}}-{'_'.join(splits)}.tsv"
        wildcard_constraints:
            seed="|".join(str(s) for s in seeds),
            env="|".join(re.escape(e) for e in entry.envs),
        priority: 1  # evaluate a finished checkpoint before the next training starts: a stopped run keeps cells
        conda:
            "../environment.yml"
        threads: SPEC.eval.threads
        resources:
            mem_mb=2000,
        params:
            spec=SPEC_PATH,
            method=label,
            ws=",".join(ws),
            splits=",".join(splits),
            # .../eval: above <split>/<label>/<env: one or more folders>/seed<k>/w<w>.json
            root=lambda wc, output: str(Path(output[0]).parents[4 + wc.env.count("/")]),
            spec_hash=lambda wc: HASHES["eval"][wc.env],
        shell:
            "cfgrl evaluate --spec {params.spec} --method {params.method} --env {wildcards.env}"
            " --seed {wildcards.seed} --w {params.ws} --split {params.splits} --model {input.model}"
            " --data {input.data} --out-root {params.root} --threads {threads} > {log} 2>&1"


for _label, _splits, _seeds in SPEC.evaluation_jobs():
    _define_evaluate_rule(_label, _splits, _seeds)


def _define_snapshot_rule(label):
    """The snapshots eval.at_steps asks for: test episodes, every w, one job per snapshot."""
    entry = SPEC.methods[label]
    ws = [w_label(w) for w in entry.w] if entry.w is not None else ["none"]

    rule:
        name:
            f"evaluate_{label}_snapshots"
        input:
            model=f"{OUT}/train/{label}/{{env}}/seed{{seed}}/snapshots/step{{step}}.pt",
            data=f"{OUT}/data/{{env}}.npz",
        output:
            [
                f"{OUT}/eval/test/{label}/{{env}}/seed{{seed}}/step{{step}}/w{w}.json"
                for w in ws
            ],
        log:
            f"{OUT}/logs/eval/{label}/{{env}}/seed{{seed}}-step{{step}}.log",
        benchmark:
            f"{OUT}/benchmarks/eval/{label}/{{env}}/seed{{seed}}-step{{step}}.tsv"
        wildcard_constraints:
            env="|".join(re.escape(e) for e in entry.envs),
            step=r"\d+",
        priority: 1  # evaluate a finished checkpoint before the next training starts: a stopped run keeps cells
        conda:
            "../environment.yml"
        threads: SPEC.eval.threads
        resources:
            mem_mb=2000,
        params:
            spec=SPEC_PATH,
            method=label,
            ws=",".join(ws),
            # .../eval: above test/<label>/<env: one or more folders>/seed<k>/step<N>/w<w>.json
            root=lambda wc, output: str(Path(output[0]).parents[5 + wc.env.count("/")]),
            spec_hash=lambda wc: HASHES["eval"][wc.env],
        shell:
            "cfgrl evaluate --spec {params.spec} --method {params.method} --env {wildcards.env}"
            " --seed {wildcards.seed} --w {params.ws} --split test --model {input.model} --step {wildcards.step}"
            " --data {input.data} --out-root {params.root} --threads {threads} > {log} 2>&1"


if SPEC.eval.at_steps:
    for _label in SPEC.methods:
        _define_snapshot_rule(_label)
