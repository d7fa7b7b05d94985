// The compose stack's database and config on a local PostgreSQL, shared by scripts/dev.ts and the tests.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { PgInstance } from "./postgres.ts";
import { REPO_ROOT } from "./pgbun.ts";

export const STACK_USER = "pgbun_user";
export const STACK_PASSWORD = "pgbun_pass";
export const STACK_DB = "pgbun_test";
export const STACK_DATABASES = ["pgbun_session", "pgbun_transaction", "pgbun_statement"] as const;

/** Creates the role and database if missing and applies init.sql once (when its tables are not there yet). */
export async function prepareStackDatabase(pg: PgInstance): Promise<{ created: boolean }> {
  const role = await pg.psql(`SELECT 1 FROM pg_roles WHERE rolname = '${STACK_USER}'`);
  if (role === "") await pg.psql(`CREATE ROLE ${STACK_USER} LOGIN PASSWORD '${STACK_PASSWORD}'`);
  const db = await pg.psql(`SELECT 1 FROM pg_database WHERE datname = '${STACK_DB}'`);
  if (db === "") await pg.psql(`CREATE DATABASE ${STACK_DB} OWNER ${STACK_USER}`);
  const as = { user: STACK_USER, password: STACK_PASSWORD, db: STACK_DB };
  const applied = (await pg.psql("SELECT to_regclass('public.accounts') IS NOT NULL AND to_regclass('public.boundary_log') IS NOT NULL", as)) === "t";
  if (!applied) await pg.psql(readFileSync(join(REPO_ROOT, "docker-entrypoint-initdb.d", "init.sql"), "utf8"), as);
  return { created: !applied };
}

export interface StackConfigOptions {
  listen: string;
  statsListen: string;
  pgHost: string;
  pgPort: number;
  /** Other [pgbun] keys to replace, as TOML values (e.g. { client_idle_timeout: "2" }). */
  settings?: Record<string, string>;
}

/**
 * config/pgbun.toml with listen, stats_listen and every database's host and port replaced. The result is parsed
 * back and checked, so an edit of config/pgbun.toml that the rewrite no longer matches fails loudly here.
 */
export function stackConfigText(opts: StackConfigOptions, source = readFileSync(join(REPO_ROOT, "config", "pgbun.toml"), "utf8")): string {
  const settings: Record<string, string> = { listen: JSON.stringify(opts.listen), stats_listen: JSON.stringify(opts.statsListen), ...opts.settings };
  let text = source.replace(/^host = .*$/gm, `host = ${JSON.stringify(opts.pgHost)}`).replace(/^port = .*$/gm, `port = ${opts.pgPort}`);
  for (const [key, value] of Object.entries(settings)) {
    const line = new RegExp(`^${key} = .*$`, "m");
    if (!line.test(text)) throw new Error(`config/pgbun.toml has no "${key} = ..." line to replace`);
    text = text.replace(line, `${key} = ${value}`);
  }
  const parsed = Bun.TOML.parse(text) as { pgbun: Record<string, unknown>; databases: Record<string, { host: string; port: number }> };
  for (const [name, d] of Object.entries(parsed.databases)) {
    if (d.host !== opts.pgHost || d.port !== opts.pgPort) throw new Error(`rewriting config/pgbun.toml missed database ${name}'s host or port`);
  }
  if (parsed.pgbun.listen !== opts.listen || parsed.pgbun.stats_listen !== opts.statsListen) throw new Error("rewriting config/pgbun.toml missed listen or stats_listen");
  return text;
}
