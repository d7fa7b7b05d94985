// `npm run dev`: the compose stack without Docker, from local PostgreSQL binaries and pgbun under `bun --watch`.
// Data lives in volumes/pgdata; pgbun serves pgbun_session, pgbun_transaction and pgbun_statement on 127.0.0.1:6432.

import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { findPgBin, startPostgres, type PgInstance } from "../tests/harness/postgres.ts";
import { REPO_ROOT } from "../tests/harness/pgbun.ts";
import { prepareStackDatabase, stackConfigText } from "../tests/harness/stack.ts";
import { devBanner, missingBinaries } from "./dev-banner.ts";

const pgPort = Number(process.env.PGBUN_DEV_PG_PORT ?? 55432);
const listen = process.env.PGBUN_DEV_LISTEN ?? "127.0.0.1:6432";
const statsListen = process.env.PGBUN_DEV_STATS_LISTEN ?? "127.0.0.1:6480";
/** SIGTERM lets pgbun finish open transactions for up to shutdown_timeout (30 s); then it is killed. */
const STOP_WAIT_MS = 35_000;

const volumes = join(REPO_ROOT, "volumes");
const dataDir = join(volumes, "pgdata");
const configFile = join(volumes, "pgbun.dev.toml");
const say = (line: string) => process.stdout.write(`pgbun dev: ${line}\n`);

const missing = ["initdb", "pg_ctl", "postgres", "psql"].filter((name) => findPgBin(name) === null);
if (missing.length > 0) {
  process.stderr.write(missingBinaries(missing));
  process.exit(1);
}

mkdirSync(volumes, { recursive: true });
// The harness copies a fresh cluster into dataDir only when it does not exist; an empty leftover folder would nest it.
if (existsSync(dataDir) && !existsSync(join(dataDir, "PG_VERSION")) && readdirSync(dataDir).length === 0) rmdirSync(dataDir);
if (existsSync(dataDir) && !existsSync(join(dataDir, "PG_VERSION"))) {
  process.stderr.write(`pgbun dev: ${dataDir} exists but holds no PostgreSQL cluster; move it away and run again\n`);
  process.exit(1);
}

let pg: PgInstance;
try {
  pg = await startPostgres({ port: pgPort, dataDir, keep: true });
} catch (err) {
  const asRoot = process.getuid?.() === 0;
  process.stderr.write(
    `pgbun dev: PostgreSQL did not start on 127.0.0.1:${pgPort}: ${(err as Error).message.split("\n").slice(0, 3).join(" ")}\n` +
      `  Port taken? set PGBUN_DEV_PG_PORT. A server left running by an earlier run? stop it with:\n` +
      `    ${asRoot ? "runuser -u postgres -- " : ""}${findPgBin("pg_ctl")} -D ${dataDir} -m fast stop\n`,
  );
  process.exit(1);
}

try {
  const { created } = await prepareStackDatabase(pg);
  say(created ? "created pgbun_user, pgbun_test and applied docker-entrypoint-initdb.d/init.sql" : "pgbun_test is ready (init.sql applied earlier)");
  writeFileSync(configFile, stackConfigText({ listen, statsListen, pgHost: "127.0.0.1", pgPort }));
} catch (err) {
  process.stderr.write(`pgbun dev: ${(err as Error).message}\n`);
  await pg.stop("fast");
  process.exit(1);
}

const pgbun = Bun.spawn([process.execPath, "--watch", "src/main.ts", "--config", relative(REPO_ROOT, configFile)], {
  cwd: REPO_ROOT,
  stdin: "ignore",
  stdout: "inherit",
  stderr: "inherit",
});

process.stdout.write(devBanner({ pgPort, listen, statsListen }));

let stopping = false;
async function stop(signal: "SIGINT" | "SIGTERM"): Promise<never> {
  stopping = true;
  if (pgbun.exitCode === null) pgbun.kill(signal);
  const killer = setTimeout(() => pgbun.kill("SIGKILL"), STOP_WAIT_MS);
  await pgbun.exited;
  clearTimeout(killer);
  await pg.stop("fast");
  say("stopped pgbun and PostgreSQL (data kept in volumes/pgdata)");
  process.exit(0);
}

process.on("SIGINT", () => void (stopping || stop("SIGINT")));
process.on("SIGTERM", () => void (stopping || stop("SIGTERM")));

const code = await pgbun.exited;
if (!stopping) {
  // pgbun exited by itself (a bad config, the port taken): take PostgreSQL down with it.
  await pg.stop("fast");
  say(`pgbun exited with code ${code}; stopped PostgreSQL`);
  process.exit(code || 1);
}
