"""The lab: everything that runs experiments, keeps caches, starts workers and writes files.

    reproduce        python -m tinyadv.reproduce: Table 1 and Figure 1, audited
    sweep            python -m tinyadv.sweep: the invariance term's settings, against people
    configs          a run's config (the paper's TrainConfig, its data, the authors' options),
                     the presets and their rows
    experiments      runs: train, evaluate, save, resume -- what reproduce and sweep share
    runner           worker processes that stop cleanly on Ctrl-C
    paper            the audit of the paper's Table 1 against its authors' logs
    logs             python -m tinyadv.lab.logs: the authors' raw logs, read to the epoch
    stats            Welch's test, the paired per-image test, Holm: "beyond the noise"
    perimage         each saved run's per-image correctness, checked against its record
    evidence         the per-seed numbers and comparisons behind a table (data/runs/*.json)
    recipes          which command and which saved runs make each evidence file
    tables           data/results.md's generated tables, from committed data only
    claims           python -m tinyadv.lab.claims: the claims table, --write, --check
    pgdcheck         python -m tinyadv.lab.pgdcheck: stronger PGD on saved runs
    tramer           the paper's own invariance attack (python -m tinyadv.invariance)
    invariance_cache the label-flipping generator's neighbours for all of MNIST, cached
    bench            python -m tinyadv.bench: one training step's speed
    notebooks        python -m tinyadv.lab.notebooks: each lesson as a Jupyter notebook
"""
