-- 5: look-again times (see LookAgainStore): when an open checkout next needs deciding, what
-- it was counted as, under which configuration, and the mark of the pass deciding it. The
-- triggers drop the time (and the mark) whenever something the policy reads changes,
-- whichever process or command writes it.
ALTER TABLE checkouts
    ADD COLUMN look_at TIMESTAMPTZ,
    ADD COLUMN look_count TEXT,
    ADD COLUMN look_config TEXT,
    ADD COLUMN look_token TEXT;

-- A key released, failed or deleted: its checkout, and every checkout sharing a contact
-- with it (their frequency cap may have lifted). Moves between claimed, sent and unknown
-- change nothing the policy reads.
CREATE FUNCTION cartrescue_look_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_ outbox%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_ := OLD;
    ELSE
        IF OLD.status IN ('claimed', 'sent', 'unknown')
                AND NEW.status IN ('claimed', 'sent', 'unknown') THEN
            RETURN NULL;
        END IF;
        row_ := NEW;
    END IF;
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = row_.shop AND id = row_.checkout_id;
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = row_.shop AND email IN (
            SELECT contact FROM touches WHERE shop = row_.shop AND key = row_.key);
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = row_.shop AND phone IN (
            SELECT contact FROM touches WHERE shop = row_.shop AND key = row_.key);
    RETURN NULL;
END $$;
CREATE TRIGGER look_outbox AFTER UPDATE OF status OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_outbox();

-- A skipped step drops the time only: a pass's own skips come before its decision.
CREATE FUNCTION cartrescue_look_skipped() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE checkouts SET look_at = NULL WHERE shop = NEW.shop AND id = NEW.checkout_id;
    RETURN NULL;
END $$;
CREATE TRIGGER look_skipped AFTER INSERT ON skipped_steps
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_skipped();

CREATE FUNCTION cartrescue_look_optout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = NEW.shop AND email = NEW.contact;
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = NEW.shop AND phone = NEW.contact;
    RETURN NULL;
END $$;
CREATE TRIGGER look_optout AFTER INSERT OR UPDATE ON optouts
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_optout();

-- A hashed opt-out names no contact: every time of the shop goes.
CREATE FUNCTION cartrescue_look_optout_hash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = NEW.shop AND (look_at IS NOT NULL OR look_token IS NOT NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER look_optout_hash AFTER INSERT OR UPDATE ON optout_hashes
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_optout_hash();

-- A reply's pause (set, changed or lifted) and a stated reason: that checkout's time goes.
CREATE FUNCTION cartrescue_look_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_shop TEXT;
    row_checkout TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_shop := OLD.shop;
        row_checkout := OLD.checkout_id;
    ELSE
        row_shop := NEW.shop;
        row_checkout := NEW.checkout_id;
    END IF;
    UPDATE checkouts SET look_at = NULL, look_token = NULL
        WHERE shop = row_shop AND id = row_checkout;
    RETURN NULL;
END $$;
CREATE TRIGGER look_pauses AFTER INSERT OR UPDATE OR DELETE ON pauses
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_conversation();
CREATE TRIGGER look_reasons AFTER INSERT OR UPDATE ON reasons
    FOR EACH ROW EXECUTE FUNCTION cartrescue_look_conversation();
