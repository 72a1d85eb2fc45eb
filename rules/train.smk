rule train:
    input:
        data=rules.data.output.train,
    output:
        model=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/model.pt",
        metrics=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/metrics.csv",
        grad_norms=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/grad_norms.npz",
    log:
        f"{OUT}/logs/train/{{method}}/{{env}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{method}}/{{env}}/seed{{seed}}.tsv"
    conda:
        "../environment.yml"
    threads: SPEC.train_threads
    resources:
        mem_mb=4000,
    params:
        spec=SPEC_PATH,
        spec_hash=lambda wc: HASHES["train"][f"{wc.method}|{wc.env}"],
        out_dir=lambda wc, output: str(Path(output.model).parent),
    shell:
        "cfgrl train --spec {params.spec} --method {wildcards.method} --env {wildcards.env} --seed {wildcards.seed}"
        " --data {input.data} --out {params.out_dir} --threads {threads} > {log} 2>&1"
