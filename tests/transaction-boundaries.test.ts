// A server stays linked exactly as long as the protocol says a transaction or request is open, never shorter or longer.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
let bouncer: PgbunProcess;

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE t (id int)", { user: "app", password: "apppass", db: "app" });
  // One server only: whoever holds it blocks everyone else, which makes holding observable.
  bouncer = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1"]);
});

afterAll(async () => {
  await bouncer.stop();
  await pg.stop();
});

async function client(): Promise<RawClient> {
  const c = await RawClient.connect(bouncer.port);
  const login = await c.login("app", "app", "apppass");
  expect(login.at(-1)?.tag).toBe("Z");
  return c;
}

/** Sends a query on a second client; resolves true if it was answered within `ms` (the server was free). */
async function otherGetsServerWithin(other: RawClient, ms: number): Promise<boolean> {
  other.send(msg.query("SELECT 1"));
  try {
    await other.untilReady(1, ms);
    return true;
  } catch {
    return false;
  }
}

async function expectHeldThenFreed(a: RawClient, b: RawClient, finish: Uint8Array, finishReplies: string[]): Promise<void> {
  const pending = otherGetsServerWithin(b, 300);
  expect(await pending).toBe(false);
  a.send(finish);
  expect(await a.untilReady(1)).toEqual(finishReplies);
  // b's query was queued: it is answered as soon as a lets go
  expect(await b.untilReady(1)).toEqual(["T", "D", "C", "Z:I"]);
}

