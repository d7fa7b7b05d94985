// Runs one pgbench measurement against 127.0.0.1:PORT and parses its TPS, average latency and failures.

export type QueryMode = "simple" | "extended" | "prepared";
export type Script = "select-only" | "tpcb";

export interface PgbenchPoint {
  script: Script;
  mode: QueryMode;
  clients: number;
  /** pgbench -C: a new connection (login, and TLS handshake if any) for every transaction. */
  reconnect?: boolean;
}

export interface PgbenchResult {
  ok: boolean;
  tps: number | null;
  latencyMs: number | null;
  /** pgbench's "number of failed transactions" (serialization and deadlock failures it retried or gave up on). */
  failed: number | null;
  /**
   * Clients pgbench aborted on an error ("client N script 0 aborted in command ..."): each lost the transaction it was
   * in and ran no more, and pgbench exits 2. Absent from older results.
   */
  abortedClients?: number;
  transactions: number | null;
  connectMs: number | null;
  /** CPU the pooler process used during the run (its logins included), when the target is one process we can watch. */
  poolerCpuMs?: number | null;
  /** Why ok is false: pgbench's exit code and its last error lines, or a timeout. */
  error?: string;
  /** pgbench outlived -T plus the grace and was killed: whatever it did is unknown (a stalled run). */
  killed?: boolean;
}

export interface PgbenchTarget {
  port: number;
  user: string;
  password: string;
  db: string;
  /** libpq's sslmode for pgbench's connections (PGSSLMODE); absent: disable. */
  sslmode?: string;
}

/** pgbench threads: -j 1 for one client, else 2 (the machine this was written for has 2 cores; more threads only contend). */
export function threadsFor(clients: number): number {
  return clients >= 2 ? 2 : 1;
}

export function pgbenchArgs(p: PgbenchPoint, seconds: number, t: PgbenchTarget): string[] {
  return [
    "-n", // no vacuum through the target: run.ts vacuums directly before TPC-B runs, the same for every target
    "-T", String(seconds),
    "-c", String(p.clients),
    "-j", String(threadsFor(p.clients)),
    "-M", p.mode,
    ...(p.reconnect ? ["-C"] : []),
    ...(p.script === "select-only" ? ["-S"] : []),
    "-h", "127.0.0.1",
    "-p", String(t.port),
    "-U", t.user,
    t.db,
  ];
}

/** PGPASSWORD for the login, PGSSLMODE, and no other PG* variable to steer pgbench elsewhere. */
export function clientEnv(password: string, sslmode = "disable"): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("PG")) env[k] = v;
  return { ...env, PGPASSWORD: password, PGSSLMODE: sslmode, PGCONNECT_TIMEOUT: "30", LC_ALL: "C" };
}

const number = (text: string, re: RegExp): number | null => {
  const m = text.match(re);
  return m ? Number(m[1]) : null;
};

export function parsePgbench(out: string, exitCode: number): PgbenchResult {
  const tps = number(out, /^tps = ([\d.]+)/m);
  const latencyMs = number(out, /^latency average = ([\d.]+) ms/m);
  const failed = number(out, /^number of failed transactions: (\d+)/m);
  const transactions = number(out, /^number of transactions actually processed: (\d+)/m);
  const connectMs = number(out, /^initial connection time = ([\d.]+) ms/m);
  const abortedClients = out.match(/\bclient \d+ (?:script \d+ )?aborted\b/g)?.length ?? 0;
  const ok = exitCode === 0 && tps !== null && latencyMs !== null;
  const result: PgbenchResult = { ok, tps, latencyMs, failed, abortedClients, transactions, connectMs };
  if (!ok && exitCode === 0 && transactions === 0) {
    result.error = "pgbench completed no transaction within -T (connecting its clients took longer than that)";
  } else if (!ok) {
    const errors = out.split("\n").filter((l) => /error|abort|FATAL|could not/i.test(l));
    result.error = `pgbench exit ${exitCode}${abortedClients ? `, ${abortedClients} clients aborted` : ""}: ${(errors.slice(-3).join(" | ") || out.trim().split("\n").slice(-2).join(" | ")).slice(0, 400)}`;
  }
  return result;
}

/**
 * Runs pgbench, killing it when it outlives -T by more than the grace (connection setup of 1000 clients included, or
 * a client stuck in a synchronous call such as PQprepare that the -T clock cannot interrupt): a stalled run ends as
 * an error saying so, never as a hang.
 */
export async function runPgbench(p: PgbenchPoint, seconds: number, t: PgbenchTarget, graceSeconds = 60): Promise<PgbenchResult> {
  const proc = Bun.spawn(["pgbench", ...pgbenchArgs(p, seconds, t)], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: clientEnv(t.password, t.sslmode),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, (seconds + graceSeconds) * 1000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const result = parsePgbench(`${out}\n${err}`, code);
  if (timedOut) return { ...result, ok: false, killed: true, error: `pgbench stalled: killed after ${seconds + graceSeconds} s (-T ${seconds} plus ${graceSeconds} s), its transactions and failures unknown` };
  return result;
}
