// Command-line options of the long reliability runs: numbers checked and named in errors, usage on a bad option.

import { parseArgs } from "node:util";

export type Spec = Record<string, { default?: string; help: string; boolean?: boolean }>;

/** Parsed values by option name, as strings ("true"/"false" for switches); exits 2 with the usage on a bad option. */
export function parseOptions(argv: string[], usage: string, spec: Spec): Record<string, string> {
  const text = `${usage}\n\nOptions:\n${Object.entries(spec)
    .map(([k, s]) => `  --${k}${s.boolean ? "" : " VALUE"}  ${s.help}${s.default !== undefined ? ` (default ${s.default})` : ""}`)
    .join("\n")}`;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, { type: s.boolean ? ("boolean" as const) : ("string" as const) }])),
      },
    });
    if (values.help) {
      console.log(text);
      process.exit(0);
    }
    const out: Record<string, string> = {};
    for (const [k, s] of Object.entries(spec)) {
      const v = (values as Record<string, string | boolean | undefined>)[k];
      if (v !== undefined) out[k] = String(v);
      else if (s.default !== undefined) out[k] = s.default;
    }
    return out;
  } catch (err) {
    console.error(`${(err as Error).message}\n${text}`);
    process.exit(2);
  }
}

/** A whole number of at least `min` from option `name`, or exit 2 naming it. */
export function whole(values: Record<string, string>, name: string, min = 0): number {
  const raw = values[name];
  const n = Number(raw);
  if (raw === undefined || raw === "" || !Number.isInteger(n) || n < min) {
    console.error(`--${name} must be a whole number of at least ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

/** A number (fractions allowed) of at least `min`, or exit 2 naming it. */
export function decimal(values: Record<string, string>, name: string, min = 0): number {
  const raw = values[name];
  const n = Number(raw);
  if (raw === undefined || raw === "" || !Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number of at least ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}
