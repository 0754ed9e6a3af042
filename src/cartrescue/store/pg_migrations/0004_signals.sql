-- Engagement signals: what the provider's status callbacks said about each message (sent,
-- delivered, read, failed), found by the provider's message id.
ALTER TABLE outbox ADD COLUMN signal TEXT;
ALTER TABLE outbox ADD COLUMN signal_at TIMESTAMPTZ;
CREATE INDEX outbox_provider_id ON outbox (shop, provider_id);
