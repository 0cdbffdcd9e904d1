-- Bytes of mail downloaded per account and UTC day, written in the
-- transaction that stores the messages, for `daily_download_limit`
-- (SQLite's migration 0008 has the same table).
CREATE TABLE download_days (
    account_id bigint NOT NULL REFERENCES accounts(id),
    day        date NOT NULL,
    bytes      bigint NOT NULL,
    PRIMARY KEY (account_id, day)
);
