/// <reference lib="dom" />
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EvidenceReport } from '../../src/leases/report.js'
import { packLines, unpackLines } from '../../src/store/sqlite/blocks/codec.js'
import { runCli } from '../helpers/cli.js'
import { KEA_FIXTURES, ROOT } from '../helpers/fixtures.js'

// Issue 22, part 2: `keatrail lease report` — one question answered with the intervals around
// it, every evidence line verbatim with where it was read and the chain link covering it; the
// HTML checked in a real browser (Debian's chromium) and printed to A4; `keatrail verify
// --report` re-checks it against the store, and fails once a line is altered behind keatrail.

const CHROMIUM = '/usr/bin/chromium'
const unavailable = existsSync(CHROMIUM) ? '' : 'chromium is not installed (apt-get install chromium)'
const ARTIFACTS = join(ROOT, 'test', 'artifacts')
const LOG = join(KEA_FIXTURES, 'captured', 'kea-dhcp4-INFO-file.log')
// 192.0.2.10 in the real Kea 2.2 capture: client 02-00-00-00-00-0A 18:02:27.677 … 18:02:30.681
// (released), then 00-0C-01-02-03-3E from 18:02:38.632.

/** The line of the captured log at a byte offset (what the report says it read there). */
function lineAt (offset: number): string {
  const buf = readFileSync(LOG)
  const end = buf.indexOf(10, offset)
  return buf.subarray(offset, end < 0 ? buf.length : end).toString('utf8')
}

describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`keatrail lease report${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
  let dir = ''
  let browser: Browser
  beforeAll(async () => {
    if (unavailable !== '') throw new Error(`CI needs chromium: ${unavailable}`)
    mkdirSync(ARTIFACTS, { recursive: true })
    dir = mkdtempSync(join(tmpdir(), 'kt-report-'))
    const r = await runCli(['import', '--data-dir', dir, '--host', 'kea-a', LOG])
    expect(r.code, r.err).toBe(0)
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  }, 60_000)
  afterAll(async () => { await browser?.close() })

  it('answers as lease at does, with the holder before, every evidence line as the log has it at its offset, and the chain link covering it', async () => {
    const r = await runCli(['lease', 'report', '192.0.2.10', '2026-11-24 18:02:45 UTC', '--data-dir', dir, '--format', 'json'])
    expect(r.code, r.err).toBe(0)
    const rep = JSON.parse(r.out) as EvidenceReport
    const at = JSON.parse((await runCli(['lease', 'at', '192.0.2.10', '2026-11-24T18:02:45Z', '--data-dir', dir, '--json'])).out) as { holders: Array<{ mac: string, evidence: string[] }> }
    expect(rep.answer.status).toBe('held')
    expect(rep.timeline.map((iv) => [iv.role, iv.mac])).toEqual([['before', '02-00-00-00-00-0A'], ['holder', '00-0C-01-02-03-3E']])
    expect(rep.timeline[1]?.evidence).toEqual(at.holders[0]?.evidence)
    // Every evidence id of both intervals, each line exactly the log's line at the offset it names.
    expect(rep.evidence.map((e) => e.id)).toEqual(rep.timeline.flatMap((iv) => iv.evidence.slice(0, 20)))
    for (const e of rep.evidence) {
      expect(e.source.file).toBe(LOG)
      expect(e.raw).toBe(lineAt(e.source.offset as number))
      expect(e.chain?.link).toMatch(/^[0-9a-f]{64}$/)
    }
    expect(rep.chain?.link).toMatch(/^[0-9a-f]{64}$/)
    expect(rep.question).toEqual({ address: '192.0.2.10', time: '2026-11-24 18:02:45 UTC', instant: '2026-11-24T18:02:45.000Z' })

    // Between the two: nobody, the one before and the one after on the timeline.
    const gap = JSON.parse((await runCli(['lease', 'report', '192.0.2.10', '2026-11-24T18:02:35Z', '--data-dir', dir, '--format', 'json'])).out) as EvidenceReport
    expect([gap.answer.status, gap.timeline.map((iv) => iv.role)]).toEqual(['no-holder', ['before', 'after']])
    const bad = await runCli(['lease', 'report', '192.0.2.300', '2026-11-24T18:02:35Z', '--data-dir', dir])
    expect([bad.code, bad.err.trim().split('\n').length]).toEqual([2, 1])
    expect(bad.err).toMatch(/^keatrail: KEATRAIL_ERR_\w+: .*192\.0\.2\.300/)
  })

  it('is a self-contained HTML page that shows the answer, timeline and lines in chromium and prints on A4; verify --report holds until a line is altered', async () => {
    const file = join(dir, 'report.html')
    const made = await runCli(['lease', 'report', '192.0.2.10', '2026-11-24 19:02:45', '--tz', 'Europe/Berlin', '--data-dir', dir, '--out', file])
    expect(made.code, made.err).toBe(0)
    expect(made.err).toMatch(/^held: held by 00-0C-01-02-03-3E client-id 01:00:0c:01:02:03:3e\n/)
    const rep = JSON.parse((await runCli(['lease', 'report', '192.0.2.10', '2026-11-24 19:02:45', '--tz', 'Europe/Berlin', '--data-dir', dir, '--format', 'json'])).out) as EvidenceReport

    const page = await browser.newPage({ viewport: { width: 794, height: 1123 } })
    const requests: string[] = []
    page.on('request', (req) => { if (!req.url().startsWith('file:')) requests.push(req.url()) })
    await page.goto(`file://${file}`)
    const seen = await page.evaluate(() => ({
      h1: document.querySelector('h1')?.textContent ?? '',
      answer: document.querySelector('.answer')?.textContent ?? '',
      bars: Array.from(document.querySelectorAll('svg g.iv')).map((g) => g.getAttribute('class')),
      instant: document.querySelectorAll('svg line.instant').length,
      lines: Array.from(document.querySelectorAll('.line pre')).map((p) => p.textContent),
      overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      scripts: Array.from(document.querySelectorAll('script')).map((s) => s.getAttribute('type'))
    }))
    expect(seen.h1).toBe('Who held 192.0.2.10 at 2026-11-24 19:02:45.000 Europe/Berlin (2026-11-24 18:02:45.000 UTC)?')
    expect(seen.answer).toBe('held: held by 00-0C-01-02-03-3E client-id 01:00:0c:01:02:03:3e')
    expect(seen.bars).toEqual(['iv before', 'iv holder'])
    expect(seen.instant).toBe(1)
    expect(seen.lines).toEqual(rep.evidence.map((e) => e.raw))
    expect(seen.overflow).toBeLessThanOrEqual(0)
    // Nothing runs and nothing is fetched: the only script element is the report's data.
    expect(seen.scripts).toEqual(['application/json'])
    expect(requests).toEqual([])
    await page.screenshot({ path: join(ARTIFACTS, 'evidence-report.png'), fullPage: true })
    const pdf = await page.pdf({ format: 'A4', path: join(ARTIFACTS, 'evidence-report.pdf') })
    // A4 pages (595 × 842 points), a few of them.
    const text = pdf.toString('latin1')
    expect(text).toMatch(/\/MediaBox \[0 0 59[56](\.\d+)? 84[123](\.\d+)?\]/)
    expect((text.match(/\/Type \/Page\b/g) ?? []).length).toBeLessThanOrEqual(3)
    await page.close()

    const ok = await runCli(['verify', '--data-dir', dir, '--report', file])
    expect(ok.code, ok.out + ok.err).toBe(0)
    expect(ok.out).toMatch(new RegExp(`^report: its ${rep.evidence.length} evidence lines are the stored records, each covered by the link it names$`, 'm'))

    // The page edited where a reader looks (a MAC in a shown line), its embedded data left alone.
    const edited = join(dir, 'edited.html')
    const page0 = readFileSync(file, 'utf8')
    const shown = page0.indexOf('<pre>')
    writeFileSync(edited, page0.slice(0, shown) + page0.slice(shown).replace('3e', '3f'))
    // Saved with CRLF line ends and a BOM (an editor on another system): not a change.
    const crlf = join(dir, 'crlf.html')
    writeFileSync(crlf, '\uFEFF' + page0.replace(/\n/g, '\r\n'))
    expect((await runCli(['verify', '--data-dir', dir, '--report', crlf])).code).toBe(0)
    const tampered = await runCli(['verify', '--data-dir', dir, '--report', edited])
    expect(tampered.code).toBe(1)
    expect(tampered.out).toContain('report: the evidence lines the page shows are not those its data holds: it was changed after keatrail made it')

    // One evidence line's stored record altered (its MAC's last digit), the block packed again.
    const target = rep.evidence[rep.evidence.length - 1] as EvidenceReport['evidence'][number]
    const db = new Database(join(dir, 'keatrail.db'))
    for (const row of db.prepare('SELECT id, codec, payload FROM blocks').all() as Array<{ id: number, codec: 1 | 2, payload: Buffer }>) {
      const lines = unpackLines(row.payload, row.codec)
      const i = lines.originals.indexOf(target.raw)
      if (i < 0) continue
      lines.originals[i] = target.raw.replace('3e', '3f')
      db.prepare('UPDATE blocks SET payload = ? WHERE id = ?').run(packLines(lines, row.codec), row.id)
    }
    db.close()
    const altered = await runCli(['verify', '--data-dir', dir, '--report', file])
    expect(altered.code).toBe(1)
    expect(altered.out).toMatch(/^BROKEN at link \d+ .*: a record differs from what was stored: record /m)
    expect(altered.out).toContain(`report: line ${rep.evidence.length} (${target.id}): differs from the stored record`)
  }, 60_000)
})
