-- How an SMS travels (GSM-7 or UCS-2, and in how many segments), and how a message was priced:
-- the currency and amount its provider reported, or USD from the price table.
ALTER TABLE messages
    ADD COLUMN encoding text,
    ADD COLUMN segments integer,
    ADD COLUMN cost_currency text,
    ADD COLUMN cost_amount_micros bigint;
