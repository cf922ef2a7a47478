"""Budget governance: pricing, policy, the Redis ledger."""
