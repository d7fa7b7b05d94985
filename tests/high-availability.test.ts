// Several hosts per database, against real streaming replication (pg_basebackup -R, pg_ctl promote): roles learned with
// pg_is_in_recovery(), reads on replicas, writes on the primary, and a failover under pgbench load.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { adminQuery, writeConfig } from "./harness/config-file.ts";
import { startPgbun, type PgbunProcess } from "./harness/pgbun.ts";
import { freePort, startPostgres, type PgInstance } from "./harness/postgres.ts";
import { promote, rejoinAsReplica, startReplica, waitCaughtUp } from "./harness/replica.ts";

const host = (pg: PgInstance) => `127.0.0.1:${pg.port}`;

function config(hosts: string, extra = "", databases = ""): string {
  return `[pgbun]
pool_mode = "transaction"
default_pool_size = 4
admin_users = "admin"
role_check_interval = 0.25
${extra}

[databases.app]
host = "${hosts}"
dbname = "app"
user = "app"
password = "apppass"
${databases}

[users.app]
password = "apppass"
[users.admin]
password = "adminpass"
`;
}

/** Where a query ran: the port of the server and whether it was in recovery, asked inside the query itself. */
async function where(sql: postgres.Sql): Promise<{ port: number; standby: boolean }> {
  const [r] = await sql`SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby`;
  return { port: r!.port as number, standby: r!.standby as boolean };
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

describe("a primary and a streaming replica", () => {
  let primary: PgInstance;
  let replica: PgInstance;
  let bouncer: PgbunProcess;
  let statsPort: number;

  beforeAll(async () => {
    primary = await startPostgres();
    replica = await startReplica(primary);
    statsPort = await freePort();
    const cfg = config(`${host(primary)},${host(replica)}`, `stats_listen = "127.0.0.1:${statsPort}"`, `
[databases.reports]
host = ["${host(primary)}", "${host(replica)}"]
dbname = "app"
user = "app"
password = "apppass"
role = "replica"
primary_reads = false

[databases.split]
host = "${host(primary)},${host(replica)}"
dbname = "app"
user = "app"
password = "apppass"
read_write_split = true
`);
    bouncer = await startPgbun(["--config", writeConfig(cfg)]);
  });
  afterAll(async () => {
    await bouncer.stop();
  });

  test("writes reach the primary; role = replica and the NAME_ro alias read from the replica", async () => {
    const rw = postgres(bouncer.url("app", "apppass", "app"), { max: 2 });
    const ro = postgres(bouncer.url("app", "apppass", "app_ro"), { max: 2 });
    const reports = postgres(bouncer.url("app", "apppass", "reports"), { max: 2 });
    try {
      await rw`CREATE TABLE IF NOT EXISTS seen (n int)`;
      await rw`INSERT INTO seen VALUES (1)`;
      expect(await where(rw)).toEqual({ port: primary.port, standby: false });
      await waitCaughtUp(primary, replica);
      for (let i = 0; i < 5; i++) {
        expect(await where(ro)).toEqual({ port: replica.port, standby: true });
        expect(await where(reports)).toEqual({ port: replica.port, standby: true });
      }
      expect((await ro`SELECT count(*)::int AS n FROM seen`)[0]!.n).toBe(1);
      // A replica refuses writes itself (25006): nothing is ever written there.
      const refused = await ro`INSERT INTO seen VALUES (2)`.catch((e: { code?: string }) => e.code);
      expect(refused).toBe("25006");
    } finally {
      await Promise.all([rw.end(), ro.end(), reports.end()]);
    }
  });

  test("read_write_split: reads that cannot write and read-only transactions go to the replica, everything else to the primary", async () => {
    await primary.psql("CREATE TABLE IF NOT EXISTS split (id serial PRIMARY KEY, standby bool); GRANT ALL ON split, split_id_seq TO app", { db: "app" });
    await waitCaughtUp(primary, replica);
    for (const prepare of [true, false]) {
      const sql = postgres(bouncer.url("app", "apppass", "split"), { max: 1, prepare });
      try {
        const standby = async (q: Promise<Array<Record<string, unknown>>>) => (await q)[0]!.s as boolean;
        expect(await standby(sql`SELECT pg_is_in_recovery() AS s`)).toBe(true);
        expect(await standby(sql`SELECT pg_is_in_recovery() AS s, count(*) FROM split WHERE id > ${0}`)).toBe(true);
        expect(await standby(sql`INSERT INTO split (standby) VALUES (pg_is_in_recovery()) RETURNING pg_is_in_recovery() AS s`)).toBe(false);
        expect(await standby(sql`SELECT pg_is_in_recovery() AS s, nextval('split_id_seq')`)).toBe(false);
        expect(await standby(sql`SELECT pg_is_in_recovery() AS s FROM split FOR UPDATE`.then((r) => (r.length > 0 ? r : [{ s: false }])))).toBe(false);
        expect(await standby(sql`SELECT pg_is_in_recovery() AS s, pg_try_advisory_xact_lock(7)`)).toBe(false);
        // A transaction that says it only reads runs on the replica, functions and all; any other on the primary.
        expect(await sql.begin("read only", async (tx) => (await tx`SELECT pg_is_in_recovery() AS s`)[0]!.s)).toBe(true);
        expect(await sql.begin(async (tx) => (await tx`SELECT pg_is_in_recovery() AS s`)[0]!.s)).toBe(false);
        // Pipelined on one connection: what follows a read waits for the replica to answer it and is routed in turn, so
        // the reads ahead of the first write run on the replica and no write ever reaches it. (After a write the rest
        // of the pipeline may follow it to the primary: correct, if not split.)
        const writes = (i: number) => i % 3 === 2;
        const mixed = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            writes(i) ? sql`INSERT INTO split (standby) VALUES (pg_is_in_recovery()) RETURNING pg_is_in_recovery() AS s` : sql`SELECT pg_is_in_recovery() AS s`,
          ),
        );
        expect(mixed.filter((_, i) => writes(i)).map((r) => r[0]!.s)).toEqual(Array(10).fill(false));
        expect([mixed[0]![0]!.s, mixed[1]![0]!.s]).toEqual([true, true]);
      } finally {
        await sql.end();
      }
    }
    // Nothing was ever written on the replica (it would have refused), and every write reached the primary.
    expect(await primary.psql("SELECT count(*) FILTER (WHERE standby), count(*) FROM split", { db: "app" })).toBe("0|22");
    // psql's simple protocol too.
    const psql = Bun.spawnSync(["psql", "-X", "-A", "-t", "-c", "SELECT pg_is_in_recovery()", bouncer.url("app", "apppass", "split")]);
    expect(psql.stdout.toString().trim()).toBe("t");
  });

  test("with only a SCRAM verifier for the user, hosts are not called down: roles come once a client has logged in", async () => {
    const verifier = await primary.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
    const cfg = `[pgbun]
pool_mode = "transaction"
admin_users = "admin"
role_check_interval = 0.25
[databases.app]
host = "${host(primary)},${host(replica)}"
dbname = "app"
[users.app]
password = "${verifier}"
[users.admin]
password = "adminpass"
`;
    const other = await startPgbun(["--config", writeConfig(cfg)]);
    try {
      await Bun.sleep(700);
      const before = (await adminQuery(other.port, "SHOW HOSTS")).map((h) => h.state);
      expect(before).toEqual(["unknown", "unknown"]);
      expect(other.output()).toContain("the role check cannot log in");
      const rw = postgres(other.url("app", "apppass", "app"), { max: 1 });
      const ro = postgres(other.url("app", "apppass", "app_ro"), { max: 1 });
      expect(await where(rw)).toEqual({ port: primary.port, standby: false });
      expect(await where(ro)).toEqual({ port: replica.port, standby: true });
      await Promise.all([rw.end(), ro.end()]);
    } finally {
      await other.stop();
    }
  });

  test("clients see in_hot_standby as the database they asked for says (libpq's target_session_attrs reads it)", async () => {
    const rw = postgres(bouncer.url("app", "apppass", "app"), { max: 1 });
    const reports = postgres(bouncer.url("app", "apppass", "reports"), { max: 1 });
    try {
      await rw`SELECT 1`;
      await reports`SELECT 1`;
      expect(rw.parameters.in_hot_standby).toBe("off");
      expect(reports.parameters.in_hot_standby).toBe("on");
    } finally {
      await Promise.all([rw.end(), reports.end()]);
    }
  });

  test("SHOW HOSTS, SHOW POOLS and SHOW SERVERS name each host and its role; /healthz and /metrics too", async () => {
    const hosts = await adminQuery(bouncer.port, "SHOW HOSTS");
    const app = hosts.filter((h) => h.database === "app");
    expect(app.map((h) => [Number(h.port), h.role, h.state])).toEqual([
      [primary.port, "primary", "up"],
      [replica.port, "replica", "up"],
    ]);
    const pools = await adminQuery(bouncer.port, "SHOW POOLS");
    const rows = pools.filter((p) => p.database === "app_ro" || p.database === "reports");
    expect(new Set(rows.map((p) => `${p.host} ${p.role}`))).toEqual(new Set([`${host(primary)} primary`, `${host(replica)} replica`]));
    const servers = await adminQuery(bouncer.port, "SHOW SERVERS");
    expect(servers.some((s) => Number(s.port) === replica.port && s.role === "replica")).toBe(true);

    const health = (await (await fetch(`http://127.0.0.1:${statsPort}/healthz`)).json()) as {
      components: { upstreams: Array<{ database: string; status: string; hosts?: Array<{ port: number; role: string; state: string }> }> };
    };
    const up = health.components.upstreams.find((u) => u.database === "app")!;
    expect(up.status).toBe("up");
    expect(up.hosts!.map((h) => [h.port, h.role, h.state])).toEqual([
      [primary.port, "primary", "up"],
      [replica.port, "replica", "up"],
    ]);
    const text = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
    expect(text).toContain(`pgbun_host_role{database="app",host="${host(replica)}",role="replica"} 1`);
    expect(text).toContain(`pgbun_host_up{database="app",host="${host(primary)}"} 1`);
    expect(text).toContain('pgbun_failovers_total{database="app"} 0');
    const check = Bun.spawnSync(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text) });
    expect(check.stderr.toString()).not.toContain("error");
  });
});

