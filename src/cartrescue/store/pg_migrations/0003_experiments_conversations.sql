-- 3: experiments and conversations, as SQLite migrations 3 and 4, with the shop at the
-- head of every key.
-- The arm each outbox entry was sent under, for the report's breakdown.
ALTER TABLE outbox ADD COLUMN experiment TEXT;
ALTER TABLE outbox ADD COLUMN arm TEXT;
-- The arm of each checkout in each experiment (the holdout is the experiment 'holdout');
-- step NULL covers every step. The first arm recorded stays.
CREATE TABLE assignments (
    shop TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    experiment TEXT NOT NULL,
    arm TEXT NOT NULL,
    step INTEGER,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, checkout_id, experiment)
);
CREATE INDEX assignments_arm ON assignments (shop, experiment, arm);
-- What buyers replied (and what was sent, when recorded), once per provider message id.
CREATE TABLE conversation (
    id BIGSERIAL PRIMARY KEY,
    shop TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    channel TEXT NOT NULL,
    direction TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    message_id TEXT,
    UNIQUE (shop, source, message_id)
);
CREATE INDEX conversation_checkout ON conversation (shop, checkout_id, id);
-- The hold a reply puts on a checkout's reminders: until NULL is for good.
CREATE TABLE pauses (
    shop TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    until TIMESTAMPTZ,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, checkout_id)
);
-- The reason a buyer gave for leaving; a later answer replaces an earlier one.
CREATE TABLE reasons (
    shop TEXT NOT NULL,
    checkout_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, checkout_id)
);
