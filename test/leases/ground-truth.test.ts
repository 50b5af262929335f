import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAddressOrPrefix } from '../../src/leases/address.js'
import { history, holderAt } from '../../src/leases/query.js'
import { attributeRows, type AttributionRow } from '../../src/leases/attribute.js'
import type { Holder, HolderAnswer } from '../../src/leases/types.js'
import { escapeRegex } from '../../src/parse/time/strftime.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { ROOT } from '../helpers/fixtures.js'
import { KEA_VERSIONS, KeaLab, keaRuntime, type KeaRuntime } from '../helpers/kea.js'
import { CsvTailer, truthIntervals, type TruthInterval } from '../helpers/lease-truth.js'

// Lease history against Kea's own lease file, for each Kea version tested for real (2.2 from the
// host's Debian 12 packages; 2.6 and 3.0 from Debian trixie and sid in chroots,
// scripts/kea-chroot.sh). Real kea-dhcp4 and kea-dhcp6 in a network namespace, perfdhcp with more clients than pool entries (addresses and prefixes pass
// between clients), renewals, releases, 8–10 s lifetimes with reclamation, INFO logs rotating.
// keatrail imports the logs; every answer is checked against the memfile CSV, whose rows are
// stamped with the moment they appeared. Points within ±1 s of a change in the CSV are not
// judged (log and CSV are written at slightly different moments); they are reported. A CSV
// time in whole seconds stands for that whole second, and ±1 s is measured from its edges.

const SLACK = 1000

interface Tally { judged: number, agreed: number, nearChange: number, nearChangeAgreed: number, failures: string[] }
const tally = (): Tally => ({ judged: 0, agreed: 0, nearChange: 0, nearChangeAgreed: 0, failures: [] })

/**
 * What a disagreement is about, for the failure message: the lease file rows (with the moment
 * each appeared) and Kea's log lines naming any of `needles` (an address, a DUID), in time
 * order, at most `max` of each; only those within `window` (epoch ms, the import's --tz UTC)
 * when given. A run that fails cannot be repeated; its evidence must be in the output (CI keeps
 * only that).
 */
function evidenceOf (needles: readonly string[], logFiles: readonly string[], tailer: CsvTailer, window?: readonly [number, number], max = 40): string {
  // A needle ends where an address, prefix or identifier ends (2001:db8:1::10 is not ::10c).
  const res = needles.filter((n) => n !== '').map((n) => new RegExp(`${escapeRegex(n)}(?=[,\\s/\\]]|$)`))
  const hit = (line: string): boolean => res.some((re) => re.test(line))
  const inWindow = (t: number): boolean => window === undefined || (t >= window[0] && t <= window[1])
  const logTime = (line: string): number => Date.parse(`${line.slice(0, 10)}T${line.slice(11, 23)}Z`)
  const logLines = logFiles.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => hit(l) && inWindow(logTime(l)))).sort()
  const rows = tailer.rows.filter((r) => hit(r.fields.join(',')) && inWindow(r.at)).map((r) => `${new Date(r.at).toISOString()} ${r.fields.join(',')}`)
  const cut = (xs: string[]): string[] => xs.length > max ? [...xs.slice(0, max / 2), `… ${xs.length - max} more …`, ...xs.slice(-max / 2)] : xs
  return [`  lease file rows (${rows.length}):`, ...cut(rows).map((l) => `    ${l}`), `  Kea log lines (${logLines.length}):`, ...cut(logLines).map((l) => `    ${l}`)].join('\n')
}

/** A time for a failure message; an open end (no time) as such, not a RangeError hiding the failure. */
const iso = (t: number): string => Number.isFinite(t) ? new Date(t).toISOString() : 'open'

function clientOf (h: Holder, family: 4 | 6): string {
  return family === 4 ? (h.hwaddr ?? '') : `${h.duid ?? ''}/${h.iaid ?? ''}`
}

/** The address to ask about: the lease itself, or one inside the delegated prefix. */
function probeAddress (lease: string): string {
  const [type, text] = lease.split('|') as [string, string]
  if (type !== 'IA_PD') return text
  return text.replace(/::\/\d+$/, '::42')
}

