"""Component kinds: one class per kind of program a cluster runs (Patroni node, etcd member,
ZooKeeper member, HAProxy), each knowing its files, its command line, its ports, its packages
and, where pgha asks it directly, how to tell it is healthy.

`pgha.components.kinds` finds the class for a place in the topology and
`pgha.components.render.render_component` turns one into (files, unit); every backend, the host
bundles and the compose image use them. Deliberately empty: the renderers import single modules
of this package, and the package must not pull them all in.
"""
