"""The audit trail (clause 9): append-only, hash-chained, durable before a response leaves."""
