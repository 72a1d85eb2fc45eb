# Helpers of the workflow files (inputs and settings a job reads from the spec).


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


def grad_norm_files(wildcards):
    """The per-sample gradient-norm diagnostics of every reported training run (the report's Fig. 2)."""
    return sorted(
        {
            f"{OUT}/train/{m}/{e}/seed{s}/grad_norms.npz"
            for split, m, e, s, _ in CELLS
            if split == "test"
        }
    )
