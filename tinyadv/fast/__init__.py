"""Speed: functions that compute what a readable function of the core computes, with fewer and
larger array operations. Each one's docstring names the core function it replaces and says
what it does differently and why; the tests hold each equal to its core function in float64.
Read the core first (layers.py, cnn.py, ...); come here to see how the same numbers are
produced fast enough to train on.
"""
