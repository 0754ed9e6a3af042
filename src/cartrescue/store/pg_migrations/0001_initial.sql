-- 1: the first schema. Every table leads with the shop: one database serves many shops,
-- and every key (primary, unique, index) starts with it.
CREATE TABLE meta (
    shop TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (shop, key)
);
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    shop TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    counts TEXT,
    error TEXT
);
CREATE INDEX runs_shop ON runs (shop, id);
CREATE TABLE watermarks (
    shop TEXT NOT NULL, connector TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, connector)
);
CREATE TABLE checkouts (
    shop TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    abandoned_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    reason TEXT,
    closed_at TIMESTAMPTZ,
    PRIMARY KEY (shop, id)
);
CREATE INDEX checkouts_active ON checkouts (shop, status, abandoned_at);
CREATE INDEX checkouts_email ON checkouts (shop, email);
CREATE INDEX checkouts_phone ON checkouts (shop, phone);
CREATE TABLE bad_checkouts (
    shop TEXT NOT NULL, id TEXT NOT NULL, reason TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE TABLE outbox (
    shop TEXT NOT NULL,
    key TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    run_id BIGINT,
    claimed_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    provider_id TEXT,
    error TEXT,
    PRIMARY KEY (shop, key)
);
CREATE INDEX outbox_checkout ON outbox (shop, checkout_id);
CREATE TABLE touches (
    shop TEXT NOT NULL, contact TEXT NOT NULL, key TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, contact, key)
);
CREATE INDEX touches_key ON touches (shop, key);
CREATE TABLE skipped_steps (
    shop TEXT NOT NULL, checkout_id TEXT NOT NULL, step INTEGER NOT NULL,
    reason TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, checkout_id, step)
);
CREATE TABLE discounts (
    shop TEXT NOT NULL, contact TEXT NOT NULL, checkout_id TEXT NOT NULL, code TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX discounts_contact ON discounts (shop, contact);
CREATE INDEX discounts_checkout ON discounts (shop, checkout_id);
CREATE TABLE optouts (
    shop TEXT NOT NULL, contact TEXT NOT NULL, channel TEXT NOT NULL, source TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, contact, channel)
);
CREATE TABLE optout_hashes (
    shop TEXT NOT NULL, hash TEXT NOT NULL, channel TEXT NOT NULL, at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, hash, channel)
);
CREATE TABLE conversions (
    shop TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    total TEXT,
    currency TEXT,
    at TIMESTAMPTZ NOT NULL,
    attributed_key TEXT,
    PRIMARY KEY (shop, checkout_id)
);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    shop TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    checkout_id TEXT,
    step INTEGER,
    channel TEXT,
    detail TEXT
);
CREATE INDEX events_checkout ON events (shop, checkout_id);
CREATE TABLE links (
    shop TEXT NOT NULL,
    code TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    home_url TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (shop, code),
    UNIQUE (shop, checkout_id, step, channel)
);
CREATE TABLE clicks (
    id BIGSERIAL PRIMARY KEY,
    shop TEXT NOT NULL,
    code TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    channel TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX clicks_checkout ON clicks (shop, checkout_id);
