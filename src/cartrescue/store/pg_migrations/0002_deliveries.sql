-- Inbound deliveries taken once: a platform's webhook id or a provider's message id, kept
-- for a week so a retried delivery is recognised and ignored.
CREATE TABLE deliveries (
    shop TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, source, id)
);
CREATE INDEX deliveries_at ON deliveries (shop, at);
