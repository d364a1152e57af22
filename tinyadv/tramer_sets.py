"""The human-labelled invariance examples of Tramer et al. 2020 as committed in
data/tramer2020/: which files make each set, and their SHA-256 (data.load_tramer reads them).
"""
__all__ = ["TRAMER_SETS", "TRAMER_SHA256"]

# name -> (images file, human labels file, source-indices file), relative to data/tramer2020
TRAMER_SETS = {
    "linf_eps03": ("linf/automated_eps03.npy", "linf/automated_eps03_labels.npy", "indexs.npy"),
    "linf_eps04": ("linf/automated_eps04.npy", "linf/automated_eps04_labels.npy", "indexs.npy"),
    "linf_manual_eps04": ("linf/manual_eps04.npy", "linf/manual_eps04_labels.npy",
                          "linf/manual_indexs.npy"),
    "l0": ("l0/automated.npy", "l0/automated_labels.npy", "indexs.npy"),
}
TRAMER_SHA256 = {  # of the .npy files as committed
    "indexs.npy": "a6bd76c3327259475ff8d4e48a4c49cb1fd84df90bd651c45312486b3903968d",
    "l0/automated.npy": "02eb24c04a8b7a26c397fa02e4ae90d43c9e0818eb9f6dcd007953d5279c6d8b",
    "l0/automated_labels.npy": "8e4387f2a9e89678911071838dbf82a59788f49a07784b8960a3310c640a30ec",
    "linf/automated_eps03.npy": "3f1dad7705a272bee7ff6186e241b591a4bba88f7f3a94c686954ba7f78bb986",
    "linf/automated_eps03_labels.npy": "79c93e7ab230591861ea74996ba6c95942290ed9e209e83f0b45b6b0c468ad18",
    "linf/automated_eps04.npy": "751cbe4a5a2b85255e6e38a12e9eca690b2a4d54dc8e9e0d9dd6a582aec37978",
    "linf/automated_eps04_labels.npy": "bb28481ffe49bf13a77a06f43e32895e6270739119e1fc2e1e232aa02bc11316",
    "linf/manual_eps04.npy": "d3e40f37cda8dffb29a08cf8edd56ebd5838e302468a1f7bdc77f58ee662dd5f",
    "linf/manual_eps04_labels.npy": "c953a34663c9c8aeda12a2f1231a6c6ba035a3f9687ac10abcebfb5660390550",
    "linf/manual_indexs.npy": "f92394039cbd784ec8da5adcd653f63c81cf805c474b5fc43a7357e4afc882cc",
}
