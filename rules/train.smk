# Training: one job per (method, env, seed), or with train.seed_group > 1 one job per block of seeds (one process,
# the members stepped in turn), and with train.share_critic one job for the IQL entries of an env that share a
# critic: each seed's result is bit for bit its solo result either way.


if SPEC.seed_group == 1 and not SPEC.share_critic:

    rule train:
        input:
            data=rules.data.output.train,
        output:
            model=f"{train_dir('{method}', '{env}', '{seed}')}/model.pt",
            metrics=f"{train_dir('{method}', '{env}', '{seed}')}/metrics.csv",
            grad_norms=f"{train_dir('{method}', '{env}', '{seed}')}/grad_norms.npz",
            snapshots=[
                f"{train_dir('{method}', '{env}', '{seed}')}/snapshots/step{step}.pt"
                for step in SPEC.eval.at_steps
            ],
        log:
            f"{OUT}/logs/train/{{method}}/{{env}}/seed{{seed}}.log",
        benchmark:
            f"{OUT}/benchmarks/train/{{method}}/{{env}}/seed{{seed}}.tsv"
        conda:
            "../environment.yml"
        threads: SPEC.train_threads
        resources:
            mem_mb=4000,
            gpu=SPEC.train_gpus,
        params:
            spec=SPEC_PATH,
            spec_hash=lambda wc: HASHES["train"][f"{wc.method}|{wc.env}"],
            out_dir=lambda wc: train_dir(wc.method, wc.env, wc.seed),
        shell:
            "cfgrl train --spec {params.spec} --method {wildcards.method} --env {wildcards.env} --seed {wildcards.seed}"
            " --data {input.data} --out {params.out_dir} --threads {threads} > {log} 2>&1"

else:

    for _labels, _env, _seeds in SPEC.training_jobs():
        _define_train_job(_labels, _env, _seeds)
