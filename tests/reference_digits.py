"""Figures of pi's decimals computed once with mpmath: too costly to compute in each test run."""

# SHA-256 of the first 10,000,000 decimals, obtained once with mpmath 1.4.1 + gmpy2:
#   with mpmath.workdps(10_000_030): d = str(mpmath.pi)[2:10_000_002]
#   hashlib.sha256(d.encode()).hexdigest()
SHA256_10M = "c3d3dd4bd5d1051fd5995db983eb898ac0308189a20c46e80e5f67d5f415edf1"
