// One line per event, as text or JSON, to stderr; stdout is kept for the "listening" line scripts wait for.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minRank = RANK.info;
let format: LogFormat = "text";
let sink: (line: string) => void = (line) => process.stderr.write(line + "\n");

export function configureLog(opts: { level?: LogLevel; format?: LogFormat; sink?: (line: string) => void }): void {
  if (opts.level) minRank = RANK[opts.level];
  if (opts.format) format = opts.format;
  if (opts.sink) sink = opts.sink;
}

export type LogFields = Record<string, string | number | boolean | null | undefined>;

function emit(level: LogLevel, component: string, msg: string, fields?: LogFields): void {
  if (RANK[level] < minRank) return;
  const time = new Date().toISOString();
  if (format === "json") {
    sink(JSON.stringify({ time, level, component, msg, ...fields }));
    return;
  }
  let line = `${time} ${level.toUpperCase()} ${component}: ${msg}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      line += ` ${k}=${typeof v === "string" && /[\s"=]/.test(v) ? JSON.stringify(v) : v}`;
    }
  }
  sink(line);
}

export const log = {
  debug: (component: string, msg: string, fields?: LogFields) => emit("debug", component, msg, fields),
  info: (component: string, msg: string, fields?: LogFields) => emit("info", component, msg, fields),
  warn: (component: string, msg: string, fields?: LogFields) => emit("warn", component, msg, fields),
  error: (component: string, msg: string, fields?: LogFields) => emit("error", component, msg, fields),
  enabled: (level: LogLevel) => RANK[level] >= minRank,
};
