// Protocol-level named prepared statements in transaction and statement mode, with no change to clients.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SQL } from "bun";
import postgres from "postgres";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, errorMessage, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let tx: PgbunProcess; // transaction mode, 2 servers
const extra: PgbunProcess[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE w (id int, v text)", { user: "app", password: "apppass", db: "app" });
  tx = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "2"]);
});

afterAll(async () => {
  for (const p of [tx, ...extra]) await p.stop();
  await pg.stop();
});

async function client(p = tx): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  await c.login("app", "app", "apppass");
  return c;
}

const sync = msg.sync();
const rows = (c: RawClient, n = 1) => c.untilReady(n);

describe("drivers with their defaults", () => {
  test("pgbench -M prepared -S with 50 clients over 5 servers: zero failed transactions", async () => {
    const p = await startPgbun(["--upstream", pg.url("postgres"), "--pool-mode", "transaction", "--pool-size", "5"]);
    extra.push(p);
    const env = { ...process.env, PGPASSWORD: "postgres" };
    const init = Bun.spawnSync(["pgbench", "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "postgres"], { env });
    expect(init.exitCode).toBe(0);
    const r = Bun.spawnSync(["pgbench", "-n", "-S", "-M", "prepared", "-c", "50", "-j", "2", "-T", "3", "-h", "127.0.0.1", "-p", String(p.port), "-U", "postgres", "postgres"], { env });
    const out = r.stdout.toString() + r.stderr.toString();
    expect(out).toContain("number of failed transactions: 0 (0.000%)");
    expect(out).not.toContain("does not exist");
    expect(r.exitCode).toBe(0);
  });

  test("postgres.js (prepare: true) across many transactions and clients over 2 servers", async () => {
    const sqls = Array.from({ length: 12 }, () => postgres(tx.url("app", "apppass", "app"), { max: 1 }));
    await Promise.all(
      sqls.map(async (sql, i) => {
        for (let j = 0; j < 25; j++) {
          const r = await sql`SELECT ${i}::int AS i, ${j}::int AS j, pg_backend_pid() AS pid`;
          expect([r[0]!.i, r[0]!.j]).toEqual([i, j]);
        }
      }),
    );
    await Promise.all(sqls.map((s) => s.end()));
  });

  test("postgres.js's named COMMIT inside sql.begin commits the writes (no silent ROLLBACK)", async () => {
    await pg.psql("TRUNCATE w", { user: "app", password: "apppass", db: "app" });
    const sqls = Array.from({ length: 8 }, () => postgres(tx.url("app", "apppass", "app"), { max: 1 }));
    await Promise.all(
      sqls.map(async (sql, i) => {
        for (let j = 0; j < 10; j++) {
          await sql.begin(async (t) => {
            await t`INSERT INTO w VALUES (${i * 100 + j}, 'x')`;
          });
        }
      }),
    );
    await Promise.all(sqls.map((s) => s.end()));
    expect(await pg.psql("SELECT count(*) FROM w", { user: "app", password: "apppass", db: "app" })).toBe("80");
  });

  test("Bun.sql with its defaults", async () => {
    const dbs = Array.from({ length: 6 }, () => new SQL({ url: tx.url("app", "apppass", "app"), max: 1 }));
    await Promise.all(
      dbs.map(async (db, i) => {
        for (let j = 0; j < 20; j++) {
          const r = await db`SELECT ${i}::int + ${j}::int AS s`;
          expect(r[0].s).toBe(i + j);
        }
      }),
    );
    await Promise.all(dbs.map((d) => d.close()));
  });
});

describe("one client's statement follows it across servers", () => {
  test("prepared once, bound in transactions that land on different servers", async () => {
    const a = await client();
    a.send(concat(msg.parse("mine", "SELECT pg_backend_pid()::text || ':' || $1::text"), sync));
    expect(await rows(a)).toEqual(["1", "Z:I"]);
    const pids = new Set<string>();
    const blocker = await client();
    for (let i = 0; i < 6; i++) {
      // alternately hold one server elsewhere so a's next transaction lands on the other one
      if (i % 2 === 1) {
        blocker.send(msg.query("BEGIN"));
        await blocker.untilReady();
      }
      a.send(concat(msg.bind("", "mine", [String(i)]), msg.execute(), sync));
      const got: string[] = [];
      for (;;) {
        const m = await a.next();
        if (m.tag === "D") got.push(new TextDecoder().decode(m.body.slice(6)));
        if (m.tag === "E") throw new Error(errorMessage(m));
        if (m.tag === "Z") break;
      }
      expect(got[0]!.endsWith(`:${i}`)).toBe(true);
      pids.add(got[0]!.split(":")[0]!);
      if (i % 2 === 1) {
        blocker.send(msg.query("COMMIT"));
        await blocker.untilReady();
      }
    }
    expect(pids.size).toBe(2);
    a.close();
    blocker.close();
  });

  test("pipelines mix named and unnamed statements", async () => {
    const a = await client();
    a.send(
      concat(
        msg.parse("n1", "SELECT 1"),
        msg.parse("", "SELECT 2"),
        msg.bind("", ""),
        msg.execute(),
        msg.bind("", "n1"),
        msg.describe("P", ""),
        msg.execute(),
        sync,
        msg.bind("", "n1"),
        msg.execute(),
        msg.describe("S", "n1"),
        sync,
      ),
    );
    expect(await rows(a, 2)).toEqual(["1", "1", "2", "D", "C", "2", "T", "D", "C", "Z:I", "2", "D", "C", "t", "T", "Z:I"]);
    a.close();
  });
});

describe("errors behave as on a direct connection", () => {
  test("a Parse reusing a live name gets 42P05 and aborts the transaction like PostgreSQL", async () => {
    const a = await client();
    a.send(concat(msg.parse("dup", "SELECT 1"), sync));
    expect(await rows(a)).toEqual(["1", "Z:I"]);
    a.send(msg.query("BEGIN"));
    await rows(a);
    a.send(concat(msg.parse("dup", "SELECT 2"), msg.bind("", "dup"), msg.execute(), sync));
    const r = await rows(a);
    expect(r).toEqual(["E:42P05", "Z:E"]);
    a.send(msg.query("ROLLBACK"));
    expect(await rows(a)).toEqual(["C", "Z:I"]);
    a.close();
  });

  test("a Bind of an unknown name gets 26000", async () => {
    const a = await client();
    a.send(concat(msg.bind("", "never_prepared"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["E:26000", "Z:I"]);
    a.close();
  });

  test("a failed Parse leaves nothing behind: the name is free and unknown", async () => {
    const a = await client();
    a.send(concat(msg.parse("bad", "SELEC 1"), sync));
    expect(await rows(a)).toEqual(["E:42601", "Z:I"]);
    a.send(concat(msg.parse("bad", "SELECT 5"), msg.bind("", "bad"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["1", "2", "D", "C", "Z:I"]);
    a.close();
  });

  test("an error inside a pipeline skips to Sync, including pgbun's own replies", async () => {
    const a = await client();
    a.send(concat(msg.parse("p1", "SELECT 1"), sync));
    await rows(a);
    a.send(concat(msg.parse("p2", "SELECT 1/0"), msg.bind("", "p2"), msg.execute(), msg.parse("p3", "SELECT 3"), msg.bind("", "p1"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["1", "E:22012", "Z:I"]);
    a.send(concat(msg.bind("", "p1"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["2", "D", "C", "Z:I"]);
    a.close();
  });

  test("after DDL, 'cached plan must not change result type' comes on every use, as directly, until the client prepares again", async () => {
    await pg.psql("CREATE TABLE ddl (a int)", { user: "app", password: "apppass", db: "app" });
    const a = await client();
    a.send(concat(msg.parse("sel", "SELECT * FROM ddl"), msg.bind("", "sel"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["1", "2", "C", "Z:I"]);
    await pg.psql("ALTER TABLE ddl ADD COLUMN b int", { user: "app", password: "apppass", db: "app" });
    // PostgreSQL fixes a statement's columns when it is parsed: whichever server runs it, the client's stays stale.
    for (let i = 0; i < 3; i++) {
      a.send(concat(msg.bind("", "sel"), msg.execute(), sync));
      expect(await rows(a)).toEqual(["E:0A000", "Z:I"]);
    }
    a.send(concat(msg.close("S", "sel"), msg.parse("sel", "SELECT * FROM ddl"), msg.bind("", "sel"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["3", "1", "2", "C", "Z:I"]);
    a.close();
  });
});

describe("SQL-level statement commands", () => {
  test("DEALLOCATE of a client's statement is answered, and the name is gone", async () => {
    const a = await client();
    a.send(concat(msg.parse("d1", "SELECT 1"), sync));
    await rows(a);
    a.send(msg.query("DEALLOCATE d1"));
    expect(await rows(a)).toEqual(["C", "Z:I"]);
    a.send(concat(msg.bind("", "d1"), msg.execute(), sync));
    expect(await rows(a)).toEqual(["E:26000", "Z:I"]);
    a.send(msg.query("DEALLOCATE d1"));
    expect(await rows(a)).toEqual(["E:26000", "Z:I"]);
    a.close();
  });

  test("DEALLOCATE ALL and DISCARD ALL forget the client's statements, and other clients' still work", async () => {
    const a = await client();
    const b = await client();
    b.send(concat(msg.parse("keep", "SELECT 7"), sync));
    await rows(b);
    for (const cmd of ["DEALLOCATE ALL", "DISCARD ALL"]) {
      a.send(concat(msg.parse("gone", "SELECT 1"), sync));
      expect(await rows(a)).toEqual(["1", "Z:I"]);
      a.send(msg.query(cmd));
      expect(await rows(a)).toEqual(["C", "Z:I"]);
      a.send(concat(msg.bind("", "gone"), msg.execute(), sync));
      expect(await rows(a)).toEqual(["E:26000", "Z:I"]);
      b.send(concat(msg.bind("", "keep"), msg.execute(), sync));
      expect(await rows(b)).toEqual(["2", "D", "C", "Z:I"]);
    }
    a.close();
    b.close();
  });

  test("SQL PREPARE/EXECUTE works: the client keeps its server until DEALLOCATE, and no other client sees the statement", async () => {
    const a = await client();
    a.send(msg.query("PREPARE q AS SELECT 41 + 1"));
    expect(await rows(a)).toEqual(["C", "Z:I"]);
    // a's server (the one just used, first in line) stays a's while q exists: b lands elsewhere and has no q
    const b = await client();
    b.send(msg.query("EXECUTE q"));
    expect(await rows(b)).toEqual(["E:26000", "Z:I"]);
    a.send(msg.query("EXECUTE q"));
    expect(await rows(a)).toEqual(["T", "D", "C", "Z:I"]);
    a.send(msg.query("DEALLOCATE q"));
    expect(await rows(a)).toEqual(["C", "Z:I"]);
    a.close();
    b.close();
  });
});

describe("the per-server cache", () => {
  test("is bounded by max_prepared_statements: the least recently used is closed, and re-prepared when used again", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1", "--max-prepared-statements", "2"]);
    extra.push(p);
    const a = await client(p);
    for (const n of [1, 2, 3]) {
      a.send(concat(msg.parse(`s${n}`, `SELECT ${n}`), sync));
      expect(await rows(a)).toEqual(["1", "Z:I"]);
    }
    a.send(msg.query("SELECT count(*) FROM pg_prepared_statements"));
    const counted: string[] = [];
    for (;;) {
      const m = await a.next();
      if (m.tag === "D") counted.push(new TextDecoder().decode(m.body.slice(6)));
      if (m.tag === "Z") break;
    }
    expect(counted).toEqual(["2"]);
    for (const n of [1, 2, 3, 1]) {
      a.send(concat(msg.bind("", `s${n}`), msg.execute(), sync));
      expect(await rows(a)).toEqual(["2", "D", "C", "Z:I"]);
    }
    a.close();
  });

  test("max_prepared_statements = 0 turns the feature off (names pass through)", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1", "--max-prepared-statements", "0"]);
    extra.push(p);
    const a = await client(p);
    a.send(concat(msg.parse("plain_name", "SELECT 1"), sync));
    await rows(a);
    a.send(msg.query("SELECT name FROM pg_prepared_statements"));
    const names: string[] = [];
    for (;;) {
      const m = await a.next();
      if (m.tag === "D") names.push(new TextDecoder().decode(m.body.slice(6)));
      if (m.tag === "Z") break;
    }
    expect(names).toEqual(["plain_name"]);
    a.close();
  });

  test("session mode is a plain pass-through", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "session", "--pool-size", "1"]);
    extra.push(p);
    const a = await client(p);
    a.send(concat(msg.parse("sess_name", "SELECT 1"), sync));
    await rows(a);
    a.send(msg.query("PREPARE sqlp AS SELECT 1"));
    expect(await rows(a)).toEqual(["C", "Z:I"]);
    a.send(msg.query("SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements"));
    const names: string[] = [];
    for (;;) {
      const m = await a.next();
      if (m.tag === "D") names.push(new TextDecoder().decode(m.body.slice(6)));
      if (m.tag === "Z") break;
    }
    expect(names).toEqual(["sess_name,sqlp"]);
    a.close();
  });
});

test("one client may hold at most 10,000 named statements; the next Parse fails like any error and the connection goes on", async () => {
  const a = await client();
  const parses: Uint8Array[] = [];
  for (let i = 0; i < 10_000; i++) parses.push(msg.parse(`many${i}`, "SELECT 1"));
  a.send(concat(...parses, sync));
  const first = await rows(a);
  expect(first.length).toBe(10_001);
  expect(first.at(-1)).toBe("Z:I");
  a.send(concat(msg.parse("one_more", "SELECT 1"), sync));
  const m = await a.untilReady();
  expect(m).toEqual(["E:54000", "Z:I"]);
  a.send(concat(msg.close("S", "many0"), msg.parse("one_more", "SELECT 1"), sync));
  expect(await rows(a)).toEqual(["3", "1", "Z:I"]);
  a.close();
});
