"""The datasets params may name and their pinned files (``datasets``: catalogue, readers, digest checks),
and the seeded splits the study works on (``splits``)."""
