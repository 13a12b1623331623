"""softlabels.stores: the cache format.

Layered by what each module handles: ``_fs`` (bytes at keys of a folder or fsspec URL),
``atomic`` (local write-temp-then-rename), ``schema`` (the format: version, paths, keys,
table columns, record names, metadata records), ``manifest`` (committed records and
checksums), ``_codec`` (chunk bytes), ``tables`` (Parquet), ``lock`` (one writer),
``writer``, ``reader`` and ``verify``; ``cache`` re-exports the API of the last three.
"""
