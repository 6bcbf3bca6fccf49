"""Backends: where a cluster's processes run. `factory.make_backend` builds the one a spec names;
what pgha must know about a backend without building it is `pgha.model.backend_kinds`."""
