"""Speed, kept apart from the paper's code so that the readable version stays readable.

Each function here computes what a function of the core computes (its docstring names it)
with less work, and says what it does differently and why; a test holds the two equal.
Training calls these; the lessons teach from the core.

    objective   Eq. 2 reusing FGSM's forward of the anchors (objective.objective)
    mlp         stack_forwards: the forward of a stacked batch from two forwards
    layers      the gather's scatter-add, added in place (layers.gather_rows_backward)
    nearest     the nearest-neighbour search for all of MNIST (invariance.nearest_by_class)
    memory      the C allocator's setting for a process that trains
"""
