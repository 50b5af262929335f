import type { EvidenceReport, ReportInterval } from './report.js'

// An evidence report as one self-contained HTML file: no script runs, nothing is fetched; it
// prints on A4 from any browser. The report's JSON is embedded as data (`keatrail verify
// --report` reads it from the HTML as from a .json file).

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)

/** The report's JSON as it can sit inside a <script> element (no `</`, no line separators). */
export function embeddedJson (r: EvidenceReport): string {
  return JSON.stringify(r).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')
}

/** Reads the report a file holds: its JSON, or the JSON an HTML report embeds. */
export function reportFromText (text: string): unknown {
  const m = /<script type="application\/json" id="keatrail-report">([\s\S]*?)<\/script>/.exec(text)
  return JSON.parse(m === null ? text : m[1] as string)
}

function inZone (iso: string | null, zone: string): string {
  if (iso === null) return ''
  const d = new Date(iso)
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).formatToParts(d).map((p) => [p.type, p.value]))
  const ms = String(d.getUTCMilliseconds()).padStart(3, '0')
  return `${parts.year as string}-${parts.month as string}-${parts.day as string} ${parts.hour as string}:${parts.minute as string}:${parts.second as string}.${ms}`
}

/** A time in the report's zone, and in UTC when that differs. */
function when (iso: string | null, zone: string, none: string): string {
  if (iso === null) return esc(none)
  const local = inZone(iso, zone)
  return zone === 'UTC' ? `${esc(local)} UTC` : `${esc(local)} ${esc(zone)}<br><span class="utc">${esc(inZone(iso, 'UTC'))} UTC</span>`
}

function who (iv: ReportInterval): string {
  return [iv.mac, iv.client_id === undefined ? undefined : `client-id ${iv.client_id}`, iv.duid === undefined ? undefined : `DUID ${iv.duid}`, iv.iaid === undefined ? undefined : `IAID ${iv.iaid}`, iv.hostname].filter((x) => x !== undefined).join(' · ')
}

/** The intervals on a time axis: one row each, the question's instant marked, ticks in the report's zone. */
function timeline (r: EvidenceReport): string {
  const t = Date.parse(r.question.instant)
  const ends = r.timeline.flatMap((iv) => [iv.start, iv.end]).filter((x): x is string => x !== null).map((x) => Date.parse(x))
  let lo = Math.min(t, ...ends)
  let hi = Math.max(t, ...ends)
  const pad = Math.max((hi - lo) * 0.06, 60_000)
  lo -= pad
  hi += pad
  const W = 700
  const left = 10
  const row = 30
  const top = 24
  const x = (ms: number): number => left + ((ms - lo) / (hi - lo)) * (W - 2 * left)
  const h = top + row * Math.max(1, r.timeline.length) + 30
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${h}" width="100%" role="img" aria-label="lease intervals around the question's time">`]
  for (let k = 0; k <= 4; k++) {
    const ms = lo + ((hi - lo) * k) / 4
    const tx = x(ms)
    parts.push(`<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${h - 24}" class="tick"/>`,
      `<text x="${tx.toFixed(1)}" y="${h - 8}" class="ticklabel" text-anchor="${k === 0 ? 'start' : k === 4 ? 'end' : 'middle'}">${esc(inZone(new Date(ms).toISOString(), r.time_zone).slice(0, 19))}</text>`)
  }
  r.timeline.forEach((iv, k) => {
    const y = top + row * k
    const open = iv.start === null
    const x1 = x(iv.start === null ? lo : Date.parse(iv.start))
    const x2 = x(iv.end === null ? hi : Date.parse(iv.end))
    const title = `${iv.role}: ${who(iv)} — ${iv.start ?? 'before collection'} … ${iv.end ?? 'open'} (${iv.end_reason}, ${iv.certainty})`
    parts.push(`<g class="iv ${iv.role}"><title>${esc(title)}</title><rect x="${x1.toFixed(1)}" y="${y}" width="${Math.max(2, x2 - x1).toFixed(1)}" height="${row - 10}" rx="3"${open || iv.end === null ? ' class="open"' : ''}/>`,
      `<text x="${(x1 + 4).toFixed(1)}" y="${y + row - 15}" class="label">${esc(`${iv.role === 'holder' ? '' : `${iv.role}: `}${iv.mac ?? iv.duid ?? iv.client_id ?? '?'}${iv.hostname === undefined ? '' : ` (${iv.hostname})`}`)}</text></g>`)
  })
  const tx = x(t)
  parts.push(`<line x1="${tx.toFixed(1)}" y1="4" x2="${tx.toFixed(1)}" y2="${h - 24}" class="instant"/><text x="${Math.min(W - 4, tx + 3).toFixed(1)}" y="14" class="instantlabel" text-anchor="${tx > W * 0.7 ? 'end' : 'start'}">asked: ${esc(inZone(r.question.instant, r.time_zone))}</text>`)
  parts.push('</svg>')
  return parts.join('')
}

