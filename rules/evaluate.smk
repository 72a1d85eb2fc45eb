rule evaluate:
    input:
        model=rules.train.output.model,
        data=rules.data.output.train,
    output:
        f"{OUT}/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.json",
    log:
        f"{OUT}/logs/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.log",
    benchmark:
        f"{OUT}/benchmarks/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.tsv"
    conda:
        "../environment.yml"
    threads: SPEC.eval.threads
    resources:
        mem_mb=2000,
    params:
        spec=SPEC_PATH,
        spec_hash=lambda wc: HASHES["eval"][wc.env],
    shell:
        "cfgrl evaluate --spec {params.spec} --method {wildcards.method} --env {wildcards.env}"
        " --seed {wildcards.seed} --w {wildcards.w} --split {wildcards.split} --model {input.model}"
        " --out {output} --data {input.data} --threads {threads} > {log} 2>&1"
