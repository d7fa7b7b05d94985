// Session parameters a client expects to see on whichever server it is linked to, and the SQL that makes it so.

/** Parameters PostgreSQL reports (GUC_REPORT) that drivers rely on; pgbun keeps them right for every client. */
export const TRACKED_PARAMS = [
  "client_encoding",
  "DateStyle",
  "TimeZone",
  "IntervalStyle",
  "standard_conforming_strings",
  "application_name",
] as const;

/** One change to make on a server: a value to SET, or null to RESET. */
export interface ParamChange {
  key: string;
  value: string | null;
}

/**
 * What must change on a server so that a client sees its own settings.
 * `reported` are the values the server told us; `setByUs` what pgbun SET there on behalf of earlier clients.
 */
export function paramChanges(
  wanted: Map<string, string>,
  reported: Map<string, string>,
  setByUs: Map<string, string>,
): ParamChange[] {
  let out: ParamChange[] | null = null;
  for (const [key, value] of wanted) {
    const current = reported.get(key) ?? setByUs.get(key);
    if (current !== value) (out ??= []).push({ key, value });
  }
  for (const key of setByUs.keys()) {
    if (!wanted.has(key)) (out ??= []).push({ key, value: null });
  }
  return out ?? NONE;
}

const NONE: ParamChange[] = [];

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteLiteral(value: string): string {
  const body = value.replace(/'/g, "''");
  return value.includes("\\") ? "E'" + body.replace(/\\/g, "\\\\") + "'" : "'" + body + "'";
}

/**
 * The SQL that makes one change. set_config() rather than SET: SET takes a quoted value as one item, so a list setting
 * such as search_path = 'a,b' would become the single schema "a,b"; set_config parses the value as the startup packet does.
 */
export function changeSql(c: ParamChange): string {
  return c.value === null ? `RESET ${quoteIdent(c.key)}` : `SELECT pg_catalog.set_config(${quoteLiteral(c.key)}, ${quoteLiteral(c.value)}, false)`;
}

/** Parses the startup "options" parameter: "-c key=value", "--key=value", with backslash-escaped spaces. */
export function parseOptions(options: string): Map<string, string> {
  const out = new Map<string, string>();
  const words: string[] = [];
  let cur = "";
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === "\\" && i + 1 < options.length) cur += options[++i];
    else if (ch === " " || ch === "\t") {
      if (cur) words.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur) words.push(cur);
  for (let i = 0; i < words.length; i++) {
    let w = words[i]!;
    if (w === "-c" && i + 1 < words.length) w = words[++i]!;
    else if (w.startsWith("-c")) w = w.slice(2);
    else if (w.startsWith("--")) w = w.slice(2);
    else continue;
    const eq = w.indexOf("=");
    if (eq > 0) out.set(w.slice(0, eq).replace(/-/g, "_"), w.slice(eq + 1));
  }
  return out;
}
