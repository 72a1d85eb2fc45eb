"""The pipeline the Snakemake rules call: specs (`spec`), training (`train`), evaluation of a checkpoint
(`evaluate`), provenance (`provenance`) and the command line (`cli`)."""
