# TEMPORARY sequential stand-in until the real runner lands (not to be committed)
def run_in_workers(tasks, work, *, jobs, initializer=None, initargs=(), blas_threads=1):
    if initializer:
        initializer(*initargs)
    for t in tasks:
        yield t, work(t)
