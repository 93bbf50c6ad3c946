"""lrukv_server: the lrukv service (gRPC and HTTP APIs, transaction log, and later
replication, discovery, security and observability) built on the ``lrukv`` core.

Layers, and who may import whom::

    agent (the one wiring point) -> api (grpc, http) -> service (KVService protocol)
    service -> LocalService (lrukv core + transaction log) | ReplicatedService (raft)
    txlog, discovery, security, observability: leaves, wired by the agent
"""