function intervalsTable (r: EvidenceReport): string {
  const rows = r.timeline.map((iv) => `<tr class="${iv.role}"><td>${esc(iv.role)}</td><td>${esc(who(iv))}</td><td>${esc(iv.lease)}</td><td>${when(iv.start, r.time_zone, 'before collection')}</td><td>${when(iv.end, r.time_zone, 'open')}</td><td>${esc(iv.end_reason)}</td><td>${esc(iv.certainty)}</td><td>${esc((iv.servers ?? [iv.scope]).join(' '))}</td></tr>`)
  return `<table><thead><tr><th></th><th>Client</th><th>Lease</th><th>From</th><th>Until</th><th>Ended by</th><th>Certainty</th><th>Servers</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function evidenceList (r: EvidenceReport): string {
  if (r.evidence.length === 0) return '<p>No evidence lines: no interval was found.</p>'
  return r.evidence.map((e, n) => {
    const iv = r.timeline[e.interval]
    const s = e.source
    const where = [
      s.host === undefined ? '' : `server ${s.host}`,
      s.file === undefined ? '' : `file ${s.file}`,
      s.offset === undefined ? '' : `byte offset ${s.offset}`,
      s.syslog === undefined ? '' : `syslog ${JSON.stringify(s.syslog)}`,
      s.source_id === undefined ? '' : `source ${s.source_id}`,
      s.ingested === undefined ? '' : `read ${s.ingested}`
    ].filter((x) => x !== '').join(' · ')
    const proof = e.chain === undefined ? 'in no link of the store\'s chain (stored before the store kept one)' : `chain link ${e.chain.seq}: ${e.chain.link}`
    return `<div class="line"><div class="meta">${n + 1}. ${esc(iv?.role ?? '')} · ${when(e.time, r.time_zone, '')} · id ${esc(e.id)}</div><pre>${esc(e.raw)}</pre><div class="src">${esc(where)}<br>${esc(proof)}</div></div>`
  }).join('')
}

const CSS = `
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111; max-width: 186mm; margin: 0 auto; padding: 8mm 0; }
h1 { font-size: 16pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; break-after: avoid; }
.answer { font-size: 12pt; padding: 3mm; border: 2px solid #333; margin: 3mm 0; break-inside: avoid; }
.held { border-color: #1a7f37; } .no-holder, .not-covered, .gap, .error, .bad-input { border-color: #b35900; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 1mm 4mm; margin: 0; } dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; } th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
tr.holder td { background: #eef7f0; } th { white-space: nowrap; } td:first-child { white-space: nowrap; }
.utc { color: #555; font-size: 8.5pt; }
svg { display: block; margin: 2mm 0; break-inside: avoid; }
svg .tick { stroke: #ddd; } svg .ticklabel { font-size: 9px; fill: #444; } svg .label { font-size: 10px; fill: #111; }
svg .iv rect { fill: #9bb7d4; stroke: #345; } svg .iv.holder rect { fill: #7cc48f; stroke: #1a5; } svg rect.open { stroke-dasharray: 4 2; }
svg .instant { stroke: #c00; stroke-width: 1.5; } svg .instantlabel { font-size: 10px; fill: #c00; }
.line { break-inside: avoid; margin: 0 0 3mm; } .meta, .src { font-size: 8.5pt; color: #444; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; word-break: break-all; font: 8.5pt/1.35 ui-monospace, "DejaVu Sans Mono", monospace; background: #f5f5f5; border: 1px solid #ddd; padding: 1.5mm; margin: 1mm 0; }
.proof { font-size: 9pt; overflow-wrap: anywhere; }
`

/** The report as a self-contained HTML document. */
export function reportHtml (r: EvidenceReport): string {
  const q = r.question
  const coverage = r.answer.coverage === undefined ? 'none' : `${inZone(r.answer.coverage.from, r.time_zone)} … ${inZone(r.answer.coverage.to, r.time_zone)} (${r.time_zone})`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Who held ${esc(q.address)} at ${esc(q.instant)} — keatrail evidence report</title>
<style>${CSS}</style>
<script type="application/json" id="keatrail-report">${embeddedJson(r)}</script>
</head><body>
<h1>Who held ${esc(q.address)} at ${esc(inZone(q.instant, r.time_zone))} ${esc(r.time_zone)}${r.time_zone === 'UTC' ? '' : ` (${esc(inZone(q.instant, 'UTC'))} UTC)`}?</h1>
<div class="answer ${esc(r.answer.status)}"><strong>${esc(r.answer.status)}</strong>: ${esc(r.answer.reason)}</div>
<h2>Question</h2>
<dl><dt>Address</dt><dd>${esc(q.address)}</dd><dt>Time as asked</dt><dd>${esc(q.time)}</dd><dt>Read as</dt><dd>${esc(q.instant)} (zone-less times in ${esc(r.time_zone)})</dd>${q.scope === undefined ? '' : `<dt>Servers</dt><dd>${esc(q.scope)}</dd>`}<dt>Logs collected</dt><dd>${esc(coverage)}</dd>${r.answer.gaps === undefined ? '' : `<dt>Known gaps</dt><dd>${esc(r.answer.gaps.map((g) => `${g.from} … ${g.to} (${g.reason})`).join('; '))}</dd>`}</dl>
<h2>Lease intervals</h2>
${timeline(r)}
${intervalsTable(r)}
<h2>Evidence: the log lines, verbatim</h2>
${evidenceList(r)}${r.evidence_truncated === true ? `<p>More evidence lines exist than one report holds: the first ${r.evidence.length} are shown.</p>` : ''}
<h2>Integrity</h2>
<p class="proof">${r.chain === undefined ? 'This store keeps no tamper-evidence chain.' : `Made against chain head <strong>${esc(r.chain.link)}</strong> (link ${r.chain.seq}, stored ${esc(r.chain.time)}). Every evidence line above names the link that covers it. To check that none was altered after collection: <code>keatrail verify --report &lt;this file&gt;</code> on the store (it re-computes the chain, finds this head in it, and compares each line with the stored record).`}</p>
<dl><dt>Made</dt><dd>${esc(r.made)}</dd><dt>keatrail</dt><dd>${esc(r.versions.keatrail)} (parser rules ${r.versions.parser})</dd><dt>Times shown in</dt><dd>${esc(r.time_zone)}${r.time_zone === 'UTC' ? '' : ' and UTC'}</dd></dl>
</body></html>
`
}
