# Training: one rule per training job (common.smk:_define_train_job). A job is a block of train.seed_group
# consecutive seeds of one method entry on one env (a group of one seed by default), in one process, the members
# stepped in turn; with train.share_critic the IQL entries of an env that train their critic alike are one job on
# one critic per seed. Each seed's result is bit for bit its solo result either way.


for _labels, _env, _seeds in SPEC.training_jobs():
    _define_train_job(_labels, _env, _seeds)
