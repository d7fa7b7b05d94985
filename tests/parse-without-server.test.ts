// A Parse of a statement the pool's servers already prepared is answered by pgbun without waiting for a server, and the
// statement is made, freshly, on whichever server the client's first Bind or Describe reaches.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, errorCode, msg, RawClient, type Msg } from "./harness/raw-client.ts";

let pg: PgInstance;
let one: PgbunProcess; // transaction mode, a single server

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE lz (a int); INSERT INTO lz VALUES (1)", { user: "app", password: "apppass", db: "app" });
  one = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1", "--query-wait-timeout", "4"]);
});

afterAll(async () => {
  await one.stop();
  await pg.stop();
});

async function client(p = one): Promise<RawClient> {
  const c = await RawClient.connect(p.port);
  await c.login("app", "app", "apppass");
  return c;
}

const sync = msg.sync();
const text = (m: Msg) => new TextDecoder().decode(m.body);

/** Messages up to and including the next ReadyForQuery. */
async function replies(c: RawClient, timeoutMs = 5000): Promise<Msg[]> {
  const out: Msg[] = [];
  for (;;) {
    const m = await c.next(timeoutMs);
    out.push(m);
    if (m.tag === "Z") return out;
  }
}

describe("a Parse the pool knows needs no server", () => {
  test("answered while another client holds the only server in a transaction; the Bind runs once it is free", async () => {
    const first = await client();
    first.send(concat(msg.parse("s1", "SELECT a FROM lz WHERE a = $1"), sync));
    expect(await first.untilReady()).toEqual(["1", "Z:I"]);
    first.close();

    const holder = await client();
    holder.send(msg.query("BEGIN"));
    await holder.untilReady();

    const a = await client();
    a.send(concat(msg.parse("mine", "SELECT a FROM lz WHERE a = $1"), sync));
    // Without a server to spare this waited for query_wait_timeout; now pgbun answers at once.
    expect(await a.untilReady(1, 1500)).toEqual(["1", "Z:I"]);

    a.send(concat(msg.bind("", "mine", ["1"]), msg.execute(), sync));
    holder.send(msg.query("COMMIT"));
    await holder.untilReady();
    expect(await a.untilReady()).toEqual(["2", "D", "C", "Z:I"]);
    a.close();
    holder.close();
  });

  test("made where first used, after DDL: the client sees the table as it is now, as a direct Parse would", async () => {
    const first = await client();
    first.send(concat(msg.parse("s2", "SELECT * FROM lz"), msg.bind("", "s2"), msg.execute(), sync));
    expect(await first.untilReady()).toEqual(["1", "2", "D", "C", "Z:I"]);
    first.close();
    await pg.psql("ALTER TABLE lz ADD COLUMN b text DEFAULT 'x'", { user: "app", password: "apppass", db: "app" });

    const a = await client();
    a.send(concat(msg.parse("late", "SELECT * FROM lz"), sync));
    expect(await a.untilReady()).toEqual(["1", "Z:I"]);
    a.send(concat(msg.describe("S", "late"), msg.bind("", "late"), msg.execute(), sync));
    const got = await replies(a);
    expect(got.map((m) => m.tag)).toEqual(["t", "T", "2", "D", "C", "Z"]);
    const desc = text(got[1]!);
    expect(desc).toContain("a\0");
    expect(desc).toContain("b\0");
    a.close();
    await pg.psql("ALTER TABLE lz DROP COLUMN b", { user: "app", password: "apppass", db: "app" });
  });

  test("a table dropped since: PostgreSQL's error comes at the first Bind, and the next use tries again", async () => {
    await pg.psql("CREATE TABLE gone (a int)", { user: "app", password: "apppass", db: "app" });
    const first = await client();
    first.send(concat(msg.parse("g", "SELECT a FROM gone"), sync));
    expect(await first.untilReady()).toEqual(["1", "Z:I"]);
    first.close();
    await pg.psql("DROP TABLE gone", { user: "app", password: "apppass", db: "app" });

    const a = await client();
    a.send(concat(msg.parse("g2", "SELECT a FROM gone"), sync));
    expect(await a.untilReady()).toEqual(["1", "Z:I"]);
    a.send(concat(msg.bind("", "g2"), msg.execute(), sync));
    const failed = await replies(a);
    expect(failed.map((m) => (m.tag === "E" ? "E:" + errorCode(m) : m.tag))).toEqual(["E:42P01", "Z"]);

    await pg.psql("CREATE TABLE gone (a int); INSERT INTO gone VALUES (7)", { user: "app", password: "apppass", db: "app" });
    a.send(concat(msg.bind("", "g2"), msg.execute(), sync));
    expect(await a.untilReady()).toEqual(["2", "D", "C", "Z:I"]);
    a.close();
  });

  test("pgbench -M prepared, TPC-B, 8 clients on one thread over 2 servers: runs, zero failed transactions", async () => {
    const p = await startPgbun(["--upstream", pg.url("postgres"), "--pool-mode", "transaction", "--pool-size", "2", "--query-wait-timeout", "5"]);
    try {
      const env = { ...process.env, PGPASSWORD: "postgres" };
      const init = Bun.spawnSync(["pgbench", "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "postgres"], { env });
      expect(init.exitCode).toBe(0);
      // pgbench prepares synchronously at each client's first transaction: before, the 3rd client's Parse waited
      // behind the two clients holding both servers in transactions that the same (blocked) thread drives.
      const r = Bun.spawnSync(["pgbench", "-n", "-M", "prepared", "-c", "8", "-j", "1", "-t", "40", "-h", "127.0.0.1", "-p", String(p.port), "-U", "postgres", "postgres"], {
        env,
        timeout: 60_000,
      });
      const out = r.stdout.toString() + r.stderr.toString();
      expect(out).toContain("number of transactions actually processed: 320/320");
      expect(out).toContain("number of failed transactions: 0 (0.000%)");
      expect(r.exitCode).toBe(0);
    } finally {
      await p.stop();
    }
  });
});
