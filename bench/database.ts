// The throwaway PostgreSQL every benchmark measures against: started as the tests start theirs, filled by pgbench -i.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { startPostgres, type PgInstance } from "../tests/harness/postgres.ts";
import { clientEnv } from "./pgbench.ts";
import type { BenchAuth } from "./plan.ts";

export const USER = "postgres";
export const PASSWORD = "postgres";
export const DB = "postgres";

/** How pgbench logs in, to every target alike. */
export const LOGIN = { user: USER, password: PASSWORD, db: DB };

/** What pgbench does itself without -n, done directly so every target starts its TPC-B run from the same state. */
export async function resetTpcb(pg: PgInstance): Promise<void> {
  await pg.psql("VACUUM pgbench_branches, pgbench_tellers");
  await pg.psql("TRUNCATE pgbench_history");
}

export interface BenchDatabase {
  pg: PgInstance;
  /** The role's secret as pg_authid stores it (md5 hash or SCRAM verifier), for PgBouncer's auth_file. */
  secret: string;
  /** The folder of PostgreSQL's Unix socket .s.PGSQL.<port> (unix_socket_directories), for the poolers' host. */
  socketDir: string;
}

export async function startBenchDatabase(o: { maxConnections: number; scale: number; auth: BenchAuth }): Promise<BenchDatabase> {
  const pg = await startPostgres({ maxConnections: o.maxConnections });
  const init = Bun.spawnSync(["pgbench", "-i", "-q", "-s", String(o.scale), "-h", "127.0.0.1", "-p", String(pg.port), "-U", USER, DB], {
    env: clientEnv(PASSWORD),
    stdout: "pipe",
    stderr: "pipe",
  });
  if (init.exitCode !== 0) throw new Error(`pgbench -i failed:\n${init.stderr.toString()}`);
  if (o.auth === "md5") await useMd5(pg, USER);
  await socketLogins(pg, USER, o.auth);
  const secret = await pg.psql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${USER}'`);
  return { pg, secret, socketDir: socketDirOf(pg) };
}

/**
 * The harness starts PostgreSQL with -k on the temporary folder that also holds its log, so it listens on a Unix socket
 * there besides 127.0.0.1 (its template setup logs in that way).
 */
function socketDirOf(pg: PgInstance): string {
  const dir = dirname(pg.logFile);
  if (!existsSync(join(dir, `.s.PGSQL.${pg.port}`))) throw new Error(`PostgreSQL has no Unix socket .s.PGSQL.${pg.port} in ${dir}`);
  return dir;
}

/**
 * The harness trusts every login over the socket; the poolers log in over it with the same method as over TCP, so the
 * two differ only in the transport.
 */
async function socketLogins(pg: PgInstance, role: string, auth: BenchAuth): Promise<void> {
  const hba = join(pg.dataDir, "pg_hba.conf");
  writeFileSync(hba, `local all ${role} ${auth}\n${readFileSync(hba, "utf8")}`);
  await pg.psql("SELECT pg_reload_conf()");
}

/** The harness's cluster wants SCRAM from everyone but md5user; an md5-stored password and a first hba line change that for one role. */
async function useMd5(pg: PgInstance, role: string): Promise<void> {
  const hba = join(pg.dataDir, "pg_hba.conf");
  writeFileSync(hba, `host all ${role} 127.0.0.1/32 md5\n${readFileSync(hba, "utf8")}`);
  // Reload first: an "md5" hba line still accepts the SCRAM-stored password this psql logs in with.
  await pg.psql("SELECT pg_reload_conf()");
  await pg.psql(`SET password_encryption = 'md5'; ALTER ROLE ${role} PASSWORD '${PASSWORD}'`);
}
