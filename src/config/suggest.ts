// "Did you mean": the known name nearest a mistyped flag or key, since a typo silently ignored is the worst outcome.

/** PgBouncer names people bring along that pgbun spells differently. */
const RENAMED: Record<string, string> = {
  pgbouncer: "pgbun",
  listen_addr: "listen",
  listen_port: "listen",
  pool_size: "default_pool_size",
};

/** The nearest name within two edits (or a known rename), or null. */
export function nearest(name: string, known: readonly string[]): string | null {
  const renamed = RENAMED[name];
  if (renamed !== undefined && known.includes(renamed)) return renamed;
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
