// The test harness's pgbun launcher: the listening line, --listen, output collection, start failures, stop.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { startPgbun } from "./pgbun.ts";
import { startPostgres, type PgInstance } from "./postgres.ts";

/** A stand-in for pgbun: sh runs the script with pgbun's arguments as $@; exec keeps one process to signal. */
const fake = (script: string) => ["sh", "-c", script, "fake-pgbun"];

describe("startPgbun with a stand-in process", () => {
  test("reads host and port from the listening line and adds --listen 127.0.0.1:0", async () => {
    const p = await startPgbun(["--pool-mode", "session"], { cmd: fake('echo "args: $*"; echo "pgbun listening on 127.0.0.1:4321"; exec sleep 30') });
    expect(p.host).toBe("127.0.0.1");
    expect(p.port).toBe(4321);
    expect(p.url("u", "p w", "db")).toBe("postgres://u:p%20w@127.0.0.1:4321/db");
    expect(p.output()).toContain("args: --listen 127.0.0.1:0 --pool-mode session\n");
    expect(await p.stop()).toBe(130);
  });

  test("keeps a --listen the caller gave and goes on collecting output", async () => {
    const script = 'echo "args: $*"; echo "pgbun listening on [::1]:5555"; sleep 0.1; echo "later on stderr" >&2; exec sleep 30';
    const p = await startPgbun(["--listen=[::1]:0"], { cmd: fake(script) });
    expect(p.host).toBe("::1");
    expect(p.url("u", "p", "d")).toBe("postgres://u:p@[::1]:5555/d");
    await Bun.sleep(400);
    expect(p.output()).toContain("args: --listen=[::1]:0\n");
    expect(p.output()).toContain("later on stderr");
    expect(await p.stop("SIGTERM")).toBe(143);
  });

  test("throws with everything printed when the process exits before listening", async () => {
    const start = startPgbun([], { cmd: fake('echo "bad config: no_such_key" >&2; exit 2') });
    await expect(start).rejects.toThrow(/exited \(2\) before listening[\s\S]*bad config: no_such_key/);
  });

  test("waits for the whole line: a chunk may end inside the port number", async () => {
    const p = await startPgbun([], { cmd: fake("printf 'pgbun listening on 127.0.0.1:43'; sleep 0.3; printf '21\\n'; exec sleep 30") });
    expect(p.port).toBe(4321);
    await p.stop();
  });

  test("throws after timeoutMs when no listening line comes, and kills the process", async () => {
    const started = Date.now();
    const silent = startPgbun([], { cmd: fake('echo "still thinking"; exec sleep 30'), timeoutMs: 300 });
    await expect(silent).rejects.toThrow(/no "pgbun listening on" line within 300 ms[\s\S]*still thinking/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test("stop returns the exit code of a process that has already ended", async () => {
    const p = await startPgbun([], { cmd: fake('echo "pgbun listening on 127.0.0.1:1"; exit 0') });
    await p.proc.exited;
    expect(await p.stop()).toBe(0);
  });
});

describe("startPgbun with the real pgbun", () => {
  let pg: PgInstance;
  beforeAll(async () => {
    pg = await startPostgres({ maxConnections: 20 });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  test("a client queries PostgreSQL through it", async () => {
    const p = await startPgbun(["--upstream", pg.url("app", "apppass", "app"), "--pool-mode", "transaction", "--pool-size", "1"]);
    try {
      expect(p.host).toBe("127.0.0.1");
      const sql = postgres(p.url("app", "apppass", "app"), { max: 1, onnotice: () => {} });
      const [row] = await sql<Array<{ db: string }>>`SELECT current_database() AS db`;
      expect(row!.db).toBe("app");
      await sql.end({ timeout: 5 });
    } finally {
      await p.stop();
    }
  });
});
