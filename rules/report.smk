rule cells:
    input:
        [cell_file(split, m, e, s, w) for split, m, e, s, w in CELLS]
        + [cell_file("test", m, e, s, w, n) for m, e, s, n, w in SNAPSHOT_CELLS],
    output:
        f"{OUT}/cells.csv",
    log:
        f"{OUT}/logs/cells.log",
    benchmark:
        f"{OUT}/benchmarks/cells.tsv"
    conda:
        "../environment.yml"
    shell:
        "cfgrl-analysis cells --out {output} {input} > {log} 2>&1"


rule report:
    input:
        cells=rules.cells.output[0],
        grad_norms=grad_norm_files,
        metrics=metric_files,
    output:
        report=report(
            f"{OUT}/report.md", caption="report/report.rst", category="Report"
        ),
        stats=f"{OUT}/stats.csv",
        figures=report(
            directory(f"{OUT}/figures"),
            patterns=["{name}.png"],
            caption="report/figures.rst",
            category="Figures",
        ),
        tables=directory(f"{OUT}/tables"),
    log:
        f"{OUT}/logs/report.log",
    benchmark:
        f"{OUT}/benchmarks/report.tsv"
    conda:
        "../environment.yml"
    params:
        spec=SPEC_PATH,
        out=lambda wc, output: str(Path(output.report).parent),
        spec_hash=HASHES["report"],  # everything the report reads: analysis settings, rules, sweeps
    shell:
        "cfgrl-analysis report --spec {params.spec} --cells {input.cells} --outdir {params.out} > {log} 2>&1"


# `snakemake figures` is the report (statistics, figures, report.md) of the cells table; editing analysis or
# selection settings reruns only it; `snakemake figures --forcerun report` redraws it regardless.
rule figures:
    input:
        rules.report.output.report,