describe("transaction mode keeps the server linked", () => {
  test("through an explicit BEGIN ... COMMIT", async () => {
    const [a, b] = [await client(), await client()];
    a.send(msg.query("BEGIN"));
    expect(await a.untilReady()).toEqual(["C", "Z:T"]);
    await expectHeldThenFreed(a, b, msg.query("COMMIT"), ["C", "Z:I"]);
    a.close();
    b.close();
  });

  test("through a failed transaction until ROLLBACK", async () => {
    const [a, b] = [await client(), await client()];
    a.send(msg.query("BEGIN; SELECT 1/0"));
    expect(await a.untilReady()).toEqual(["C", "E:22012", "Z:E"]);
    await expectHeldThenFreed(a, b, msg.query("ROLLBACK"), ["C", "Z:I"]);
    a.close();
    b.close();
  });

  test("through Parse/Bind/Execute with Flush and no Sync, until the Sync", async () => {
    const [a, b] = [await client(), await client()];
    a.send(concat(msg.parse("", "SELECT 1"), msg.bind("", ""), msg.execute(), msg.flush()));
    for (const want of ["1", "2", "D", "C"]) expect((await a.next()).tag).toBe(want);
    await expectHeldThenFreed(a, b, msg.sync(), ["Z:I"]);
    a.close();
    b.close();
  });

  test("through an extended-protocol error with Flush, until the Sync", async () => {
    const [a, b] = [await client(), await client()];
    a.send(concat(msg.parse("", "SELEC 1"), msg.bind("", ""), msg.execute(), msg.flush()));
    expect((await a.next()).tag).toBe("E");
    await expectHeldThenFreed(a, b, msg.sync(), ["Z:I"]);
    a.close();
    b.close();
  });

  test("through a simple Query sent after Bind/Execute without Sync", async () => {
    const a = await client();
    a.send(concat(msg.parse("", "SELECT 1"), msg.bind("", ""), msg.execute(), msg.query("SELECT 2")));
    expect(await a.untilReady()).toEqual(["1", "2", "D", "C", "T", "D", "C", "Z:I"]);
    const b = await client();
    expect(await otherGetsServerWithin(b, 2000)).toBe(true);
    a.close();
    b.close();
  });

  test("across several Syncs in flight, answering each in order", async () => {
    const [a, b] = [await client(), await client()];
    const one = (n: number) => concat(msg.parse("", `SELECT ${n}`), msg.bind("", ""), msg.execute(), msg.sync());
    a.send(concat(one(1), one(2), one(3)));
    b.send(concat(one(4), one(5)));
    expect(await a.untilReady(3)).toEqual(["1", "2", "D", "C", "Z:I", "1", "2", "D", "C", "Z:I", "1", "2", "D", "C", "Z:I"]);
    expect(await b.untilReady(2)).toEqual(["1", "2", "D", "C", "Z:I", "1", "2", "D", "C", "Z:I"]);
    a.close();
    b.close();
  });

  test("an error inside a pipeline skips to its Sync, and the next pipeline runs", async () => {
    const a = await client();
    a.send(
      concat(
        msg.parse("", "SELECT 1/0"),
        msg.bind("", ""),
        msg.execute(),
        msg.parse("", "SELECT 7"),
        msg.sync(),
        msg.parse("", "SELECT 8"),
        msg.bind("", ""),
        msg.execute(),
        msg.sync(),
      ),
    );
    // 1/0 fails at Bind (constant folding); Execute and the second Parse are skipped up to the Sync.
    expect(await a.untilReady(2)).toEqual(["1", "E:22012", "Z:I", "1", "2", "D", "C", "Z:I"]);
    a.close();
  });

  test("extended protocol inside BEGIN does not stall and stays on one server", async () => {
    const [a, b] = [await client(), await client()];
    a.send(msg.query("BEGIN"));
    await a.untilReady();
    a.send(concat(msg.parse("", "SELECT pg_backend_pid()"), msg.bind("", ""), msg.execute(), msg.sync()));
    expect(await a.untilReady()).toEqual(["1", "2", "D", "C", "Z:T"]);
    await expectHeldThenFreed(a, b, msg.query("COMMIT"), ["C", "Z:I"]);
    a.close();
    b.close();
  });

  test("a multi-statement Query is one implicit transaction: an error undoes its earlier statements", async () => {
    const a = await client();
    a.send(msg.query("INSERT INTO t VALUES (42); SELECT 1/0"));
    expect(await a.untilReady()).toEqual(["C", "E:22012", "Z:I"]);
    a.send(msg.query("SELECT count(*) FROM t WHERE id = 42"));
    const r = await a.untilReady();
    expect(r).toEqual(["T", "D", "C", "Z:I"]);
    a.close();
    expect(await pg.psql("SELECT count(*) FROM t WHERE id = 42", { user: "app", password: "apppass", db: "app" })).toBe("0");
  });
});

describe("a client that leaves mid-transaction", () => {
  test("never hands its open transaction to the next client", async () => {
    const a = await client();
    a.send(msg.query("BEGIN; INSERT INTO t VALUES (99)"));
    expect(await a.untilReady()).toEqual(["C", "C", "Z:T"]);
    a.close();
    const b = await client();
    b.send(msg.query("SELECT count(*), pg_current_xact_id_if_assigned() IS NULL FROM t WHERE id = 99"));
    const tags = await b.untilReady();
    expect(tags).toEqual(["T", "D", "C", "Z:I"]);
    b.close();
    expect(await pg.psql("SELECT count(*) FROM t WHERE id = 99", { user: "app", password: "apppass", db: "app" })).toBe("0");
    expect(await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'")).toBe("0");
  });

  test("in the middle of a query: the server is closed, the next client still gets one", async () => {
    const a = await client();
    a.send(msg.query("BEGIN; INSERT INTO t VALUES (98); SELECT pg_sleep(0.3)"));
    await Bun.sleep(50);
    a.close();
    const b = await client();
    b.send(msg.query("SELECT count(*) FROM t WHERE id = 98"));
    expect(await b.untilReady(1, 5000)).toEqual(["T", "D", "C", "Z:I"]);
    b.close();
    expect(await pg.psql("SELECT count(*) FROM t WHERE id = 98", { user: "app", password: "apppass", db: "app" })).toBe("0");
  });
});
