"""Share groups' partitions (KIP-932): the share-partition state machine, the share sessions of the fetch path,
and the share coordinator that keeps their state durable in ``__share_group_state``."""
