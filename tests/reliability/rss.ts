// pgbun's resident memory over a run, read from /proc/<pid>/status, and whether it stayed flat.

import { readFileSync } from "node:fs";

export interface RssSample {
  /** Milliseconds since the recorder started. */
  atMs: number;
  kb: number;
  /** What the run had done by then (inputs sent, transactions). */
  done: number;
}

export interface RssSummary {
  startKb: number;
  peakKb: number;
  endKb: number;
  /** At most `maxPoints` samples, evenly spaced over the run, the peak always included. */
  samples: RssSample[];
}

/** VmRSS in kB, or null when the process is gone. */
export function rssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export class RssRecorder {
  readonly samples: RssSample[] = [];
  private readonly started = Date.now();

  sample(pid: number, done: number): number | null {
    const kb = rssKb(pid);
    if (kb !== null) this.samples.push({ atMs: Date.now() - this.started, kb, done });
    return kb;
  }

  summary(maxPoints = 40): RssSummary {
    const s = this.samples;
    if (s.length === 0) return { startKb: 0, peakKb: 0, endKb: 0, samples: [] };
    const peak = s.reduce((a, b) => (b.kb > a.kb ? b : a));
    const step = Math.max(1, Math.ceil(s.length / maxPoints));
    const picked = s.filter((_, i) => i % step === 0 || i === s.length - 1);
    if (!picked.includes(peak)) picked.push(peak);
    picked.sort((a, b) => a.atMs - b.atMs);
    return { startKb: s[0]!.kb, peakKb: peak.kb, endKb: s[s.length - 1]!.kb, samples: picked };
  }
}

export interface Flatness {
  secondQuarterMedianKb: number;
  lastQuarterMedianKb: number;
  /** last / second quarter. */
  ratio: number;
  /** The last quarter's median is within `ratioBound` of the second quarter's, or within `slackKb` of it. */
  flat: boolean;
}

export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const v = values.slice().sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The first quarter is warm-up (pools filling, caches growing), so the second quarter is the baseline. */
export function flatness(samples: RssSample[], ratioBound = 1.2, slackKb = 16 * 1024): Flatness {
  const q = Math.floor(samples.length / 4);
  const second = median(samples.slice(q, 2 * q).map((s) => s.kb));
  const last = median(samples.slice(samples.length - q).map((s) => s.kb));
  const ratio = second > 0 ? Math.round((last / second) * 1000) / 1000 : 0;
  return { secondQuarterMedianKb: second, lastQuarterMedianKb: last, ratio, flat: q > 0 && (last <= second * ratioBound || last - second <= slackKb) };
}
