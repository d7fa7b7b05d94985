// Memory per idle client: a pooler's RSS with N idle, logged-in clients minus its RSS with none, divided by N.

import { join } from "node:path";
import { readRssKiB, type RunningPooler } from "./targets.ts";
import { LOGIN } from "./database.ts";

export interface IdleMemoryResult {
  target: string;
  requested: number;
  ready: number;
  failed: number;
  /** Clients closed by the pooler between their login and the measurement. */
  lost: number;
  loginMs: number;
  baselineKiB: number | null;
  loadedKiB: number | null;
  /** (loaded - baseline) / ready, in bytes; null when nothing could be measured. */
  bytesPerClient: number | null;
  errors: string[];
}

interface IdleSummary {
  ready: number;
  failed: number;
  ms: number;
  errors: string[];
}

const SCRIPT = join(import.meta.dir, "idle-clients.ts");

/** Holds `count` idle clients open in a child process until release() is called. */
class IdleClients {
  private readonly proc: Bun.Subprocess<"pipe", "pipe", "ignore">;
  private readonly reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> };
  private text = "";

  constructor(port: number, count: number, timeoutSeconds: number) {
    this.proc = Bun.spawn([process.execPath, SCRIPT, String(port), String(count), LOGIN.user, LOGIN.password, LOGIN.db, "100", String(timeoutSeconds)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "ignore",
    });
    this.reader = this.proc.stdout.getReader();
  }

  /** The next JSON line the child prints, or null if it exits or the time runs out first. */
  async nextLine<T>(timeoutMs: number): Promise<T | null> {
    const deadline = Date.now() + timeoutMs;
    const decoder = new TextDecoder();
    while (!this.text.includes("\n")) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<null>((r) => (timer = setTimeout(() => r(null), left)));
      const chunk = await Promise.race([this.reader.read(), expired]);
      clearTimeout(timer);
      if (chunk === null) return null;
      if (chunk.done) break;
      this.text += decoder.decode(chunk.value, { stream: true });
    }
    const nl = this.text.indexOf("\n");
    if (nl < 0) return null;
    const line = this.text.slice(0, nl);
    this.text = this.text.slice(nl + 1);
    return JSON.parse(line) as T;
  }

  async release(): Promise<number> {
    try {
      this.proc.stdin.end();
    } catch {
      /* already gone */
    }
    const lost = await this.nextLine<{ lost: number }>(10_000);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.proc.exited;
    clearTimeout(timer);
    return lost?.lost ?? 0;
  }
}

/** The client counts measured on the way to `count`: 2,000 (the goal's smaller point) when below it, then `count`. */
export function idleSteps(count: number): number[] {
  return count > 2000 ? [2000, count] : [count];
}

/**
 * The baseline is taken after a few clients have logged in and left, so the first server login, the pooler's
 * first-use allocations and (for pgbun) JIT warm-up are not charged to the idle clients. Then clients are added in
 * steps (all of them held open) and RSS is read after each: one result per step, each over all clients held then.
 */
export async function measureIdleMemorySteps(pooler: RunningPooler, counts: number[], settleMs = 2000): Promise<IdleMemoryResult[]> {
  const warm = new IdleClients(pooler.port, 20, 30);
  await warm.nextLine<IdleSummary>(35_000);
  await warm.release();
  await Bun.sleep(settleMs);
  const baselineKiB = readRssKiB(pooler.pid);

  const held: IdleClients[] = [];
  const results: IdleMemoryResult[] = [];
  let ready = 0;
  let failed = 0;
  let loginMs = 0;
  let errors: string[] = [];
  let opened = 0;
  for (const count of counts) {
    const more = count - opened;
    if (more <= 0) continue;
    opened = count;
    const timeoutSeconds = Math.max(60, Math.ceil(more / 50));
    const idle = new IdleClients(pooler.port, more, timeoutSeconds);
    held.push(idle);
    const summary = await idle.nextLine<IdleSummary>((timeoutSeconds + 10) * 1000);
    await Bun.sleep(settleMs);
    const loadedKiB = readRssKiB(pooler.pid);
    ready += summary?.ready ?? 0;
    failed += summary ? summary.failed : more;
    loginMs += summary?.ms ?? 0;
    errors = [...errors, ...(summary ? summary.errors : ["the idle-client process printed no summary"])];
    const bytesPerClient = baselineKiB !== null && loadedKiB !== null && ready > 0 ? ((loadedKiB - baselineKiB) * 1024) / ready : null;
    results.push({ target: pooler.name, requested: count, ready, failed, lost: 0, loginMs, baselineKiB, loadedKiB, bytesPerClient, errors });
  }
  // Whether the pooler closed a client is known only once the clients are let go, after the last step: each result carries that total.
  let lost = 0;
  for (const idle of held.reverse()) lost += await idle.release();
  for (const r of results) r.lost = lost;
  return results;
}

/** One count: the figure with `count` idle clients. */
export async function measureIdleMemory(pooler: RunningPooler, count: number, settleMs = 2000): Promise<IdleMemoryResult> {
  const [result] = await measureIdleMemorySteps(pooler, [count], settleMs);
  return result!;
}
