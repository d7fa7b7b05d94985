// prepare_unnamed: an unnamed Parse seen before binds a statement pgbun prepared on the server, and the client sees
// exactly what a direct connection shows it: the same replies in the same order, the same errors at the same step,
// also after DDL made the prepared statement stale. Each script runs directly and through pgbun; outputs must match.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { freePort, startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, errorCode, msg, RawClient, type Msg } from "./harness/raw-client.ts";

let pg: PgInstance;
let on: PgbunProcess; // transaction mode, one server, prepare_unnamed
let statsPort: number;

const as = { user: "app", password: "apppass", db: "app" };

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE pu (a int, b text); INSERT INTO pu VALUES (1, 'one'), (2, 'two')", as);
  statsPort = await freePort();
  on = await startPgbun([
    "--upstream",
    pg.url("app", "apppass", "app"),
    "--pool-mode",
    "transaction",
    "--pool-size",
    "1",
    "--prepare-unnamed",
    "--stats-listen",
    `127.0.0.1:${statsPort}`,
  ]);
});

afterAll(async () => {
  await on.stop();
  await pg.stop();
});

const sync = msg.sync();
const utf8 = new TextDecoder();

/** A reply as text: its tag, and what identifies its content (rows, columns, parameter types, SQLSTATE). */
function show(m: Msg): string {
  const v = new DataView(m.body.buffer, m.body.byteOffset, m.body.byteLength);
  switch (m.tag) {
    case "E":
      return "E:" + errorCode(m);
    case "Z":
      return "Z:" + String.fromCharCode(m.body[0]!);
    case "D":
    case "C":
      return m.tag + ":" + utf8.decode(m.body).replace(/[\0-\x08]/g, "|");
    case "T": {
      const names: string[] = [];
      let at = 2;
      for (let i = 0; i < v.getInt16(0); i++) {
        const nul = m.body.indexOf(0, at);
        names.push(utf8.decode(m.body.subarray(at, nul)) + "/" + v.getUint32(nul + 7));
        at = nul + 19;
      }
      return "T:" + names.join(",");
    }
    case "t": {
      const types: number[] = [];
      for (let i = 0; i < v.getInt16(0); i++) types.push(v.getUint32(2 + 4 * i));
      return "t:" + types.join(",");
    }
    default:
      return m.tag;
  }
}

/** Sends `bytes` and collects the replies up to `readies` ReadyForQuery. */
async function exchange(c: RawClient, bytes: Uint8Array, readies = 1): Promise<string[]> {
  c.send(bytes);
  const out: string[] = [];
  for (let seen = 0; seen < readies; ) {
    const m = await c.next();
    if (m.tag === "N" || m.tag === "S") continue;
    out.push(show(m));
    if (m.tag === "Z") seen++;
  }
  return out;
}

async function connect(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login("app", "app", "apppass");
  return c;
}

/** Runs the same steps directly and through pgbun (each on its own connection); returns both transcripts. */
async function both(steps: Array<{ send?: Uint8Array; readies?: number; sql?: string }>): Promise<[string[], string[]]> {
  const direct = await connect(pg.port);
  const pooled = await connect(on.port);
  const a: string[] = [];
  const b: string[] = [];
  for (const s of steps) {
    if (s.sql !== undefined) {
      await pg.psql(s.sql, as);
      a.push("-- " + s.sql);
      b.push("-- " + s.sql);
      continue;
    }
    a.push(...(await exchange(direct, s.send!, s.readies ?? 1)));
    b.push(...(await exchange(pooled, s.send!, s.readies ?? 1)));
  }
  direct.close();
  pooled.close();
  return [a, b];
}

async function stats(): Promise<Record<string, number>> {
  const s = (await (await fetch(`http://127.0.0.1:${statsPort}/stats`)).json()) as { pools: Array<Record<string, number | string>> };
  // Before the first client the pool does not exist yet: every counter is 0.
  const pool = (s.pools.find((p) => p.database === "app") ?? {}) as Record<string, number>;
  return new Proxy(pool, { get: (o, k: string) => o[k] ?? 0 });
}

const run = (sql: string, params: string[] = []) =>
  concat(msg.parse("", sql), msg.bind("", "", params), msg.describe("P", ""), msg.execute(), sync);
const times = (n: number, bytes: Uint8Array) => Array.from({ length: n }, () => ({ send: bytes }));

