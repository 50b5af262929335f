import { PARSER_VERSION } from '../parse/derivation.js'
import type { KeaEvent } from '../parse/event.js'
import { MAX_PAGE_SIZE, type ChainHead, type ChainProof, type Store } from '../store/types.js'
import { attributionOf, reportTime, type AttributionStatus } from './attribute.js'
import { parseAddress } from './address.js'
import { holderAt, holdersAround } from './query.js'
import type { Holder } from './types.js'
import { LocalTimeResolver } from '../parse/time/zone.js'

// An evidence report (issue 22): one question — who held this address at this time — answered
// with everything a third party needs to check the answer: the intervals around it, every
// evidence line verbatim with where it was read, the versions that read it, and the link of the
// store's tamper-evidence chain each line is covered by (`keatrail verify --report` re-checks).

/** Evidence lines per interval (the allocation, the renewals kept and the end), as the API's. */
export const REPORT_EVIDENCE_LINES = 20

export type TimelineRole = 'before' | 'holder' | 'after'

export interface ReportInterval extends Holder { role: TimelineRole }

export interface ReportEvidence {
  id: string
  time: string
  /** The raw record exactly as stored. */
  raw: string
  /** Index into `timeline` of the interval it is evidence of. */
  interval: number
  source: {
    host?: string
    source_id?: string
    file?: string
    offset?: number
    syslog?: Record<string, unknown>
    ingested?: string
  }
  /** The chain link covering the stored record (absent: stored before the store kept a chain). */
  chain?: ChainProof
}

export interface EvidenceReport {
  report: 'keatrail evidence report'
  format: 1
  made: string
  versions: { keatrail: string, parser: number }
  /** The zone the question's zone-less time was read in and the report's times are shown in (beside UTC). */
  time_zone: string
  question: { address: string, time: string, instant: string, scope?: string }
  answer: { status: AttributionStatus, reason: string, covered: boolean, coverage?: { from: string, to: string }, gaps?: Array<{ from: string, to: string, reason: string }> }
  timeline: ReportInterval[]
  evidence: ReportEvidence[]
  /** More evidence lines than one report holds (MAX_PAGE_SIZE): the first intervals' first. */
  evidence_truncated?: boolean
  /** The newest link when the report was made: `keatrail verify --head` / `--report` find it. */
  chain?: ChainHead
}

export interface ReportOptions {
  /** IANA zone for zone-less times and for display; default UTC. */
  timeZone?: string
  scope?: string
  keatrailVersion: string
  now?: number
}

/** Throws (the address's coded error, or a plain one for the time) unless the question can be read. */
export function checkReportQuestion (address: string, time: string, timeZone?: string): void {
  parseAddress(address.trim())
  reportTime(time, new LocalTimeResolver(timeZone ?? 'UTC'))
}

/** Builds the report of who held `address` at `time` (report time forms, as `lease attribute` reads them). */
export async function evidenceReport (store: Store, address: string, time: string, opts: ReportOptions): Promise<EvidenceReport> {
  const zone = opts.timeZone ?? 'UTC'
  const instant = reportTime(time, new LocalTimeResolver(zone))
  const a = await holderAt(store.leases, address.trim(), instant, opts.scope, opts.now)
  const row = attributionOf(a)
  const timeline: ReportInterval[] = []
  if (a.holders.length > 0) {
    // The holders, and who held the address just before the first began and just after the last
    // ended. A lease taken over ends at the very millisecond the next begins (superseded): the
    // one before may end at the first start, the one after begin at the last end.
    const starts = a.holders.map((h) => h.start === null ? instant : Date.parse(h.start))
    const ends = a.holders.map((h) => h.end === null ? instant : Date.parse(h.end))
    const around = await holdersAround(store.leases, address.trim(), Math.min(...starts), Math.max(...ends) - 1, opts.scope, opts.now)
    const mine = new Set(a.holders.map((h) => `${h.scope}|${h.lease}|${h.start ?? ''}`))
    const other = (h: Holder | undefined): h is Holder => h !== undefined && !mine.has(`${h.scope}|${h.lease}|${h.start ?? ''}`)
    if (other(around.before)) timeline.push({ ...around.before, role: 'before' })
    for (const h of a.holders) timeline.push({ ...h, role: 'holder' })
    if (other(around.after)) timeline.push({ ...around.after, role: 'after' })
  } else {
    if (a.before !== undefined) timeline.push({ ...a.before, role: 'before' })
    if (a.after !== undefined) timeline.push({ ...a.after, role: 'after' })
  }
  // At most MAX_PAGE_SIZE lines in all (getMany's bound): an answer of many holders (up to 1,000)
  // would otherwise ask for 20,000.
  const all = timeline.flatMap((iv, k) => iv.evidence.slice(0, REPORT_EVIDENCE_LINES).map((id) => ({ id, k })))
  const wanted = all.slice(0, MAX_PAGE_SIZE)
  const events = new Map((await store.getMany(wanted.map((w) => w.id))).map((e) => [e.event.id, e]))
  const proofs = store.chain === undefined ? [] : await store.chain.proofs(wanted.map((w) => w.id))
  const evidence: ReportEvidence[] = []
  wanted.forEach((w, j) => {
    const e = events.get(w.id)
    if (e === undefined) return
    const proof = proofs[j]
    evidence.push({ id: w.id, time: e['@timestamp'], raw: e.event.original, interval: w.k, source: sourceOf(e), ...(proof === undefined ? {} : { chain: proof }) })
  })
  const head = await store.chain?.head()
  return {
    report: 'keatrail evidence report',
    format: 1,
    made: new Date(opts.now ?? Date.now()).toISOString(),
    versions: { keatrail: opts.keatrailVersion, parser: PARSER_VERSION },
    time_zone: zone,
    question: { address: address.trim(), time, instant: new Date(instant).toISOString(), ...(opts.scope === undefined ? {} : { scope: opts.scope }) },
    answer: {
      status: row.status as AttributionStatus,
      reason: row.status === 'held' ? (row.reason === '' ? `held by ${describe(a.holders)}` : `held by ${describe(a.holders)}; ${row.reason}`) : row.reason,
      covered: a.covered,
      ...(a.coverage === undefined ? {} : { coverage: a.coverage }),
      ...(a.gaps === undefined ? {} : { gaps: a.gaps })
    },
    timeline,
    evidence,
    ...(all.length > wanted.length ? { evidence_truncated: true } : {}),
    ...(head === undefined ? {} : { chain: head })
  }
}

function describe (hs: readonly Holder[]): string {
  return hs.map((h) => [h.mac, h.client_id === undefined ? undefined : `client-id ${h.client_id}`, h.duid === undefined ? undefined : `DUID ${h.duid}`, h.hostname === undefined ? undefined : `(${h.hostname})`].filter((x) => x !== undefined).join(' ')).join(' and ')
}

function sourceOf (e: KeaEvent): ReportEvidence['source'] {
  return {
    ...(e.host?.name === undefined ? {} : { host: e.host.name }),
    ...(e.kea.source_id === undefined ? {} : { source_id: e.kea.source_id }),
    ...(e.log.file?.path === undefined ? {} : { file: e.log.file.path }),
    ...(e.log.offset === undefined ? {} : { offset: e.log.offset }),
    ...(e.log.syslog === undefined ? {} : { syslog: e.log.syslog as Record<string, unknown> }),
    ...(e.event.ingested === undefined ? {} : { ingested: e.event.ingested })
  }
}
