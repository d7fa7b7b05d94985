// The single executable that `bun build --compile` makes, as Dockerfile.bun builds it.
// Flags, a relative --config from a folder outside the repo, real queries through it, and the image's healthcheck.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { atEnd } from "./harness/cleanup.ts";
import { REPO_ROOT, startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { startPostgres, type PgInstance } from "./harness/postgres.ts";
import { prepareStackDatabase, STACK_DATABASES, stackConfigText } from "./harness/stack.ts";
import { VERSION } from "../src/version.ts";

let dir: string;
let binary: string;
let pg: PgInstance;
let bouncer: PgbunProcess | null = null;

function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = Bun.spawnSync(cmd, { cwd: opts.cwd ?? dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env }, timeout: 20_000 });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pgbun-binary-"));
  atEnd(() => rmSync(dir, { recursive: true, force: true }));
  binary = join(dir, "pgbun");
  const built = run([process.execPath, "build", "--compile", "src/main.ts", "--outfile", binary], { cwd: REPO_ROOT });
  if (built.code !== 0) throw new Error(`bun build --compile failed:\n${built.out}\n${built.err}`);
  pg = await startPostgres();
  await prepareStackDatabase(pg);
});

afterAll(async () => {
  await bouncer?.stop();
  await pg?.stop();
});

test("--version and --help answer like `bun src/main.ts` does", () => {
  const version = run([binary, "--version"]);
  expect(version.code).toBe(0);
  expect(version.out.trim()).toBe(`pgbun ${VERSION}`);
  const help = run([binary, "--help"]);
  expect(help.code).toBe(0);
  expect(help.out).toContain("--config PATH");
  expect(help.out).toBe(run([process.execPath, "src/main.ts", "--help"], { cwd: REPO_ROOT }).out);
});

test("a bad relative --config is resolved against the working directory and stops it with exit code 2", () => {
  const r = run([binary, "--config", "config/missing.toml"]);
  expect(r.code).toBe(2);
  expect(r.err).toContain(join(dir, "config", "missing.toml"));
});

test("from a folder outside the repo, with a relative --config, it pools all three databases of the stack config", async () => {
  mkdirSync(join(dir, "config"), { recursive: true });
  writeFileSync(join(dir, "config", "pgbun.toml"), stackConfigText({ listen: "127.0.0.1:0", statsListen: "127.0.0.1:0", pgHost: "127.0.0.1", pgPort: pg.port }));
  bouncer = await startPgbun(["--config", "config/pgbun.toml"], { cmd: [binary], cwd: dir });
  const b = bouncer;
  for (const db of STACK_DATABASES) {
    const sql = postgres(b.url("pgbun_user", "pgbun_pass", db), { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`SELECT current_database() AS db, count(*)::int AS n FROM accounts`;
      expect(row).toEqual({ db: "pgbun_test", n: 10000 });
      const begin = await sql`BEGIN`.then(() => null, (e: Error) => e.message);
      if (db === "pgbun_statement") expect(begin).toContain("transaction blocks not allowed in statement pooling mode");
      else {
        expect(begin).toBeNull();
        await sql`ROLLBACK`;
      }
    } finally {
      await sql.end({ timeout: 2 });
    }
  }
  // Twenty clients over a pool of five in transaction mode: they share servers.
  const clients = Array.from({ length: 20 }, () => postgres(b.url("pgbun_user", "pgbun_pass", "pgbun_transaction"), { max: 1, onnotice: () => {} }));
  const pids = await Promise.all(clients.map(async (sql) => (await sql`SELECT pg_backend_pid() AS pid`)[0]!.pid as number));
  await Promise.all(clients.map((sql) => sql.end({ timeout: 2 })));
  expect(new Set(pids).size).toBeLessThanOrEqual(5);
});

test("the compose healthcheck command, run by the binary as bun (BUN_BE_BUN=1), passes against its own /healthz", async () => {
  const b = bouncer!;
  const m = /pgbun stats on http:\/\/[\d.]+:(\d+)/.exec(b.output());
  expect(m).not.toBeNull();
  const compose = Bun.YAML.parse(await Bun.file(join(REPO_ROOT, "docker-compose.yml")).text()) as { services: Record<string, { healthcheck: { test: string[] } }> };
  const check = compose.services.pgbun!.healthcheck.test;
  expect(check.slice(0, 4)).toEqual(["CMD", "env", "BUN_BE_BUN=1", "pgbun"]);
  // The image's /usr/local/bin/pgbun is this binary; the stats port is 6480 there and a free one here.
  const cmd = check.slice(1).map((part) => (part === "pgbun" ? binary : part.replace(":6480/", `:${m![1]}/`)));
  expect(run(cmd).code).toBe(0);
  const down = check.slice(1).map((part) => (part === "pgbun" ? binary : part.replace(":6480/", ":9/")));
  expect(run(down).code).toBe(1);
});
