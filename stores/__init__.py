"""softlabels.stores: the cache format."""
