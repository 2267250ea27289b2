-- The ledger lockstep's sessions move money in. It is created inside its own
-- schema (lockstep by default, see --schema); lockstep sets search_path, so
-- the names here are unqualified.

CREATE TABLE accounts (
    id              bigint PRIMARY KEY,
    owner           text NOT NULL,
    balance         numeric(12,2) NOT NULL,
    -- what the account held when the ledger was reset: the books are kept
    -- when balance = opening_balance + the sum of the account's entries
    opening_balance numeric(12,2) NOT NULL
);

-- The foreign keys matter: inserting a transfer or an entry takes a FOR KEY
-- SHARE lock on the referenced account rows, which SELECT ... FOR UPDATE
-- conflicts with. That is the lecture's deadlock.
CREATE TABLE transfers (
    id              bigserial PRIMARY KEY,
    from_account_id bigint NOT NULL REFERENCES accounts (id),
    to_account_id   bigint NOT NULL REFERENCES accounts (id),
    amount          numeric(12,2) NOT NULL CHECK (amount > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (from_account_id <> to_account_id)
);

CREATE TABLE entries (
    id          bigserial PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES transfers (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    amount      numeric(12,2) NOT NULL
);

CREATE INDEX entries_account_id_idx ON entries (account_id);
CREATE INDEX entries_transfer_id_idx ON entries (transfer_id);
