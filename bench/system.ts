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

/** CPU time (user + system, all threads) a process has used so far, in milliseconds; null once it is gone. */
export function cpuTimeMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at state; utime and stime are the 12th and 13th of them.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Linux reports CPU times in clock ticks: USER_HZ, 100 on every mainstream build. */
const CLOCK_TICKS = 100;
