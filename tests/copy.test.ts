// COPY FROM STDIN and COPY TO STDOUT through every pool mode, with errors before and after CopyDone.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { concat, msg, RawClient } from "./harness/raw-client.ts";

let pg: PgInstance;
const bouncers: Record<string, PgbunProcess> = {};
const modes = ["session", "transaction", "statement"] as const;

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql("CREATE TABLE c (id int PRIMARY KEY, name text)", { user: "app", password: "apppass", db: "app" });
  for (const mode of modes) {
    bouncers[mode] = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", mode, "--pool-size", "1"]);
  }
});

afterAll(async () => {
  for (const b of Object.values(bouncers)) await b.stop();
  await pg.stop();
});

const count = async (where: string) => Number(await pg.psql(`SELECT count(*) FROM c WHERE ${where}`, { user: "app", password: "apppass", db: "app" }));

for (const mode of modes) {
  describe(`${mode} mode`, () => {
    const base = modes.indexOf(mode) * 100_000;

    test("COPY FROM STDIN loads rows and COPY TO STDOUT reads them back", async () => {
      const sql = postgres(bouncers[mode]!.url("app", "apppass", "app"), { max: 1 });
      const rows = Array.from({ length: 5000 }, (_, i) => `${base + i}\tname ${i}\n`).join("");
      const writable = await sql`COPY c (id, name) FROM STDIN`.writable();
      await pipeline(Readable.from([rows]), writable);
      expect(await count(`id >= ${base} AND id < ${base + 5000}`)).toBe(5000);
      const readable = await sql.unsafe(`COPY (SELECT id FROM c WHERE id >= ${base} AND id < ${base + 5000} ORDER BY id) TO STDOUT`).readable();
      let text = "";
      for await (const chunk of readable) text += chunk.toString();
      expect(text.trim().split("\n").length).toBe(5000);
      // the connection is usable afterwards
      expect((await sql`SELECT 1 AS one`)[0]!.one).toBe(1);
      await sql.end();
    });

    test("psql's \\copy that fails on bad data rolls back, reports the error, and frees the server", async () => {
      const b = bouncers[mode]!;
      const proc = Bun.spawn(["psql", "-X", "-h", "127.0.0.1", "-p", String(b.port), "-U", "app", "-d", "app", "-c", "\\copy c (id, name) from stdin"], {
        stdin: new TextEncoder().encode(`${base + 90000}\tok\nnot-a-number\tbad\n`),
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, PGPASSWORD: "apppass" },
      });
      const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(1);
      expect(err).toContain("invalid input syntax for type integer");
      expect(await count(`id = ${base + 90000}`)).toBe(0);
      const other = postgres(b.url("app", "apppass", "app"), { max: 1 });
      expect((await other`SELECT 1 AS one`)[0]!.one).toBe(1);
      await other.end();
    });

    test("CopyFail from the client aborts the COPY and the connection goes on", async () => {
      const c = await RawClient.connect(bouncers[mode]!.port);
      await c.login("app", "app", "apppass");
      c.send(msg.query("COPY c (id, name) FROM STDIN"));
      expect((await c.next()).tag).toBe("G");
      c.send(concat(msg.copyData(`${base + 91000}\tx\n`), msg.copyFail("client changed its mind")));
      expect(await c.untilReady()).toEqual(["E:57014", "Z:I"]);
      c.send(msg.query("SELECT 1"));
      expect(await c.untilReady()).toEqual(["T", "D", "C", "Z:I"]);
      c.close();
      expect(await count(`id = ${base + 91000}`)).toBe(0);
    });

    test("an error after CopyDone (duplicate key) is reported and the server is reusable", async () => {
      const c = await RawClient.connect(bouncers[mode]!.port);
      await c.login("app", "app", "apppass");
      c.send(msg.query("COPY c (id, name) FROM STDIN"));
      expect((await c.next()).tag).toBe("G");
      c.send(concat(msg.copyData(`${base + 92000}\ta\n${base + 92000}\tb\n`), msg.copyDone()));
      expect(await c.untilReady()).toEqual(["E:23505", "Z:I"]);
      c.close();
      const other = await RawClient.connect(bouncers[mode]!.port);
      await other.login("app", "app", "apppass");
      other.send(msg.query("SELECT 1"));
      expect(await other.untilReady()).toEqual(["T", "D", "C", "Z:I"]);
      other.close();
    });
  });
}

test("extended-protocol COPY with a Sync sent before the data: the ignored Sync does not strand the server", async () => {
  const b = bouncers.transaction!;
  const c = await RawClient.connect(b.port);
  await c.login("app", "app", "apppass");
  // PostgreSQL ignores the first Sync (it arrives during COPY IN); only the one after CopyDone is answered.
  c.send(concat(msg.parse("", "COPY c (id, name) FROM STDIN"), msg.bind("", ""), msg.execute(), msg.sync()));
  expect((await c.next()).tag).toBe("1");
  expect((await c.next()).tag).toBe("2");
  expect((await c.next()).tag).toBe("G");
  c.send(concat(msg.copyData("777777\tp\n"), msg.copyDone(), msg.sync()));
  expect(await c.untilReady()).toEqual(["C", "Z:I"]);
  // the pool's only server must be free for someone else now
  const other = await RawClient.connect(b.port);
  await other.login("app", "app", "apppass");
  other.send(msg.query("SELECT count(*) FROM c WHERE id = 777777"));
  expect(await other.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  c.close();
  other.close();
});

test("late CopyData and CopyDone after a failed COPY do not strand a server", async () => {
  const b = bouncers.transaction!;
  const c = await RawClient.connect(b.port);
  await c.login("app", "app", "apppass");
  c.send(msg.query("COPY c (id, name) FROM STDIN"));
  expect((await c.next()).tag).toBe("G");
  c.send(msg.copyData("oops\tbad\n"));
  await Bun.sleep(100);
  // PostgreSQL already failed the COPY; these arrive late and must be dropped, not start anything
  c.send(concat(msg.copyData("1\tlate\n"), msg.copyDone()));
  expect(await c.untilReady()).toEqual(["E:22P02", "Z:I"]);
  const other = await RawClient.connect(b.port);
  await other.login("app", "app", "apppass");
  other.send(msg.query("SELECT 1"));
  expect(await other.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  c.send(msg.query("SELECT 2"));
  expect(await c.untilReady(1, 3000)).toEqual(["T", "D", "C", "Z:I"]);
  c.close();
  other.close();
});
