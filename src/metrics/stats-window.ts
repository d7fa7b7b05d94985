// Averages over the last stats_period, as SHOW STATS_AVERAGES and the periodic stats log line report them.

import { log } from "../log.ts";
import type { Registry } from "../pool/registry.ts";
import { snapshotAll } from "./snapshot.ts";

interface Totals {
  server_assignment_count: number;
  xact_count: number;
  query_count: number;
  bytes_received: number;
  bytes_sent: number;
  xact_time: number;
  query_time: number;
  wait_time: number;
}

const zero = (): Totals => ({ server_assignment_count: 0, xact_count: 0, query_count: 0, bytes_received: 0, bytes_sent: 0, xact_time: 0, query_time: 0, wait_time: 0 });

export class StatsWindow {
  private previous = new Map<string, Totals>();
  private last = new Map<string, Totals>();
  private lastAt = performance.now();

  constructor(private readonly reg: Registry) {}

  private current(): Map<string, Totals> {
    const out = new Map<string, Totals>();
    for (const s of snapshotAll(this.reg)) {
      const t = out.get(s.database) ?? zero();
      t.server_assignment_count += s.total_server_assignment_count;
      t.xact_count += s.total_xact_count;
      t.query_count += s.total_query_count;
      t.bytes_received += s.total_received;
      t.bytes_sent += s.total_sent;
      t.xact_time += s.total_xact_time_us;
      t.query_time += s.total_query_time_us;
      t.wait_time += s.total_wait_time_us;
      out.set(s.database, t);
    }
    return out;
  }

  /** Closes a period: averages become those of the period just ended; logs one line per database. */
  roll(): void {
    const now = performance.now();
    const seconds = Math.max((now - this.lastAt) / 1000, 0.001);
    this.previous = this.last;
    this.last = this.current();
    this.lastAt = now;
    for (const db of this.last.keys()) {
      const a = this.averages(db, seconds);
      log.info("stats", `${a.xact_count} xact/s, ${a.query_count} query/s, in ${a.bytes_received} B/s, out ${a.bytes_sent} B/s, xact ${a.xact_time} us, query ${a.query_time} us, wait ${a.wait_time} us`, { database: db });
    }
  }

  /** Per-second rates over the last period; times are average microseconds per transaction, query and assignment. */
  averages(db: string, seconds = this.reg.settings.stats_period || 1): Totals {
    const cur = this.last.get(db) ?? zero();
    const prev = this.previous.get(db) ?? zero();
    const d = (k: keyof Totals) => cur[k] - prev[k];
    const per = (n: number, by: number) => (by > 0 ? Math.round(n / by) : 0);
    return {
      server_assignment_count: per(d("server_assignment_count"), seconds),
      xact_count: per(d("xact_count"), seconds),
      query_count: per(d("query_count"), seconds),
      bytes_received: per(d("bytes_received"), seconds),
      bytes_sent: per(d("bytes_sent"), seconds),
      xact_time: per(d("xact_time"), d("xact_count")),
      query_time: per(d("query_time"), d("query_count")),
      wait_time: per(d("wait_time"), d("server_assignment_count")),
    };
  }
}