describe("prepare_unnamed shows what a direct connection shows", () => {
  test("a query run again binds the statement prepared on the server (hits counted), with identical replies", async () => {
    const before = await stats();
    const q = run("SELECT a, b FROM pu WHERE a = $1", ["2"]);
    const [direct, pooled] = await both(times(6, q));
    expect(pooled).toEqual(direct);
    expect(direct.slice(0, 6)).toEqual(["1", "2", "T:a/23,b/25", "D:||||||2||||two", "C:SELECT 1|", "Z:I"]);
    const after = await stats();
    // 1st seen: plain; 2nd: prepared on the server; 3rd to 6th: bound without a Parse.
    expect(after.prepared_statements_prepared! - before.prepared_statements_prepared!).toBe(1);
    expect(after.prepared_statements_hits! - before.prepared_statements_hits!).toBe(4);
  });

  test("DDL changed the result type: no 0A000, the new columns, and the stale statement is replaced (replay counted)", async () => {
    await pg.psql("CREATE TABLE pu2 (a int)", as);
    const q = run("SELECT * FROM pu2");
    const before = await stats();
    const describeFirst = concat(msg.parse("", "SELECT * FROM pu2"), msg.describe("S", ""), sync);
    const [direct, pooled] = await both([
      ...times(3, q),
      { sql: "ALTER TABLE pu2 ADD COLUMN c text DEFAULT 'x'; INSERT INTO pu2 VALUES (5)" },
      ...times(2, q),
      ...times(3, describeFirst),
      { sql: "ALTER TABLE pu2 ADD COLUMN d int DEFAULT 3" },
      // a Describe of the statement first (postgres.js): ParameterDescription comes before PostgreSQL revalidates
      ...times(2, describeFirst),
      { send: concat(msg.bind("", ""), msg.execute(), sync) },
    ]);
    expect(pooled).toEqual(direct);
    expect(pooled).toContain("T:a/23,c/25");
    expect(pooled).toContain("T:a/23,c/25,d/23");
    expect(pooled.join(" ")).not.toContain("E:");
    expect((await stats()).prepared_statements_replays! - before.prepared_statements_replays!).toBe(2);
  });

  test("a table dropped since: the error comes at the Parse, as directly, in every way of sending the group", async () => {
    await pg.psql("CREATE TABLE pu3 (a int)", as);
    const sql = "SELECT a FROM pu3";
    const steps = [
      ...times(3, run(sql)),
      { sql: "DROP TABLE pu3" },
      // the usual group; Parse and Sync alone; Describe of the statement first; Flush first, then the rest
      { send: run(sql) },
      { send: concat(msg.parse("", sql), sync) },
      { send: concat(msg.parse("", sql), msg.describe("S", ""), sync) },
      { sql: "CREATE TABLE pu3 (a int, z int)" },
      ...times(2, run(sql)),
    ];
    const [direct, pooled] = await both(steps);
    expect(pooled).toEqual(direct);
    expect(direct.filter((x) => x.startsWith("E:"))).toEqual(["E:42P01", "E:42P01", "E:42P01"]);
  });

  test("Flush before Sync: replies arrive at the Flush, and a stale statement is still undone", async () => {
    await pg.psql("CREATE TABLE pu4 (a int); INSERT INTO pu4 VALUES (4)", as);
    const sql = "SELECT * FROM pu4";
    const direct = await connect(pg.port);
    const pooled = await connect(on.port);
    const flushThenSync = async (c: RawClient, out: string[]) => {
      c.send(concat(msg.parse("", sql), msg.bind("", ""), msg.describe("P", ""), msg.flush()));
      for (let i = 0; i < 3; i++) out.push(show(await c.next()));
      out.push(...(await exchange(c, concat(msg.execute(), sync))));
    };
    const a: string[] = [];
    const b: string[] = [];
    for (let round = 0; round < 4; round++) {
      if (round === 2) await pg.psql("ALTER TABLE pu4 ADD COLUMN y int DEFAULT 9", as);
      await flushThenSync(direct, a);
      await flushThenSync(pooled, b);
    }
    expect(b).toEqual(a);
    expect(b).toContain("T:a/23,y/23");
    direct.close();
    pooled.close();
  });

  test("pipelined groups after DDL: every group answered in order, as directly", async () => {
    await pg.psql("CREATE TABLE pu5 (a int); INSERT INTO pu5 VALUES (5)", as);
    const q = run("SELECT * FROM pu5");
    const two = run("SELECT a + $1::int AS s FROM pu5", ["10"]);
    const [direct, pooled] = await both([
      ...times(3, concat(q, two)).map((s) => ({ ...s, readies: 2 })),
      { sql: "ALTER TABLE pu5 ADD COLUMN w int DEFAULT 1" },
      { send: concat(q, two, q, msg.query("SELECT 1"), q), readies: 5 },
    ]);
    expect(pooled).toEqual(direct);
  });

  test("inside a transaction block, and after a simple Query destroyed the unnamed statement: as directly", async () => {
    await pg.psql("CREATE TABLE pu6 (a int); INSERT INTO pu6 VALUES (6)", as);
    const q = run("SELECT * FROM pu6");
    const [direct, pooled] = await both([
      ...times(3, q),
      { send: msg.query("BEGIN") },
      ...times(2, q),
      { sql: "SELECT 1" },
      { send: msg.query("COMMIT") },
      { send: concat(msg.parse("", "SELECT * FROM pu6"), sync) },
      { send: msg.query("SELECT 2") },
      { send: concat(msg.bind("", ""), msg.execute(), sync) },
    ]);
    expect(pooled).toEqual(direct);
    expect(direct.at(-2)).toBe("E:26000");
  });

  test("errors at Bind (bad input) and at Execute (division by zero) come once, at their step", async () => {
    const q = (v: string) => run("SELECT 10 / $1::int AS r", [v]);
    const [direct, pooled] = await both([...times(3, q("2")), { send: q("x") }, { send: q("0") }, { send: q("5") }]);
    expect(pooled).toEqual(direct);
    expect(direct.filter((x) => x.startsWith("E:"))).toEqual(["E:22P02", "E:22012"]);
  });

  test("a client gone while its stale statement's first use is answered: nothing sent again, the server serves the next", async () => {
    await pg.psql("CREATE TABLE pu8 (a int); INSERT INTO pu8 VALUES (8)", as);
    const q = run("SELECT * FROM pu8");
    const c = await connect(on.port);
    for (let i = 0; i < 3; i++) await exchange(c, q);
    await pg.psql("ALTER TABLE pu8 ADD COLUMN m int DEFAULT 0", as);
    c.send(q);
    c.close();
    // The pool has one server: the next client gets it, and the current columns.
    const next = await connect(on.port);
    expect(await exchange(next, q)).toEqual(["1", "2", "T:a/23,m/23", "D:||||||8||||0", "C:SELECT 1|", "Z:I"]);
    next.close();
  });
});

