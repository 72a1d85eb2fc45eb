"""The data layer: dataset files and the batch samplers that read them, with no torch and no learning code.

- `layout`: the OGBench .npz layout, its one validator and error type, the `-val.npz` rule;
- `samplers`: hindsight-goal, subgoal and transition batches (chosen by an agent's `batch_kind`);
- `episodes`: what the generators share (parallel episode chunks, the train/validation split, atomic writes);
- sources: `ogbench` (OGBench's files and relabelling), `exorl` (ExORL episodes: reader, generator),
  `minari` (local Minari datasets), `download` (checksummed downloads with mirrors);
- generators: `navigate` (pointmaze navigate data), `play` (manipulation play data).
"""
