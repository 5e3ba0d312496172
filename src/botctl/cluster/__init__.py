"""Running botctl across hosts: the cluster CA and the mutual-TLS link between provider and edges."""
