-- Schema and seed data for the load tests.
-- Run by the postgres image on its first start (as POSTGRES_USER in POSTGRES_DB) and by scripts/dev.ts; safe to run twice.

-- tests/load-test.js reads and updates random rows: BEGIN; SELECT; UPDATE; COMMIT.
CREATE TABLE IF NOT EXISTS accounts (
  id      integer     PRIMARY KEY,
  balance bigint      NOT NULL DEFAULT 0,
  updated timestamptz NOT NULL DEFAULT now()
);

INSERT INTO accounts (id, balance)
SELECT g, 1000 FROM generate_series(1, 10000) AS g
ON CONFLICT (id) DO NOTHING;

-- tests/transaction-test.js writes here: a row exists only if its transaction committed.
CREATE TABLE IF NOT EXISTS boundary_log (
  id      bigserial   PRIMARY KEY,
  run     text        NOT NULL,
  note    text        NOT NULL,
  created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS boundary_log_run_note ON boundary_log (run, note);

ANALYZE accounts;
