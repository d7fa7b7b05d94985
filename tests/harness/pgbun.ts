// Starts pgbun as a child process for integration tests and waits for its "pgbun listening on HOST:PORT" line.

import { resolve } from "node:path";
import { atEnd } from "./cleanup.ts";
import { undoIfKilled } from "./watchdog.ts";

export interface PgbunProcess {
  host: string;
  port: number;
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** Signals (default SIGINT), escalates to SIGKILL after 15 s, resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
  url(user: string, password: string, db: string): string;
}

export interface StartPgbunOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Default [process.execPath, "src/main.ts"]; args are appended. */
  cmd?: string[];
  /** Default the repository root. */
  cwd?: string;
  /** The config names the address (a pgbouncer.ini's listen_port): no --listen 127.0.0.1:0 is added. */
  configListens?: boolean;
  /** How long to wait for the listening line; default 15 s. */
  timeoutMs?: number;
}

export const REPO_ROOT = resolve(import.meta.dir, "../..");

const STOP_GRACE_MS = 15_000;
// Only a complete line counts: a chunk may end in the middle of the port number.
const LISTENING = /^pgbun listening on (\S+):(\d+)\r?\n/m;

const children = new Set<Bun.Subprocess>();
atEnd(() => {
  for (const c of children) c.kill("SIGKILL");
});

export async function startPgbun(args: string[], opts: StartPgbunOptions = {}): Promise<PgbunProcess> {
  const hasListen = opts.configListens === true || args.some((a) => a === "--listen" || a.startsWith("--listen="));
  const cmd = [...(opts.cmd ?? [process.execPath, "src/main.ts"]), ...(hasListen ? [] : ["--listen", "127.0.0.1:0"]), ...args];
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  children.add(proc);
  const forget = undoIfKilled({ kill: proc.pid });
  void proc.exited.then(() => {
    children.delete(proc);
    forget();
  });

  let out = "";
  let stdout = "";
  let seen: (() => void) | null = null;
  const pump = async (stream: ReadableStream<Uint8Array>, isStdout: boolean) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      out += text;
      if (isStdout) stdout += text;
      seen?.();
    }
  };
  const pumped = Promise.all([pump(proc.stdout, true), pump(proc.stderr, false)]);

  const timeoutMs = opts.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let m: RegExpMatchArray | null;
  while (!(m = stdout.match(LISTENING))) {
    const left = deadline - Date.now();
    if (proc.exitCode !== null || proc.signalCode !== null || left <= 0) {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await proc.exited;
      await Promise.race([pumped, Bun.sleep(500)]);
      const why = left <= 0 ? `printed no "pgbun listening on" line within ${timeoutMs} ms` : `exited (${proc.exitCode ?? proc.signalCode}) before listening`;
      throw new Error(`pgbun ${why}: ${cmd.join(" ")}\n${out}`);
    }
    // Wake on new output, on exit, or at the deadline, whichever comes first.
    await Promise.race([new Promise<void>((r) => (seen = r)), proc.exited, Bun.sleep(Math.min(left, 250))]);
    seen = null;
  }
  const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
  const port = Number(m[2]);
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    host,
    port,
    proc,
    output: () => out,
    async stop(signal = "SIGINT") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_GRACE_MS);
      const code = await proc.exited;
      clearTimeout(timer);
      await Promise.race([pumped, Bun.sleep(500)]);
      return code;
    },
    url: (user, password, db) => `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${urlHost}:${port}/${encodeURIComponent(db)}`,
  };
}