interface Bench {
  code: number;
  out: string;
  aborted: number;
}

/** pgbench through pgbun with a script of its own; resolves when it ends. */
async function pgbench(port: number, script: string, args: string[]): Promise<Bench> {
  const file = writeConfig(script);
  const proc = Bun.spawn(["pgbench", "-n", "-h", "127.0.0.1", "-p", String(port), "-U", "app", "-f", file, ...args, "app"], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PGPASSWORD: "apppass" },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err, aborted: (err.match(/client \d+ (script \d+ )?aborted/g) ?? []).length };
}

describe("failover: the primary stops and the replica is promoted", () => {
  let primary: PgInstance;
  let replica: PgInstance;
  let bouncer: PgbunProcess;

  beforeAll(async () => {
    primary = await startPostgres();
    await primary.psql("CREATE TABLE ledger (id bigserial PRIMARY KEY, client int, port int, standby bool, at timestamptz DEFAULT clock_timestamp())", { db: "app" });
    await primary.psql("GRANT ALL ON ledger, ledger_id_seq TO app", { db: "app" });
    replica = await startReplica(primary);
    const cfg = config(`${host(primary)},${host(replica)}`, "", `
[databases.app_session]
host = "${host(primary)},${host(replica)}"
dbname = "app"
user = "app"
password = "apppass"
pool_mode = "session"
`);
    bouncer = await startPgbun(["--config", writeConfig(cfg)]);
  });
  afterAll(async () => {
    await bouncer.stop();
  });

  test("under pgbench: errors only for the transactions in flight, writes resume on the new primary, none reach a host in recovery", async () => {
    const session = postgres(bouncer.url("app", "apppass", "app_session"), { max: 1 });
    expect(await where(session)).toEqual({ port: primary.port, standby: false });
    const script = "INSERT INTO ledger (client, port, standby) VALUES (:client_id, inet_server_port(), pg_is_in_recovery());\n";
    // 8 clients over 4 servers: at most 4 transactions are in flight when the primary stops.
    const run = pgbench(bouncer.port, script, ["-c", "8", "-j", "2", "-T", "6", "-M", "simple"]);
    await Bun.sleep(1500);
    const stoppedAt = Date.now();
    await primary.stop("fast");
    await promote(replica);
    const bench = await run;

    // pgbench's clients whose transaction was running get PostgreSQL's FATAL and stop; the others wait and carry on.
    expect(bench.aborted).toBeLessThanOrEqual(4);
    for (const line of bench.out.split("\n").filter((l) => / aborted /.test(l))) expect(line).toContain("FATAL:  terminating connection due to administrator command");
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(bench.out)?.[1] ?? NaN);
    const rows = await replica.psql("SELECT count(*), count(*) FILTER (WHERE standby), count(*) FILTER (WHERE port = inet_server_port()) FROM ledger", { db: "app" });
    const [total, onStandby, afterFailover] = rows.split("|").map(Number) as [number, number, number];
    // Every acknowledged write is there; at most the in-flight ones committed without an answer.
    expect(total).toBeGreaterThanOrEqual(processed);
    expect(total - processed).toBeLessThanOrEqual(bench.aborted);
    expect(onStandby).toBe(0);
    expect(afterFailover).toBeGreaterThan(0);
    const first = await replica.psql(`SELECT extract(epoch FROM min(at)) * 1000 FROM ledger WHERE port = inet_server_port()`, { db: "app" });
    const recoveryMs = Math.round(Number(first) - stoppedAt);
    console.log(`failover: stop to first write on the new primary ${recoveryMs} ms; ${processed} transactions, ${bench.aborted} aborted in flight`);
    expect(recoveryMs).toBeLessThan(10_000);

    // A session-mode client lost its session (FATAL, as directly); postgres.js reconnects, to the new primary.
    await until("the session client on the new primary", async () => (await where(session)).port === replica.port);
    await session.end();
    const hosts = await adminQuery(bouncer.port, "SHOW HOSTS");
    const app = hosts.filter((h) => h.database === "app");
    expect(app.map((h) => [Number(h.port), h.role, h.state])).toEqual([
      [primary.port, "unknown", "down"],
      [replica.port, "primary", "up"],
    ]);
    expect(app[0]!.failovers).toBe("1");
  });

  test("the old primary comes back as a replica and is used as one", async () => {
    await rejoinAsReplica(primary, replica);
    const ro = postgres(bouncer.url("app", "apppass", "app_ro"), { max: 1 });
    try {
      // It was found down, so it gets reads again once ban_timeout has passed; fallback to the primary until then.
      const rw = postgres(bouncer.url("app", "apppass", "app"), { max: 1 });
      expect(await where(rw)).toEqual({ port: replica.port, standby: false });
      await rw.end();
      const hosts = await until("the old primary seen as a replica", async () => {
        const h = await adminQuery(bouncer.port, "SHOW HOSTS");
        return h.find((x) => Number(x.port) === primary.port && x.role === "replica") ? h : null;
      });
      expect(hosts.find((x) => Number(x.port) === primary.port)!.state).toBe("banned");
      expect(await where(ro)).toEqual({ port: replica.port, standby: false });
    } finally {
      await ro.end();
    }
  });
});
