"""`python -m cfgrl ...`: the same command line as the `cfgrl` console script."""

from cfgrl.pipeline.cli import main

main()
