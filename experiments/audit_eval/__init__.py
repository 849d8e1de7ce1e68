"""How good is the strategy audit? Run it on simulated marketplaces and compare with the truth.

For each seed: simulate a marketplace, train the risk models on its audit labels
(`training.pipeline.train`, out-of-fold predictions included), run `governance.audit` on it and
score every output against the ground truth:

- ranked lists: precision@k of the likely-false-positive and likely-false-negative lists (with
  their base rates) and the violating impressions the FN list's top k holds, next to
  `cleanlab.filter.find_label_issues` fed the same predictions (given label = actioned);
- estimates: absolute error of every strategy's precision and recall and the coverage of the
  95% intervals, with the simulator's own labels and with govrisk's importance design;
- labels needed for a target error, importance design against uniform random auditing
  (oracle labels drawn from the truth with reviewer noise, several repetitions per budget);
- planted defects (ground_truth/defects.yaml) found among the top 3 slices of their strategy;
- suggestions: the top ones applied in the simulator (`simulate(config, strategies=...)`),
  projected against realised ΔFP / ΔFN;
- the models' calibration in the large, over each population and among its actioned and
  unactioned units.

The summary table pools every world; `per_world_table` shows each measure per world, pooled
and on the worst world, with the intervals (strategies, defects) behind each figure.
`fresh_seeds` draws worlds outside `DEVELOPMENT_SEEDS`.

Only this module (and the CLI around it) reads the ground truth.
"""
