"""Infrastructure every stage shares, importing no domain code: params loading and typed checks
(``params``), atomic writes and digests (``io``), artefact paths (``layout``), model ids, errors, the registry
type, process set-up (``process``: memory kept, thread-invariant BLAS), device and seeding, worker pools,
and machine facts and timing records (``provenance``)."""
