// The HTML page of a run: an inline SVG bar chart of pgbun's throughput ratios, the table, latency and memory; no external assets.

import { haLines } from "./ha.ts";
import { addedLatencyLines, CPU_NOTE, cpuTable, durationText, extraTargetLines, FAILED_NOTE, idleMemoryLines, markdownTable, RATIO_NOTE, ratio, rows, TLS_NOTE, tlsCpuTable, tlsTable, type BenchResults } from "./report.ts";

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

const SERIES = [
  { name: "pgbun / PgBouncer", color: "#2b6cb0" },
  { name: "pgbun / direct", color: "#dd6b20" },
] as const;

/** Horizontal bars, two per table row, on one axis with a rule at 1.0 (parity). */
export function ratioChart(r: BenchResults): string {
  const data = rows(r.points).map((row) => ({ label: row.label, values: [ratio(row.pgbun, row.pgbouncer), ratio(row.pgbun, row.direct)] }));
  const labelWidth = 260;
  const plotWidth = 520;
  const bar = 14;
  const groupHeight = bar * 2 + 12;
  const top = 30;
  const height = top + data.length * groupHeight + 30;
  const maxValue = Math.max(1.25, ...data.flatMap((d) => d.values.filter((v): v is number => v !== null)));
  const axisMax = Math.ceil(maxValue * 4) / 4;
  const x = (v: number) => Math.round((labelWidth + (v / axisMax) * plotWidth) * 10) / 10;
  const parts: string[] = [];
  for (let t = 0; t <= axisMax + 1e-9; t += 0.25) {
    parts.push(`<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${height - 24}" stroke="${Math.abs(t - 1) < 1e-9 ? "#000" : "#ddd"}" stroke-width="${Math.abs(t - 1) < 1e-9 ? 1.5 : 1}"/>`);
    parts.push(`<text x="${x(t)}" y="${height - 8}" font-size="11" text-anchor="middle">${t.toFixed(2)}</text>`);
  }
  data.forEach((d, i) => {
    const y0 = top + i * groupHeight;
    parts.push(`<text x="${labelWidth - 8}" y="${y0 + bar + 4}" font-size="12" text-anchor="end">${esc(d.label)}</text>`);
    d.values.forEach((v, k) => {
      const y = y0 + k * bar;
      if (v === null) {
        parts.push(`<text x="${labelWidth + 4}" y="${y + bar - 3}" font-size="10" fill="#888">${esc(SERIES[k]!.name)}: n/a</text>`);
        return;
      }
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${Math.max(1, x(v) - labelWidth)}" height="${bar - 2}" fill="${SERIES[k]!.color}"><title>${esc(`${d.label}: ${SERIES[k]!.name} = ${v.toFixed(3)}`)}</title></rect>`);
      parts.push(`<text x="${x(v) + 4}" y="${y + bar - 3}" font-size="10">${v.toFixed(2)}</text>`);
    });
  });
  const legend = SERIES.map((s, k) => `<rect x="${labelWidth + k * 170}" y="6" width="12" height="12" fill="${s.color}"/><text x="${labelWidth + k * 170 + 16}" y="16" font-size="12">${esc(s.name)} (TPS)</text>`).join("");
  const width = labelWidth + plotWidth + 50;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">${legend}${parts.join("")}</svg>`;
}

function tableHtml(markdown: string): string {
  const lines = markdown.split("\n");
  const cells = (l: string) => l.slice(1, -1).split("|").map((c) => c.trim());
  const head = cells(lines[0]!).map((c) => `<th>${esc(c)}</th>`).join("");
  const body = lines
    .slice(2)
    .map((l) => `<tr>${cells(l).map((c, i) => `<td${i ? ' class="n"' : ""}>${esc(c)}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function htmlPage(r: BenchResults): string {
  const m = r.machine;
  const v = r.versions;
  const list = (items: string[]) => `<ul>${items.map((i) => `<li>${esc(i)}</li>`).join("")}</ul>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgbun benchmark ${esc(r.startedAt)}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
</style></head><body>
<h1>pgbun benchmark</h1>
<p>${esc(r.startedAt)}${r.options.quick ? " (--quick)" : ""}: ${r.options.rounds} round(s) interleaved (pgbun, PgBouncer, direct at each point),
${esc(durationText(r))}, medians across rounds; took ${Math.round(r.durationSeconds)} s.</p>
<p>${esc(`${m.nproc} cores (${m.cpu}), ${(m.memTotalMiB / 1024).toFixed(1)} GiB RAM, Linux ${m.kernel}. Bun ${v.bun}, ${v.postgres}, ${v.pgbouncer}, ${v.pgbench}, pgbun ${v.pgbun}.`)}<br>
${esc(`${r.settings.poolMode} pooling, pool size ${r.settings.poolSize}, max_client_conn ${r.settings.maxClientConn}, ${r.settings.auth}; PostgreSQL max_connections ${r.settings.pgMaxConnections}, pgbench -i -s ${r.options.scale}.`)}</p>
<h2>Throughput ratios (above 1.00: pgbun is faster)</h2>
${ratioChart(r)}
<h2>Median TPS and average latency</h2>
<p>${esc(RATIO_NOTE)} ${esc(FAILED_NOTE)}</p>
${tableHtml(markdownTable(r.points))}
${list(extraTargetLines(r.points))}
<h2>Pooler CPU per transaction (lower is better)</h2>
<p>${esc(CPU_NOTE)}</p>
${tableHtml(cpuTable(r.points))}
<h2>Added latency per query</h2>
${list(addedLatencyLines(r.addedLatency))}
<h2>Memory per idle client</h2>
${r.idleMemory.length ? list(idleMemoryLines(r.idleMemory)) : "<p>not measured</p>"}
${r.tls?.length ? `<h2>TLS on the client side</h2><p>${esc(TLS_NOTE)}</p>${tableHtml(tlsTable(r.tls))}<p>Pooler CPU per transaction (µs):</p>${tableHtml(tlsCpuTable(r.tls))}` : ""}
${r.ha ? `<h2>High availability</h2>${list(haLines(r.ha))}` : ""}
${r.notes.length ? `<h2>Notes</h2>${list(r.notes)}` : ""}
</body></html>
`;
}
