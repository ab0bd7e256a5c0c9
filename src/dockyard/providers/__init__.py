"""Where servers come from: this machine, a local cluster of namespaces, clouds (later)."""
