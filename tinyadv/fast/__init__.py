"""Speed, kept apart from the paper's code so that the readable version stays readable.

Each function here computes what a function of the core computes (its docstring names it)
with less work, and says what it does differently and why; a test holds the two equal.
The lab hands them in (train.train(..., step=fast_train_step), evaluation's ``net``);
the lessons teach from the core.

    step        the training step the lab runs (train.train_step), sharing the anchors'
                forward between FGSM and Eq. 2
    objective   Eq. 2 reusing FGSM's forward of the anchors (objective.objective)
    network     the network as the lab runs it (network.py), with the fast CNN
    mlp         stack_forwards: the forward of a stacked batch from two forwards
    layers      the gather's scatter-add, added in place (layers.gather_rows_backward)
    nearest     the nearest-neighbour search for all of MNIST (invariance.nearest_by_class)
    memory      the C allocator's setting for a process that trains
    conv        the CNN's convolution, pooling and PReLU (cnn_layers.conv2d_*, maxpool2d_*,
                prelu_*): im2col, Fourier transforms, pooling before the PReLU
    cnn         the CNN with conv's blocks (cnn.py), and its stack_forwards
"""
