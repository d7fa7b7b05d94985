// Starts pgbun as a child process for integration tests and waits for its "listening" line.

import { resolve } from "node:path";
import { atEnd } from "./cleanup.ts";

export interface PgbunProcess {
  host: string;
  port: number;
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number>;
  url(user: string, password: string, db: string): string;
}

export const REPO_ROOT = resolve(import.meta.dir, "../..");

const children = new Set<Bun.Subprocess>();
atEnd(() => {
  for (const c of children) c.kill("SIGKILL");
});

export async function startPgbun(
  args: string[],
  opts: { env?: Record<string, string>; cmd?: string[]; cwd?: string; timeoutMs?: number } = {},
): Promise<PgbunProcess> {
  const full = args.some((a) => a === "--listen" || a.startsWith("--listen=")) ? args : ["--listen", "127.0.0.1:0", ...args];
  const cmd = [...(opts.cmd ?? [process.execPath, "src/main.ts"]), ...full];
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  children.add(proc);
  let out = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) out += dec.decode(chunk, { stream: true });
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let m: RegExpMatchArray | null = null;
  while (!(m = out.match(/pgbun listening on ([\d.]+|[^\s:]+):(\d+)/))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await Bun.sleep(50);
      proc.kill();
      throw new Error(`pgbun did not start (exit ${proc.exitCode}):\n${out}`);
    }
    await Bun.sleep(20);
  }
  const host = m[1]!;
  const port = Number(m[2]);
  return {
    host,
    port,
    proc,
    output: () => out,
    async stop(signal = "SIGINT") {
      if (proc.exitCode === null) proc.kill(signal);
      const code = await proc.exited;
      children.delete(proc);
      return code;
    },
    url: (user, password, db) => `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${db}`,
  };
}
