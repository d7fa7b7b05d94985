// Replication connections through pgbun: passed to a server connection of their own, whatever the pool mode, so
// pg_recvlogical and postgres.js subscribe() work through it (PostgreSQL with wal_level = logical).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { adminQuery } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { findPgBin, startPostgres, type PgInstance } from "./harness/postgres.ts";
import { errorCode, errorMessage, RawClient } from "./harness/raw-client.ts";
import { makeCertificates } from "./harness/tls.ts";

let pg: PgInstance;
let p: PgbunProcess;

beforeAll(async () => {
  // Physical replication needs a pg_hba.conf line of its own (database "replication").
  pg = await startPostgres({ settings: { wal_level: "logical" }, hba: "host replication postgres 127.0.0.1/32 scram-sha-256" });
  await pg.psql("CREATE TABLE items (id int PRIMARY KEY, name text); ALTER TABLE items OWNER TO app; CREATE PUBLICATION alltables FOR ALL TABLES", { db: "app" });
  // Transaction mode for everything else: a replication connection still gets a server of its own for its whole life.
  // pg_basebackup always asks for database "replication": that name needs an entry (PostgreSQL ignores its dbname).
  p = await startPgbun([
    ...["--upstream", pg.url("postgres", "postgres", "app"), "--upstream", pg.url("postgres", "postgres", "replication")],
    ...["--pool-mode", "transaction", "--admin-users", "postgres"],
  ]);
});

afterAll(async () => {
  await p?.stop();
  await pg.stop();
});

function run(cmd: string[]) {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, PGPASSWORD: "postgres" } });
  return Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
}

describe("replication connections", () => {
  test("pg_recvlogical creates a slot and streams changes through pgbun in transaction mode", async () => {
    const bin = findPgBin("pg_recvlogical")!;
    const conn = `host=127.0.0.1 port=${p.port} dbname=app user=postgres`;
    const [, createErr, created] = await run([bin, "-d", conn, "--slot", "through_pgbun", "--create-slot", "--plugin", "test_decoding"]);
    expect(createErr).toBe("");
    expect(created).toBe(0);
    await pg.psql("INSERT INTO items VALUES (1, 'first'), (2, 'second')", { db: "app" });
    const endpos = await pg.psql("SELECT pg_current_wal_lsn()");
    const [out, err, code] = await run([bin, "-d", conn, "--slot", "through_pgbun", "--start", "--endpos", endpos, "--no-loop", "-f", "-"]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("table public.items: INSERT: id[integer]:1 name[text]:'first'");
    expect(out).toContain("table public.items: INSERT: id[integer]:2 name[text]:'second'");
    await pg.psql("SELECT pg_drop_replication_slot('through_pgbun')");
  });

  test("postgres.js subscribe() gets inserts made through the pool, and SHOW CLIENTS lists the connection as logical replication", async () => {
    const sql = postgres(p.url("postgres", "postgres", "app"), { max: 2, onnotice: () => {} });
    const rows: Array<{ id: number; name: string }> = [];
    let seen: () => void = () => {};
    const arrived = new Promise<void>((r) => (seen = r));
    const sub = await sql.subscribe("insert:items", (row) => {
      rows.push(row as { id: number; name: string });
      if (rows.length === 2) seen();
    });
    await sql`INSERT INTO items VALUES (10, 'ten')`;
    await sql`INSERT INTO items VALUES (11, 'eleven')`;
    await Promise.race([arrived, Bun.sleep(10_000)]);
    expect(rows).toEqual([
      { id: 10, name: "ten" },
      { id: 11, name: "eleven" },
    ]);
    const clients = await adminQuery(p.port, "SHOW CLIENTS", "postgres", "postgres");
    const repl = clients.filter((c) => c.replication === "logical");
    expect(repl).toHaveLength(1);
    expect(repl[0]).toMatchObject({ user: "postgres", database: "app", state: "active" });
    await sub.unsubscribe();
    await sql.end();
  });

  test("pg_basebackup takes a backup through pgbun, WAL streamed over a second replication connection", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pgbun-basebackup-"));
    try {
      const [, err, code] = await run([findPgBin("pg_basebackup")!, "-D", join(dir, "data"), "-h", "127.0.0.1", "-p", String(p.port), "-U", "postgres", "-X", "stream", "-c", "fast", "--no-sync"]);
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(existsSync(join(dir, "data", "PG_VERSION"))).toBe(true);
      expect(readdirSync(join(dir, "data", "pg_wal")).some((f) => /^[0-9A-F]{24}$/.test(f))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("over TLS when server_tls_sslmode asks for it: pg_recvlogical creates a slot on a PostgreSQL that refuses plain-text logins", async () => {
    const certs = makeCertificates();
    const pgTls = await startPostgres({
      settings: { wal_level: "logical" },
      ssl: { certFile: certs.serverCert, keyFile: certs.serverKey },
      hba: "hostnossl all postgres 127.0.0.1/32 reject",
    });
    const through = await startPgbun(["--upstream", pgTls.url("postgres", "postgres", "app"), "--server-tls-sslmode", "require", "--pool-mode", "transaction"]);
    try {
      const bin = findPgBin("pg_recvlogical")!;
      const conn = `host=127.0.0.1 port=${through.port} dbname=app user=postgres`;
      const [, err, code] = await run([bin, "-d", conn, "--slot", "over_tls", "--create-slot", "--plugin", "test_decoding"]);
      expect(err).toBe("");
      expect(code).toBe(0);
      // The login got past "hostnossl ... reject": it was encrypted.
      expect(await pgTls.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'over_tls'")).toBe("1");
    } finally {
      await through.stop();
      await pgTls.stop();
    }
  });

  test("a wrong password, a bad replication value and an unknown database are refused before any server is involved", async () => {
    const c = await RawClient.connect(p.port);
    const wrong = await c.login("postgres", "app", "nope", { replication: "database" });
    c.close();
    expect(errorCode(wrong.at(-1)!)).toBe("28P01");
    const d = await RawClient.connect(p.port);
    const bad = await d.login("postgres", "app", "postgres", { replication: "sometimes" });
    d.close();
    expect(errorCode(bad.at(-1)!)).toBe("22023");
    expect(errorMessage(bad.at(-1)!)).toBe('invalid value for parameter "replication": "sometimes"');
    const e = await RawClient.connect(p.port);
    const nodb = await e.login("postgres", "elsewhere", "postgres", { replication: "true" });
    e.close();
    expect(errorCode(nodb.at(-1)!)).toBe("3D000");
    expect(errorMessage(nodb.at(-1)!)).toContain('add a [databases.elsewhere] entry for the server, or a wildcard [databases."*"]');
  });
});