KEA_VERSIONS.forEach((version, n) => {
  const found = keaRuntime(version)
  const unavailable = typeof found === 'string' ? found : ''
  const rt = found as KeaRuntime
  describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`lease history against Kea ${version}'s lease file${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `kt-truth-${version}-`))
    const lab = new KeaLab(`kg${n}${process.pid % 1000}`, dir, rt)
    const tailers = { 4: new CsvTailer(lab.leaseFile(4)), 6: new CsvTailer(lab.leaseFile(6)) }
    let store: SqliteStore
    const truth: Record<4 | 6, TruthInterval[]> = { 4: [], 6: [] }
    let files = 0
    let started: string[] = []
    let logFiles: string[] = []

    beforeAll(async () => {
      if (unavailable !== '') throw new Error(`CI needs real Kea: ${unavailable}`)
      lab.up()
      const logs = join(dir, 'logs')
      mkdirSync(logs, { recursive: true })
      const expiry = { 'reclaim-timer-wait-time': 1, 'flush-reclaimed-timer-wait-time': 2, 'hold-reclaimed-time': 1 }
      const loggers = (family: 4 | 6): unknown[] => [{
        name: `kea-dhcp${family}`, severity: 'INFO',
        output_options: [{ output: join(logs, `kea-dhcp${family}.log`), maxsize: 204800, maxver: 100 }]
      }]
      await lab.startKea(4, {
        'valid-lifetime': 8, 'renew-timer': 3, 'rebind-timer': 6, 'expired-leases-processing': expiry,
        subnet4: [{ id: 1, subnet: '192.0.2.0/24', pools: [{ pool: '192.0.2.10 - 192.0.2.29' }] }],
        loggers: loggers(4)
      })
      await lab.startKea(6, {
        'server-id': { type: 'LL', htype: 1, identifier: '020000000001', persist: false },
        'preferred-lifetime': 7, 'valid-lifetime': 10, 'renew-timer': 3, 'rebind-timer': 6, 'expired-leases-processing': expiry,
        subnet6: [{
          id: 1, subnet: '2001:db8:1::/64', interface: lab.srvIf,
          pools: [{ pool: '2001:db8:1::100 - 2001:db8:1::113' }],
          'pd-pools': [{ prefix: '2001:db8:8000::', 'prefix-len': 52, 'delegated-len': 56 }]
        }],
        loggers: loggers(6)
      })
      tailers[4].start()
      tailers[6].start()
      // More clients (-R) than addresses (20) and prefixes (16); renewals (-f) and releases (-F).
      await Promise.all([
        lab.perfdhcp(['-r', '25', '-R', '60', '-f', '6', '-F', '3', '-p', '35']),
        lab.perfdhcp(['-e', 'address-and-prefix', '-r', '20', '-R', '50', '-f', '6', '-F', '3', '-p', '35'], 6)
      ])
      // Let the last leases run out and be reclaimed, then stop Kea (it flushes the lease file).
      await new Promise((resolve) => setTimeout(resolve, 13_000))
      await lab.stopDaemons()
      tailers[4].stop()
      tailers[6].stop()
      truth[4] = truthIntervals(tailers[4], 4)
      truth[6] = truthIntervals(tailers[6], 6)

      logFiles = readdirSync(logs).filter((f) => /^kea-dhcp[46]\.log(\.\d+)?$/.test(f)).map((f) => join(logs, f))
      files = logFiles.length
      started = logFiles.flatMap((f) => readFileSync(f, 'utf8').match(/DHCP[46]_STARTED .*/g) ?? [])
      execFileSync(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'import', '--data-dir', join(dir, 'data'), '--tz', 'UTC', ...logFiles], { stdio: ['ignore', 'ignore', 'inherit'] })
      store = new SqliteStore({ path: join(dir, 'data', 'keatrail.db') })
    }, 180_000)

    afterAll(async () => {
      await store?.close()
      lab.down()
    })

    it('Kea rotated its logs and passed addresses and prefixes between clients', () => {
      // The Kea under test is the version named: both daemons say so as they start.
      expect(started.sort()).toEqual([`DHCP4_STARTED Kea DHCPv4 server version ${rt.full} started`, `DHCP6_STARTED Kea DHCPv6 server version ${rt.full} started`])
      expect(files, 'rotated log files').toBeGreaterThan(2)
      for (const family of [4, 6] as const) {
        const perLease = new Map<string, Set<string>>()
        for (const iv of truth[family]) perLease.set(iv.lease, (perLease.get(iv.lease) ?? new Set()).add(iv.client))
        const shared = [...perLease.values()].filter((c) => c.size > 1).length
        expect(shared, `v${family} leases held by more than one client`).toBeGreaterThan(5)
      }
      expect(truth[6].some((iv) => iv.lease.startsWith('IA_PD|'))).toBe(true)
    })

    for (const family of [4, 6] as const) {
      it(`holderAt agrees with the v${family} lease file at every point not within ±1 s of a change`, async () => {
        const t = tally()
        const cov = await store.leases.coverage() as { from: number, to: number }
        const asked: Array<{ address: string, time: number, answer: HolderAnswer }> = []
        const byLease = new Map<string, TruthInterval[]>()
        for (const iv of truth[family]) byLease.set(iv.lease, [...(byLease.get(iv.lease) ?? []), iv])
        for (const [lease, ivs] of byLease) {
          const changes = ivs.flatMap((iv) => [[iv.start, iv.startWidth], [iv.end, iv.endWidth]] as const)
          const points: number[] = []
          ivs.forEach((iv, i) => {
            for (const f of [0.1, 0.3, 0.5, 0.7, 0.9]) points.push(Math.round(iv.start + (iv.end - iv.start) * f))
            const next = ivs[i + 1]
            const gapEnd = next === undefined ? cov.to : next.start
            if (gapEnd > iv.end) points.push(Math.round((iv.end + gapEnd) / 2))
          })
          for (const p of points) {
            if (p < cov.from || p > cov.to) continue
            const expected = ivs.filter((iv) => iv.start <= p && p < iv.end).map((iv) => iv.client)
            const answer = await holderAt(store.leases, probeAddress(lease), p)
            asked.push({ address: probeAddress(lease), time: p, answer })
            const type = lease.split('|')[0]
            const got = answer.holders.filter((h) => h.origin === 'log' && h.type === type).map((h) => clientOf(h, family))
            const ok = JSON.stringify(got) === JSON.stringify(expected)
            const near = changes.some(([c, width]) => p >= c - SLACK && p <= c + width + SLACK)
            if (near) { t.nearChange++; if (ok) t.nearChangeAgreed++; continue }
            t.judged++
            if (ok) t.agreed++
            else t.failures.push(`${lease} @ ${new Date(p).toISOString()}: lease file says ${JSON.stringify(expected)}, keatrail ${JSON.stringify(got)}`)
          }
        }
        for (const f of t.failures.slice(0, 3)) {
          const lease = f.split(' @ ')[0] as string
          process.stdout.write(`ground truth Kea ${version} v${family} disagrees: ${f}\n${evidenceOf([lease.split('|')[1] as string], logFiles, tailers[family])}\n`)
        }
        process.stdout.write(`ground truth Kea ${version} v${family}: ${t.agreed}/${t.judged} points agree (${t.judged === 0 ? 0 : (100 * t.agreed / t.judged).toFixed(2)} %); ` +
          `${t.nearChange} within ±1 s of a change, not judged (${t.nearChangeAgreed} of them agree)\n`)
        expect(t.failures.slice(0, 20)).toEqual([])
        expect(t.judged).toBeGreaterThan(150)

        // Every probe again as one row of a batch (keatrail lease attribute, issue 22): each row
        // answers what `lease at` answered — the same holders, intervals and evidence.
        async function * rows (): AsyncGenerator<string[]> {
          yield ['ip', 'timestamp', 'ticket']
          for (const [i, q] of asked.entries()) yield [q.address, new Date(q.time).toISOString(), `case-${i}`]
        }
        const answered: AttributionRow[] = []
        const counts = await attributeRows(store.leases, rows(), { columns: () => {}, row: (r) => { answered.push(r) } })
        expect(answered).toHaveLength(asked.length)
        const join = (hs: Holder[], pick: (h: Holder) => string): string => hs.map(pick).join(' | ')
        answered.forEach((r, i) => {
          const a = (asked[i] as { answer: HolderAnswer }).answer
          expect(r.input.ticket).toBe(`case-${i}`)
          expect(r.answer.status, r.input.ip).toBe(a.holders.length > 0 ? 'held' : a.gaps !== undefined ? 'gap' : a.covered ? 'no-holder' : 'not-covered')
          expect(r.answer.evidence).toBe(join(a.holders, (h) => h.evidence.join(' ')))
          expect(r.answer.start).toBe(join(a.holders, (h) => h.start ?? 'before collection'))
          expect(r.answer.end).toBe(join(a.holders, (h) => h.end ?? 'open'))
        })
        process.stdout.write(`ground truth Kea ${version} v${family}: ${asked.length} probes as one attribution batch, each row as lease at answered (${counts.held} held, ${counts['no-holder']} no-holder)\n`)
      })

      it(`historyOfClient gives every v${family} client the leases the lease file shows`, async () => {
        const byClient = new Map<string, TruthInterval[]>()
        for (const iv of truth[family]) byClient.set(iv.client, [...(byClient.get(iv.client) ?? []), iv])
        const failures: string[] = []
        let checked = 0
        // Two intervals of one lease and client with less than the slack between them are one
        // holding to within ±1 s, but only across an end known to the second (an expiry): an end
        // seen to the millisecond (a release, a removal row) is never bridged. keatrail's ends
        // from a lifetime get the same one-second width as the lease file's.
        type Span = { lease: string, start: number, end: number, startWidth: number, endWidth: number }
        const merged = (ivs: Span[]): Span[] => {
          const out: Span[] = []
          for (const iv of [...ivs].sort((a, b) => a.lease.localeCompare(b.lease) || a.start - b.start)) {
            const last = out[out.length - 1]
            if (last !== undefined && last.lease === iv.lease && last.endWidth > 0 && iv.start - (last.end + last.endWidth) <= SLACK) {
              if (iv.end > last.end) { last.end = iv.end; last.endWidth = iv.endWidth }
            } else out.push({ ...iv })
          }
          return out
        }
        for (const [client, ivs] of byClient) {
          const [duid, iaid] = client.split('/')
          // A MAC also finds the DHCPv6 leases of DUID-LL/LLT clients built on it (perfdhcp's are): compare v4 with v4.
          const got = family === 4
            ? (await history(store.leases, { mac: client })).filter((h) => h.type === 'V4')
            : (await history(store.leases, { duid: duid as string })).filter((h) => String(h.iaid) === iaid)
          const mine = merged(got.map((h) => ({ lease: `${h.type}|${h.type === 'IA_PD' ? h.prefix as string : parseAddressOrPrefix(h.address as string).text}`, start: Date.parse(h.start as string), end: Date.parse(h.end as string), startWidth: 0, endWidth: ['release', 'decline', 'deleted', 'superseded'].includes(h.end_reason) ? 0 : 999 })))
          const theirs = merged(ivs)
          checked++
          const same = mine.length === theirs.length && mine.every((m, i) => {
            const x = theirs[i] as Span
            const within = (t: number, at: number, width: number): boolean => t >= at - SLACK && t <= at + width + SLACK
            return m.lease === x.lease && within(m.start, x.start, x.startWidth) && within(m.end, x.end, x.endWidth)
          })
          if (!same && failures.length < 3) {
            // The spans only one side has, and what was logged and written around them: the
            // client's whole history would push them out of the evidence's bound.
            const key = (x: Span): string => `${x.lease} ${iso(x.start)}–${iso(x.end)}`
            const matched = (x: Span, ys: Span[]): boolean => ys.some((y) => y.lease === x.lease && Math.abs(y.start - x.start) <= SLACK + 999 && Math.abs(y.end - x.end) <= SLACK + 999)
            const differing = [...mine.filter((m) => !matched(m, theirs)), ...theirs.filter((t) => !matched(t, mine))]
            const spans = differing.length > 0 ? differing : [...mine, ...theirs]
            const times = spans.flatMap((x) => [x.start, x.end]).filter(Number.isFinite)
            const window = times.length === 0 ? undefined : [Math.min(...times) - 3000, Math.max(...times) + 3000] as const
            // The leases too: a row or line of another client (a stale reclamation, the next
            // holder) is part of what happened. A prefix as the lease file writes it, without its length.
            const leases = [...new Set(spans.map((x) => (x.lease.split('|')[1] as string).replace(/\/\d+$/, '')))]
            const needles = [family === 4 ? client : duid as string, ...leases]
            process.stdout.write(`ground truth Kea ${version} v${family} client ${client} disagrees${differing.length > 0 ? ` on ${[...new Set(differing.map(key))].join('; ')}` : ''}:\n${evidenceOf(needles, logFiles, tailers[family], window)}\n`)
          }
          if (!same) failures.push(`${client}: lease file ${JSON.stringify(theirs.map((x) => [x.lease, iso(x.start), iso(x.end)]))} keatrail ${JSON.stringify(mine.map((x) => [x.lease, iso(x.start), iso(x.end)]))}`)
        }
        // Kea 3.0's stale reclamations (test/helpers/lease-truth.ts): their ends judged between
        // the freeing row and the lease's next change; how many, said.
        const stale = truth[family].filter((iv) => iv.stale === true).length
        process.stdout.write(`ground truth Kea ${version} v${family}: ${checked - failures.length}/${checked} client histories agree; ${stale} holding(s) freed in the lease file by a stale reclamation the log does not show\n`)
        expect(failures.slice(0, 10)).toEqual([])
        expect(checked).toBeGreaterThan(20)
        // Seen only with 3.0's released-lease state: elsewhere the rule would be hiding something.
        if (version !== '3.0') expect(stale, 'stale reclamations').toBe(0)
      })
    }
  })
})
