// The high-availability part of `bun run bench` (also `bun bench/ha.ts` alone): pg_gateway's comparison. The latency pgbun
// adds at one client over a direct connection, through a database with two hosts; and the failover recovery time: with
// pgbench writing through pgbun, the primary is stopped and the replica promoted, and the time from the stop to the first
// write committed on the new primary is read off the rows themselves.

import { writeConfig } from "../tests/harness/config-file.ts";
import { startPgbun } from "../tests/harness/pgbun.ts";
import { startPostgres, type PgInstance } from "../tests/harness/postgres.ts";
import { promote, rejoinAsReplica, startReplica } from "../tests/harness/replica.ts";

export interface HaLatency {
  mode: "simple" | "extended";
  directUs: number;
  /** Through pgbun to a database with one host (the primary). */
  oneHostUs: number;
  /** Through pgbun to a database with two hosts (the primary and its replica). */
  pgbunUs: number;
}

export interface HaFailover {
  stop: "fast" | "immediate";
  /** From the stop command to the first write committed on the new primary. */
  recoveryMs: number;
  transactions: number;
  /** pgbench clients that lost their connection: their transaction was in flight. */
  aborted: number;
}

export interface HaResults {
  latency: HaLatency[];
  failovers: HaFailover[];
  settings: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function pgbench(port: number, script: string, args: string[], db = "postgres"): Promise<{ out: string; code: number }> {
  const file = writeConfig(script);
  const proc = Bun.spawn(["pgbench", "-n", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-f", file, ...args, db], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGPASSWORD: "postgres" },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { out: out + err, code };
}

function latencyMs(out: string): number {
  const m = /latency average = ([\d.]+) ms/.exec(out);
  if (m === null) throw new Error(`pgbench printed no latency:\n${out}`);
  return Number(m[1]);
}

export async function runHaBench(o: { rounds: number; seconds: number; failovers: number; say?: (s: string) => void }): Promise<HaResults> {
  const say = o.say ?? (() => {});
  let primary: PgInstance = await startPostgres();
  let replica: PgInstance = await startReplica(primary);
  await primary.psql("CREATE TABLE ledger (id bigserial PRIMARY KEY, port int, at timestamptz DEFAULT clock_timestamp())");
  const settings =
    "transaction pooling, pool size 4, role_check_interval 1 s (the default), two hosts: a primary and a streaming replica; 8 pgbench clients write during failovers";
  const cfg = writeConfig(`[pgbun]
pool_mode = "transaction"
default_pool_size = 4
log_level = "warn"
[databases.postgres]
host = "127.0.0.1:${primary.port},127.0.0.1:${replica.port}"
user = "postgres"
password = "postgres"
[databases.one_host]
host = "127.0.0.1:${primary.port}"
dbname = "postgres"
user = "postgres"
password = "postgres"
[users.postgres]
password = "postgres"
`);
  const bouncer = await startPgbun(["--config", cfg]);
  try {
    const latency: HaLatency[] = [];
    for (const mode of ["simple", "extended"] as const) {
      const direct: number[] = [];
      const oneHost: number[] = [];
      const through: number[] = [];
      for (let r = 0; r < o.rounds; r++) {
        // Interleaved, so all three see the same machine.
        for (const [port, db, into] of [[primary.port, "postgres", direct], [bouncer.port, "one_host", oneHost], [bouncer.port, "postgres", through]] as const) {
          into.push(latencyMs((await pgbench(port, "SELECT 1;\n", ["-c", "1", "-T", String(o.seconds), "-M", mode], db)).out));
        }
      }
      const l: HaLatency = { mode, directUs: median(direct) * 1000, oneHostUs: median(oneHost) * 1000, pgbunUs: median(through) * 1000 };
      latency.push(l);
      say(`  ${mode}: direct ${l.directUs.toFixed(0)} µs, pgbun one host ${l.oneHostUs.toFixed(0)} µs, pgbun two hosts ${l.pgbunUs.toFixed(0)} µs per query`);
    }

    const failovers: HaFailover[] = [];
    for (let i = 0; i < o.failovers; i++) {
      const stop = i % 2 === 0 ? "fast" : "immediate";
      const run = pgbench(bouncer.port, "INSERT INTO ledger (port) VALUES (inet_server_port());\n", ["-c", "8", "-j", "2", "-T", "6", "-M", "simple"]);
      await Bun.sleep(2000);
      const stoppedAt = Date.now();
      await primary.stop(stop);
      await promote(replica);
      const { out } = await run;
      const first = Number(await replica.psql("SELECT extract(epoch FROM min(at)) * 1000 FROM ledger WHERE port = inet_server_port()"));
      const f: HaFailover = {
        stop,
        recoveryMs: Math.round(first - stoppedAt),
        transactions: Number(/actually processed: (\d+)/.exec(out)?.[1] ?? 0),
        aborted: (out.match(/client \d+ (script \d+ )?aborted/g) ?? []).length,
      };
      failovers.push(f);
      say(`  failover ${i + 1} (pg_ctl stop -m ${stop}): first write on the new primary ${f.recoveryMs} ms after the stop; ${f.aborted} pgbench clients lost their transaction in flight`);
      // The old primary comes back as a replica of the new one, for the next round.
      await rejoinAsReplica(primary, replica);
      await replica.psql("TRUNCATE ledger");
      [primary, replica] = [replica, primary];
      await Bun.sleep(1500);
    }
    return { latency, failovers, settings };
  } finally {
    await bouncer.stop();
    await Promise.all([primary.stop("immediate"), replica.stop("immediate")]).catch(() => {});
  }
}

export function haLines(r: HaResults): string[] {
  const us = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)} µs`;
  return [
    `setup: ${r.settings}`,
    ...r.latency.map(
      (l) =>
        `SELECT 1, ${l.mode}, 1 client: direct ${l.directUs.toFixed(0)} µs per query; through pgbun ${us(l.pgbunUs - l.directUs)} with two hosts, ${us(l.oneHostUs - l.directUs)} with one (pg_gateway claims 30-70 µs)`,
    ),
    ...r.failovers.map((f) => `failover (pg_ctl stop -m ${f.stop}, then pg_ctl promote): first write on the new primary ${f.recoveryMs} ms after the stop; ${f.aborted} of 8 pgbench clients lost the transaction in flight (at most 4 servers); ${f.transactions} transactions`),
  ];
}

if (import.meta.main) {
  const quick = Bun.argv.includes("--quick");
  console.log("high availability: latency at one client and failover recovery ...");
  const r = await runHaBench({ rounds: quick ? 1 : 3, seconds: quick ? 2 : 5, failovers: quick ? 1 : 2, say: console.log });
  console.log(["", ...haLines(r)].join("\n"));
  console.log(JSON.stringify(r));
  process.exit(0);
}
