import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCli } from "../cli.ts";
import { ConfigError, formatConfigError } from "./errors.ts";
import type { Config } from "./schema.ts";

const UP = ["--upstream", "postgres://app:s3cr%40t@db.example:5433/appdb"];

function run(argv: string[], env: Record<string, string> = {}, cwd = "/"): Config {
  const a = parseCli(argv, env, cwd);
  if (a.kind !== "run") throw new Error("expected run");
  return a.config;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return formatConfigError(e);
    throw e;
  }
  throw new Error("no error");
}

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "pgbun-cfg-"));
  writeFileSync(join(dir, "pgbun.toml"), text);
  return dir;
}

test("defaults follow PgBouncer's", () => {
  const s = run(UP).settings;
  expect(s.pool_mode).toBe("session");
  expect(s.default_pool_size).toBe(20);
  expect(s.max_client_conn).toBe(100);
  expect(s.query_wait_timeout).toBe(120);
  expect(s.server_idle_timeout).toBe(600);
  expect(s.server_lifetime).toBe(3600);
  expect(s.server_reset_query).toBe("DISCARD ALL");
  expect(s.auth_type).toBe("scram-sha-256");
  expect(s.listen).toEqual({ host: "127.0.0.1", port: 6432 });
});

test("--upstream defines the database and its user, URL-decoded", () => {
  const c = run(UP);
  expect(c.databases.get("appdb")).toMatchObject({ host: "db.example", port: 5433, dbname: "appdb", user: "app", password: "s3cr@t" });
  expect(c.users.get("app")?.password).toBe("s3cr@t");
});

test("flags beat the environment, which beats the file", () => {
  const dir = file(`[pgbun]\npool_mode = "statement"\ndefault_pool_size = 7\nmax_client_conn = 50\nlisten = "0.0.0.0:7000"\n`);
  const env = { PGBUN_DEFAULT_POOL_SIZE: "8", PGBUN_MAX_CLIENT_CONN: "60" };
  const s = run([...UP, "--config", "pgbun.toml", "--max-client-conn", "70"], env, dir).settings;
  expect(s.pool_mode).toBe("statement");
  expect(s.default_pool_size).toBe(8);
  expect(s.max_client_conn).toBe(70);
  expect(s.listen).toEqual({ host: "0.0.0.0", port: 7000 });
  expect(run([...UP, "--pool-size", "3"]).settings.default_pool_size).toBe(3);
  expect(run(UP, { PGBUN_POOL_SIZE: "4" }).settings.default_pool_size).toBe(4);
});

test("booleans and lists from flags and environment", () => {
  expect(run([...UP, "--no-log-connections"]).settings.log_connections).toBe(false);
  expect(run([...UP, "--log-connections=false"]).settings.log_connections).toBe(false);
  expect(run(UP, { PGBUN_ADMIN_USERS: "a, b" }).settings.admin_users).toEqual(["a", "b"]);
});

test("databases and users sections", () => {
  const dir = file(`[databases.main]\nhost = "10.0.0.1"\nuser = "u"\npassword = "p"\npool_size = 3\npool_mode = "transaction"\n\n[users.u]\npassword = "md5${"0".repeat(32)}"\n`);
  const c = run(["--config", join(dir, "pgbun.toml")]);
  expect(c.databases.get("main")).toMatchObject({ host: "10.0.0.1", port: 5432, dbname: "main", pool_size: 3, pool_mode: "transaction" });
  expect(c.users.get("u")?.password).toStartWith("md5");
});

test("each bad value is one line naming key, value, source and what is allowed", () => {
  expect(errorOf(() => run([...UP, "--pool-mode", "sometimes"]))).toBe(
    'pgbun: invalid value "sometimes" for pool_mode (flag --pool-mode): expected one of session, transaction, statement',
  );
  expect(errorOf(() => run(UP, { PGBUN_DEFAULT_POOL_SIZE: "0" }))).toContain("default_pool_size (env PGBUN_DEFAULT_POOL_SIZE): expected an integer from 1");
  expect(errorOf(() => run(UP, { PGBUN_QUERY_WAIT_TIMEOUT: "soon" }))).toContain('"soon" for query_wait_timeout');
  expect(errorOf(() => run([...UP, "--listen", "nowhere"]))).toContain("expected host:port");
  const dir = file(`[pgbun]\nmax_client_conn = -1\n`);
  expect(errorOf(() => run([...UP, "--config", "pgbun.toml"], {}, dir))).toContain("for max_client_conn (config key max_client_conn)");
});

test("typos are errors with a suggestion, never silently ignored", () => {
  expect(errorOf(() => run([...UP, "--pool-mod", "session"]))).toContain("did you mean --pool-mode?");
  const dir = file(`[pgbun]\ndefault_pool_sise = 3\n`);
  expect(errorOf(() => run([...UP, "--config", "pgbun.toml"], {}, dir))).toContain("did you mean default_pool_size?");
  const d2 = file(`[databases.x]\nhots = "h"\n`);
  expect(errorOf(() => run(["--config", "pgbun.toml"], {}, d2))).toContain('unknown key "hots" in [databases.x]');
});

test("a missing config file and a config without databases say how to fix it", () => {
  expect(errorOf(() => run(["--config", "nope.toml"], {}, "/tmp"))).toContain("/tmp/nope.toml does not exist");
  expect(errorOf(() => run([]))).toContain("pass --upstream");
});

test("--help lists every setting as a flag and an environment variable; --version prints the version", () => {
  const h = parseCli(["--help"], {}, "/");
  expect(h.kind).toBe("help");
  const text = (h as { text: string }).text;
  for (const k of ["--pool-mode", "PGBUN_POOL_MODE", "--query-wait-timeout", "--idle-transaction-timeout", "--max-prepared-statements"]) {
    expect(text).toContain(k);
  }
  const v = parseCli(["--version"], {}, "/");
  expect((v as { text: string }).text).toMatch(/^pgbun \d+\.\d+\.\d+$/);
});
