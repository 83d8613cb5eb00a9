"""Suite-wide settings."""

from __future__ import annotations

import os

from hypothesis import settings

# Property tests explore new random examples on every developer run; under CI (the CI variable
# set, as CI services do) they replay the same derived examples, so a red CI run is reproducible
# and a green one cannot turn red on a later lucky draw. A failure found locally is kept in
# .hypothesis/ and replayed there until fixed; add it with @example to pin it everywhere.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
