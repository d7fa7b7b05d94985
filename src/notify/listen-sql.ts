// Which LISTEN and UNLISTEN commands a piece of SQL holds, so pgbun can keep each client's channels itself.

export interface ListenOp {
  listen: boolean;
  /** The channel as PostgreSQL names it (unquoted names fold to lower case); "*" for UNLISTEN *. */
  channel: string;
}

const STATEMENT = /^\s*(listen|unlisten)\s+(?:"((?:[^"]|"")+)"|([A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)|(\*))\s*$/i;

/** Cheap first look: can this text hold a LISTEN or UNLISTEN at all? (Most queries fail on the first letters.) */
export function mayListen(text: string): boolean {
  return /\b(?:un)?listen\b/i.test(text);
}

/**
 * The LISTEN/UNLISTEN commands of a query, in order; null when there are none. Statements are split on semicolons
 * outside quotes; any other statement in the text is left to the server.
 */
export function listenOps(text: string): ListenOp[] | null {
  if (!mayListen(text)) return null;
  let out: ListenOp[] | null = null;
  for (const stmt of splitStatements(text)) {
    const m = STATEMENT.exec(stmt);
    if (m === null) continue;
    const channel = m[4] !== undefined ? "*" : m[2] !== undefined ? m[2].replace(/""/g, '"') : m[3]!.toLowerCase();
    (out ??= []).push({ listen: m[1]!.toLowerCase() === "listen", channel });
  }
  return out;
}

function splitStatements(text: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote !== "") {
      if (ch === quote) quote = "";
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === ";") {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.filter((p) => p.trim() !== "");
}
