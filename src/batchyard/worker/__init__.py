"""Claim loop, leases, retries, finalize, expiry, retention."""
