// Streaming replication for tests: a replica made from a running primary with pg_basebackup -R, promotion with
// pg_ctl promote, and an old primary brought back as a replica of the new one. All on 127.0.0.1.

import { appendFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { atEnd } from "./cleanup.ts";
import { findPgBin, startPostgres, type PgInstance, type StartPostgresOptions } from "./postgres.ts";

const asRoot = process.getuid?.() === 0;

/** A binary from the installation initdb belongs to (pg_basebackup on PATH may be a version-picking wrapper). */
function bin(name: string): string {
  const initdb = findPgBin("initdb");
  if (initdb === null) throw new Error("PostgreSQL's initdb not found: apt-get install -y postgresql");
  return join(dirname(realpathSync(initdb)), name);
}

function asServerUser(cmd: string[]): string[] {
  return asRoot ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
}

function env(): Record<string, string> {
  const out: Record<string, string> = { LC_ALL: "C", LANG: "C" };
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("PG")) out[k] = v;
  return out;
}

async function run(cmd: string[]): Promise<void> {
  const proc = Bun.spawn(cmd, { cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe", env: env() });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (exit ${code}):\n${(out + err).trim()}`);
}

/** Lets replication connections in over TCP without a password (tests only), in whichever pg_hba.conf the server reads. */
export async function allowReplication(pg: PgInstance): Promise<void> {
  const hba = await pg.psql("SHOW hba_file");
  appendFileSync(hba, "\nhost replication all 127.0.0.1/32 trust\n");
  await pg.psql("SELECT pg_reload_conf()");
}

/** pg_basebackup -R from `primary` into `dataDir` (emptied first): standby.signal and primary_conninfo written. */
async function baseBackup(primary: PgInstance, dataDir: string): Promise<void> {
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (asRoot) await run(["chown", "-R", "postgres:", dirname(dataDir)]);
  await run(asServerUser([bin("pg_basebackup"), "-D", dataDir, "-R", "-X", "stream", "--checkpoint=fast", "-h", "127.0.0.1", "-p", String(primary.port), "-U", "postgres"]));
}

/**
 * A streaming replica of `primary`, running on its own free port: pg_basebackup -R, then started as the harness starts any
 * instance. Its data lives in a temp folder removed at the end of the run.
 */
export async function startReplica(primary: PgInstance, opts: Omit<StartPostgresOptions, "dataDir"> = {}): Promise<PgInstance> {
  await allowReplication(primary);
  const home = mkdtempSync(join(tmpdir().length <= 60 ? tmpdir() : "/tmp", "pgbun-replica-"));
  // Registered before the instance's own stop, so it runs after it (atEnd runs in reverse).
  if (!opts.keep) atEnd(() => rmSync(home, { recursive: true, force: true }));
  const dataDir = join(home, "data");
  await baseBackup(primary, dataDir);
  const replica = await startPostgres({ ...opts, dataDir });
  await waitStreaming(primary, replica);
  return replica;
}

/** Until the replica has replayed everything the primary has written so far (at most 15 s). */
export async function waitCaughtUp(primary: PgInstance, replica: PgInstance): Promise<void> {
  const target = await primary.psql("SELECT pg_current_wal_lsn()");
  const deadline = Date.now() + 15_000;
  for (;;) {
    const behind = await replica.psql(`SELECT pg_wal_lsn_diff('${target}', pg_last_wal_replay_lsn()) > 0`);
    if (behind === "f") return;
    if (Date.now() > deadline) throw new Error(`replica on port ${replica.port} has not replayed up to ${target} within 15 s`);
    await Bun.sleep(50);
  }
}

async function waitStreaming(primary: PgInstance, replica: PgInstance): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await primary.psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) === "0") {
    if (Date.now() > deadline) throw new Error(`replica on port ${replica.port} is not streaming from port ${primary.port} after 15 s`);
    await Bun.sleep(50);
  }
  await waitCaughtUp(primary, replica);
}

/** pg_ctl promote: the replica leaves recovery and takes writes. Waits until it does. */
export async function promote(replica: PgInstance): Promise<void> {
  await run(asServerUser([bin("pg_ctl"), "-D", replica.dataDir, "-w", "-t", "60", "promote"]));
  const deadline = Date.now() + 15_000;
  while ((await replica.psql("SELECT pg_is_in_recovery()")) !== "f") {
    if (Date.now() > deadline) throw new Error(`replica on port ${replica.port} still in recovery 15 s after pg_ctl promote`);
    await Bun.sleep(50);
  }
}

/** A stopped old primary comes back as a replica of `primary` on its own port (a fresh pg_basebackup into its folder). */
export async function rejoinAsReplica(old: PgInstance, primary: PgInstance): Promise<void> {
  await old.stop("fast").catch(() => {});
  await allowReplication(primary);
  await baseBackup(primary, old.dataDir);
  await old.start();
  await waitStreaming(primary, old);
}

