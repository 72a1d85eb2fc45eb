# One evaluation job per checkpoint: every w of a method entry, on each split its seed is evaluated on (test: the
# reported episodes; validation: the episodes its selection rule chooses on), in one lockstep batch. Snapshots
# (eval.at_steps) are checkpoints too: test episodes, every w, one job per snapshot.


def _define_evaluate_rule(label, splits, seeds, snapshot=False):
    entry = SPEC.methods[label]
    step = "{step}" if snapshot else None
    name = "snapshots" if snapshot else "_".join(splits)
    job = f"{label}/{{env}}/seed{{seed}}-" + ("step{step}" if snapshot else name)

    rule:
        name:
            f"evaluate_{label}_{name}"
        input:
            model=model_file(label, "{env}", "{seed}", step),
            data=f"{OUT}/data/{{env}}.npz",
        output:
            [
                cell_file(split, label, "{env}", "{seed}", w, step)
                for split in splits
                for w in entry.cell_labels
            ],
        log:
            f"{OUT}/logs/eval/{job}.log",
        benchmark:
            f"{OUT}/benchmarks/eval/{job}.tsv"
        wildcard_constraints:
            seed="|".join(str(s) for s in seeds),
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
            splits=",".join(splits),
            step=lambda wc: f"--step {wc.step}" if snapshot else "",
            spec_hash=lambda wc: HASHES["eval"][wc.env],
        shell:
            "cfgrl evaluate --spec {params.spec} --method {params.method} --env {wildcards.env}"
            " --seed {wildcards.seed} --split {params.splits} --model {input.model} {params.step}"
            " --data {input.data} --out {output} --threads {threads} > {log} 2>&1"


for _label, _splits, _seeds in SPEC.evaluation_jobs():
    _define_evaluate_rule(_label, _splits, _seeds)

if SPEC.eval.at_steps:
    for _label in SPEC.methods:
        _define_evaluate_rule(_label, ("test",), SPEC.seeds, snapshot=True)
