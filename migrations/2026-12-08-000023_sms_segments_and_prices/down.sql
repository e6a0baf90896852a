ALTER TABLE messages
    DROP COLUMN encoding,
    DROP COLUMN segments,
    DROP COLUMN cost_currency,
    DROP COLUMN cost_amount_micros;
