// Bugs the fuzzer's differential oracle found, each as the smallest exchange that shows it.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { Target } from "./target.ts";
import { encode, fe } from "./wire.ts";
import { cell, errorOf, type Reply, WireClient } from "./wire-client.ts";

let target: Target;

beforeAll(async () => {
  target = await Target.start({ poolSize: 1, setupSql: "CREATE TABLE copy_target (n int, t text); CREATE TABLE terminated (who text);" });
});

afterAll(async () => {
  await target?.stop();
});

async function login(): Promise<WireClient> {
  const c = await WireClient.connect(target.port);
  expect(await c.login("app", "app", "apppass")).toBe(true);
  return c;
}

/** Rows' first cells and errors' SQLSTATEs, in order. */
const collect = (into: string[]) => (r: Reply) => {
  if (r.tag === "D") into.push(cell(r) ?? "NULL");
  if (r.tag === "E") into.push(`E:${errorOf(r).code}`);
};

// Found by `bun run fuzz` (its foreign-reply check; 24 times in 30,000 inputs, seed 99): a client that sends CopyDone,
// Sync and a Query in one write after COPY FROM STDIN loses the Query's answer to the next client of that server.
// PostgreSQL answers the Sync (COPY is over by then), but pgbun does not count it, so it releases the server early:
// the next client's first rows are the other client's ('A-secret'), and the first client never hears back.
test("a Sync and a Query right behind CopyDone are answered to their own client, never to the next one", async () => {
  const a = await login();
  const b = await login();
  a.send(encode([fe.query("COPY copy_target FROM STDIN")]));
  expect(await a.waitFor((r) => r.tag === "G", 2000)).toBe("matched");
  const aRows: string[] = [];
  const bRows: string[] = [];
  const aDone = a.request(encode([fe.copyData("1\tx\n"), fe.copyDone(), fe.sync(), fe.query("SELECT 'A-secret', pg_sleep(0.2)")]), 3, 5000, collect(aRows));
  await Bun.sleep(5);
  const bDone = b.request(encode([fe.query("SELECT 'B'")]), 1, 5000, collect(bRows));
  expect((await bDone).result).toBe("matched");
  expect(bRows).toEqual(["B"]);
  expect((await aDone).replies).toEqual(["C:COPY 1", "Z:I", "Z:I", "T", "D", "C:SELECT 1", "Z:I"]);
  expect(aRows).toEqual(["A-secret"]);
  a.end();
  b.end();
}, 20_000);

// Found by `bun run fuzz` (differential): PostgreSQL accepts CopyData sent right behind COPY FROM STDIN, before its
// CopyInResponse. Through pgbun that works while a server is free, but when the client has to wait for one (the pool
// busy, or a new server logging in), the CopyData and CopyDone it sent meanwhile never reach PostgreSQL: the next
// Query arrives during COPY, PostgreSQL answers 08P01 "unexpected message type 0x51 during COPY from stdin" and ends
// the session.
test("COPY data pipelined behind COPY FROM STDIN while the client waits for a server reaches PostgreSQL", async () => {
  const holder = await login();
  expect((await holder.request(encode([fe.query("BEGIN")]), 1, 2000)).replies.at(-1)).toBe("Z:T");
  const c = await login();
  const done = c.request(encode([fe.query("COPY copy_target FROM STDIN"), fe.copyData("1\tx\n"), fe.copyDone(), fe.query("SELECT 1")]), 2, 5000);
  await Bun.sleep(200);
  await holder.request(encode([fe.query("COMMIT")]), 1, 2000);
  expect((await done).replies).toEqual(["G", "C:COPY 1", "Z:I", "T", "D", "C:SELECT 1", "Z:I"]);
  holder.end();
  c.end();
}, 20_000);

// Found by `bun run fuzz` (differential): after an error PostgreSQL skips every message up to Sync, a Parse included,
// so a later Bind of that name fails with 26000. Through pgbun, when another client has the same text prepared on the
// server, the skipped Parse counts as done: the Bind succeeds and the client gets rows from a statement it never
// prepared.
test("a Parse that PostgreSQL skipped after an error is not prepared through pgbun either", async () => {
  const other = await login();
  await other.request(encode([fe.parse("theirs", "SELECT 'never prepared'"), fe.sync()]), 1, 2000);
  const c = await login();
  const seen: string[] = [];
  const frames = [fe.parse("", "SELECT 1/0"), fe.bind("", ""), fe.execute(), fe.parse("mine", "SELECT 'never prepared'"), fe.sync()];
  frames.push(fe.bind("", "mine"), fe.execute(), fe.sync());
  await c.request(encode(frames), 2, 5000, collect(seen));
  expect(seen).toEqual(["E:22012", "E:26000"]);
  other.end();
  c.end();
}, 20_000);

// Found by `bun run fuzz` (differential): pgbun refuses SQL PREPARE with 0A000 in transaction mode only when a simple
// Query starts with it. Sent through the extended protocol, or as a later statement of a simple Query, PREPARE runs
// and stays on the pooled server, where another client's EXECUTE (extended protocol) gets the first client's rows.
test("an SQL PREPARE slipped past the 0A000 guard never serves another client", async () => {
  const a = await login();
  await a.request(encode([fe.parse("", "PREPARE theirs AS SELECT 'A-secret'"), fe.bind("", ""), fe.execute(), fe.sync()]), 1, 2000);
  a.end();
  const b = await login();
  const seen: string[] = [];
  await b.request(encode([fe.parse("", "EXECUTE theirs"), fe.bind("", ""), fe.execute(), fe.sync()]), 1, 2000, collect(seen));
  expect(seen).not.toContain("A-secret");
  b.end();
}, 20_000);

// Found by `bun run fuzz` (differential): PostgreSQL answers everything a client sent before Terminate, then closes.
// pgbun closes at once: the answers are lost, and statements sent through the extended protocol never run at all
// (a simple Query ahead of the Terminate does run).
test("statements pipelined ahead of Terminate run and are answered before the close", async () => {
  const c = await login();
  const frames = [fe.query("INSERT INTO terminated VALUES ('simple')"), fe.parse("", "INSERT INTO terminated VALUES ('extended')")];
  frames.push(fe.bind("", ""), fe.execute(), fe.sync(), fe.terminate());
  const { replies } = await c.request(encode(frames), 2, 2000);
  expect(replies).toEqual(["C:INSERT 0 1", "Z:I", "1", "2", "C:INSERT 0 1", "Z:I"]);
  await Bun.sleep(200);
  expect(await target.pg.psql("SELECT string_agg(who, ',' ORDER BY who) FROM terminated", { db: "app" })).toBe("extended,simple");
}, 20_000);
