# Rules are thin shell calls into the package CLI; the logic lives in cfgrl/ and analysis/.


# Data rules run where the workflow is started (cluster compute nodes often have no internet).
localrules: all, cells, report, figures, data, exorl_domain


def exorl_input(wildcards):
    """A dm_control env's data comes from its domain's episodes (shared by the domain's tasks)."""
    info = resolve_env(wildcards.env)
    return [f"{OUT}/data/exorl/{info.datagen_env_id}/rnd/ready.json"] if info.kind == "dmc" else []


rule exorl_domain:
    output:
        f"{OUT}/data/exorl/{{domain}}/rnd/ready.json",
    log:
        f"{OUT}/logs/data/exorl-{{domain}}.log",
    benchmark:
        f"{OUT}/benchmarks/data/exorl-{{domain}}.tsv"
    params:
        spec_hash=lambda wc: ",".join(sorted(HASHES["data"][e] for e in SPEC["envs"]
                                             if resolve_env(e).kind == "dmc" and resolve_env(e).datagen_env_id == wc.domain)),
    threads: workflow.cores
    retries: 2
    shell:
        "cfgrl exorl-domain --spec {SPEC_PATH} --domain {wildcards.domain} --root {OUT}/data/exorl"
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
    params:
        spec_hash=lambda wc: HASHES["data"][wc.env],
    threads: workflow.cores
    retries: 2
    shell:
        "cfgrl data --spec {SPEC_PATH} --env {wildcards.env} --out {output.train} --workers {threads}"
        " --exorl-root {OUT}/data/exorl > {log} 2>&1"


rule train:
    input:
        data=f"{OUT}/data/{{env}}.npz",
    output:
        model=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/model.pt",
        metrics=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/metrics.csv",
    log:
        f"{OUT}/logs/train/{{method}}/{{env}}/seed{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{method}}/{{env}}/seed{{seed}}.tsv"
    params:
        spec_hash=lambda wc: HASHES["train"][f"{wc.method}|{wc.env}"],
    threads: SPEC["train"]["threads"]
    resources:
        mem_mb=4000,
    shell:
        "cfgrl train --spec {SPEC_PATH} --method {wildcards.method} --env {wildcards.env} --seed {wildcards.seed}"
        " --data {input.data} --out $(dirname {output.model}) --threads {threads} > {log} 2>&1"


rule evaluate:
    input:
        model=f"{OUT}/train/{{method}}/{{env}}/seed{{seed}}/model.pt",
        data=f"{OUT}/data/{{env}}.npz",
    output:
        f"{OUT}/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.json",
    log:
        f"{OUT}/logs/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.log",
    benchmark:
        f"{OUT}/benchmarks/eval/{{split}}/{{method}}/{{env}}/seed{{seed}}/w{{w}}.tsv"
    params:
        spec_hash=lambda wc: HASHES["eval"][wc.env],
    threads: SPEC["eval"]["threads"]
    resources:
        mem_mb=2000,
    shell:
        "cfgrl evaluate --spec {SPEC_PATH} --method {wildcards.method} --env {wildcards.env}"
        " --seed {wildcards.seed} --w {wildcards.w} --split {wildcards.split} --model {input.model} --out {output}"
        " --data {input.data}"
        " --threads {threads}"
        " > {log} 2>&1"


rule cells:
    input:
        [f"{OUT}/eval/{split}/{m}/{e}/seed{s}/w{w}.json" for split, m, e, s, w in CELLS],
    output:
        f"{OUT}/cells.csv",
    log:
        f"{OUT}/logs/cells.log",
    benchmark:
        f"{OUT}/benchmarks/cells.tsv"
    shell:
        "cfgrl cells --out {output} {input} > {log} 2>&1"


rule report:
    input:
        cells=f"{OUT}/cells.csv",
    output:
        report=report(f"{OUT}/report.md", caption="report/report.rst", category="Report"),
        stats=f"{OUT}/stats.csv",
        figures=report(directory(f"{OUT}/figures"), patterns=["{name}.png"], caption="report/figures.rst",
                       category="Figures"),
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    shell:
        "cfgrl report --spec {SPEC_PATH} --cells {input.cells} --outdir {OUT} > {log} 2>&1"


rule figures:
    # Redraw statistics, figures and report from the existing cells table, without training.
    input:
        cells=f"{OUT}/cells.csv",
    log:
        f"{OUT}/logs/figures.log",
    benchmark:
        f"{OUT}/benchmarks/figures.tsv"
    shell:
        "cfgrl report --spec {SPEC_PATH} --cells {input.cells} --outdir {OUT} > {log} 2>&1"
