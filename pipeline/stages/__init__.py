"""The Beam stages in flow order: rows -> features -> windows -> train (or search) -> evaluate -> plan/summary."""