describe("drivers and pgbench with prepare_unnamed", () => {
  test("postgres.js with prepare: false, across an ALTER TABLE that changes the result", async () => {
    await pg.psql("CREATE TABLE pu7 (a int); INSERT INTO pu7 VALUES (7)", as);
    const sql = postgres(on.url("app", "apppass", "app"), { max: 2, prepare: false });
    for (let i = 0; i < 5; i++) expect([...(await sql`SELECT * FROM pu7 WHERE a = ${7}`)]).toEqual([{ a: 7 }]);
    await pg.psql("ALTER TABLE pu7 ADD COLUMN k text DEFAULT 'k'", as);
    for (let i = 0; i < 3; i++) expect([...(await sql`SELECT * FROM pu7 WHERE a = ${7}`)]).toEqual([{ a: 7, k: "k" }]);
    await sql.end();
  });

  test("pgbench -M extended, select-only and TPC-B, 8 clients over 2 servers: zero failed transactions", async () => {
    const p = await startPgbun(["--upstream", pg.url("postgres"), "--pool-mode", "transaction", "--pool-size", "2", "--prepare-unnamed"]);
    try {
      const env = { ...process.env, PGPASSWORD: "postgres" };
      const init = Bun.spawnSync(["pgbench", "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(pg.port), "-U", "postgres", "postgres"], { env });
      expect(init.exitCode).toBe(0);
      for (const script of [["-S"], []]) {
        const r = Bun.spawnSync(
          ["pgbench", "-n", ...script, "-M", "extended", "-c", "8", "-j", "2", "-t", "50", "-h", "127.0.0.1", "-p", String(p.port), "-U", "postgres", "postgres"],
          { env, timeout: 60_000 },
        );
        const out = r.stdout.toString() + r.stderr.toString();
        expect(out).toContain("number of transactions actually processed: 400/400");
        expect(out).toContain("number of failed transactions: 0 (0.000%)");
      }
    } finally {
      await p.stop();
    }
  });
});
