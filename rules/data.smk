rule exorl_domain:
    output:
        f"{OUT}/data/exorl/{{domain}}/rnd/ready.json",
    log:
        f"{OUT}/logs/data/exorl-{{domain}}.log",
    benchmark:
        f"{OUT}/benchmarks/data/exorl-{{domain}}.tsv"
    priority: 10  # before any other job: a data job takes every core, so one that waits idles the others
    retries: 2
    conda:
        "../environment.yml"
    threads: workflow.cores
    params:
        spec=SPEC_PATH,
        root=lambda wc, output: str(Path(output[0]).parents[2]),  # .../data/exorl
        spec_hash=domain_hash,
    shell:
        "cfgrl exorl-domain --spec {params.spec} --domain {wildcards.domain} --root {params.root}"
        " --workers {threads} > {log} 2>&1"


rule data:
    input:
        exorl_input,
    output:
        train=f"{OUT}/data/{{env}}.npz",
        val=f"{OUT}/data/{{env}}-val.npz",
    log:
        f"{OUT}/logs/data/{{env}}.log",
    benchmark:
        f"{OUT}/benchmarks/data/{{env}}.tsv"
    priority: 10  # before any other job: a data job takes every core, so one that waits idles the others
    retries: 2
    conda:
        "../environment.yml"
    threads: workflow.cores
    params:
        spec=SPEC_PATH,
        exorl_root=lambda wc, output: str(Path(output.train).parent / "exorl"),
        spec_hash=lambda wc: HASHES["data"][wc.env],
    shell:
        "cfgrl data --spec {params.spec} --env {wildcards.env} --out {output.train} --workers {threads}"
        " --exorl-root {params.exorl_root} > {log} 2>&1"
