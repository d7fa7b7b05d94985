// The machine a run measures on (cores, RAM, kernel, CPU) and its open-file limit, raised when 1000s of sockets need it.

import { readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";

export interface Machine {
  nproc: number;
  memTotalMiB: number;
  kernel: string;
  cpu: string;
}

export function machine(): Machine {
  return {
    nproc: navigator.hardwareConcurrency ?? cpus().length,
    memTotalMiB: Math.round(totalmem() / 1024 / 1024),
    kernel: release(),
    cpu: cpus()[0]?.model.trim() ?? "unknown",
  };
}

export interface FileLimit {
  soft: number;
  hard: number;
}

export function fileLimit(pid: number | "self" = "self"): FileLimit | null {
  try {
    const m = readFileSync(`/proc/${pid}/limits`, "utf8").match(/^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m);
    if (!m) return null;
    const n = (s: string) => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return null;
  }
}

/**
 * Makes sure this process (and so every child it spawns: pgbench, the poolers, the idle clients) may open `need`
 * files: prlimit raises the soft limit up to the hard one, and the hard one too when we are root.
 * Returns the soft limit in force afterwards.
 */
export function ensureFileLimit(need: number): number {
  const now = fileLimit();
  if (!now) return need; // not Linux: trust the caller's ulimit
  if (now.soft >= need) return now.soft;
  const target = process.getuid?.() === 0 ? Math.max(need, now.hard) : Math.min(need, now.hard);
  if (Bun.which("prlimit")) {
    Bun.spawnSync(["prlimit", "--pid", String(process.pid), `--nofile=${target}:${Math.max(target, now.hard)}`], { stdout: "ignore", stderr: "ignore" });
  }
  return fileLimit()?.soft ?? now.soft;
}

export function commandVersion(cmd: string[]): string {
  try {
    const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
    return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "unknown";
  } catch {
    return "not found";
  }
}
