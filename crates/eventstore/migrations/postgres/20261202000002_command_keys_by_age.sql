-- Old idempotency keys are forgotten by age (StoreTransaction::forget_command_keys).
CREATE INDEX command_keys_by_age ON command_keys (recorded_at);
