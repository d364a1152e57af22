"""tinyadv: adversarial metric learning against sensitivity and invariance attacks, in NumPy.

Every gradient is written by hand next to its forward pass and checked numerically. The
modules at the top of the package are the paper (Ovalle, Czyzycki, Hsieh, AAAI-23), in the
order a student reads them:

    data         MNIST and the human-labelled invariance examples, checksummed
    layers       linear, ReLU, the gather that picks negatives: forward beside backward
    mlp          the network f = head o body; the embedding h
    losses       cross-entropy, the angular distance (Eq. 1), the triplet loss, the norm
    objective    Eq. 2: every term, one forward pass, one backward pass
    attacks      FGSM (the sensitivity example, Def. 1) and PGD
    optim        SGD and Adam
    train        TrainConfig, Table 1's rows, the training loop and its readable step
    -- one step of Eq. 2 reads in these eight files alone; then:
    cnn_layers   convolution, max pooling, PReLU: forward beside backward
    cnn          the paper's authors' network, a CNN with the MLP's contract
    network      which of the two a run uses, and the optional input normalisation
    invariance   the label-flipping generator (the invariance example, Def. 2)
    evaluate     accuracy under each attack, both readings of the invariance column, people
    gradcheck    numerical gradients and rel_error: how every backward above is checked
    plots        Figure 1 and the lessons' figures
    authors_code what the paper's authors' code computes where it differs from the paper:
                 their distance, batch-hard triplet, norms, FGSM and loss, and the
                 training step they make (handed to train.train like any other step)

    validate, fileio, lesson, tramer_sets   input checks, atomic writes, the lessons' flags,
                 the human-labelled sets' files and checksums

One step away, named for what they are:

    fast/        speed: each function says which function above it replaces, and a test
                 holds the two equal; the lab hands them in (fast/step.py is the step it
                 trains with), a student need not read them
    lab/         experiments: the reproduction, the sweep, runs and workers, the audit of the
                 paper against its logs, the paper's own invariance attack, the benchmark
    grader/      the classroom's exercise checker, which runs students' code sandboxed

Commands: python -m tinyadv.reproduce | sweep | bench | gradcheck | invariance
(README.md says what each prints). Importing tinyadv imports none of its modules.
"""
__version__ = "0.1.0"

__all__ = ["data", "layers", "mlp", "losses", "objective", "attacks", "optim", "train",
           "cnn_layers", "cnn", "network", "invariance", "evaluate", "gradcheck", "plots",
           "authors_code", "validate", "fileio", "lesson", "tramer_sets"]
