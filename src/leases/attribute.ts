import { LocalTimeResolver } from '../parse/time/zone.js'
import { parseAddress } from './address.js'
import { holderAt } from './query.js'
import type { Holder, LeaseStore } from './types.js'

/**
 * Batch attribution (issue 22): the rows of an abuse report or a legal request — an address, a
 * time, anything else — each answered with who held the address then, as `keatrail lease at`
 * would, in one row. A row that cannot be answered says why and never stops the batch.
 */

/** What an answered row adds to the input's columns, in this order. */
export const ATTRIBUTION_COLUMNS = [
  'status', 'reason', 'mac', 'client_id', 'duid', 'iaid', 'hostname', 'lease', 'start', 'end', 'end_reason', 'certainty', 'servers', 'evidence'
] as const
export type AttributionColumn = typeof ATTRIBUTION_COLUMNS[number]

/**
 * held: a holder was found (several, joined by " | ", when a DHCPv6 address lies in a delegated
 * prefix and was also leased itself); no-holder: keatrail has the logs of that time and nobody
 * held it; not-covered: keatrail has no logs of that time; gap: input of that time is known to
 * be lost; bad-input: the row's address or time cannot be read.
 */
export type AttributionStatus = 'held' | 'no-holder' | 'not-covered' | 'gap' | 'bad-input'

export type Attribution = Record<AttributionColumn, string>

/** The most rows one API request may ask (its body is bounded too). */
export const MAX_ATTRIBUTE_ROWS = 100_000

export interface AttributeOptions {
  /** Whether the first row may be a header naming the columns (false: every row is data). */
  header?: boolean
  /** IANA zone of times written without one (`--tz`); without it such a row is bad input. */
  timeZone?: string
  /** Only this Kea server's (or lease domain's) history, as `lease at --scope`. */
  scope?: string
  now?: number
}

const MONTHS = 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ')

/**
 * The instant a report's time names. Accepted: RFC 3339 (`2026-11-24T04:16:00Z`, any offset,
 * `T` or a space); `2026-11-24 04:16:00 UTC` (or GMT, or a numeric offset after a space); epoch
 * seconds (9–10 digits, with an optional fraction) or milliseconds (13 digits); `24/Nov/2026:04:16:00 +0000`
 * (web server logs). A time without a zone is read in `zone`; without one it is refused.
 * Throws an Error whose message is the reason.
 */
export function reportTime (text: string, zone: LocalTimeResolver | undefined): number {
  const s = text.trim()
  if (/^\d{9,10}(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000)
  if (/^\d{13}$/.test(s)) return Number(s)
  const clf = /^(\d{1,2})\/([A-Za-z]{3})\/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})$/.exec(s)
  if (clf !== null) {
    const month = MONTHS.indexOf((clf[2] as string).toLowerCase())
    if (month < 0) throw new Error(`unknown month in ${JSON.stringify(text)}`)
    const iso = `${clf[3]}-${String(month + 1).padStart(2, '0')}-${(clf[1] as string).padStart(2, '0')}T${clf[4]}:${clf[5]}:${clf[6]}${(clf[7] as string).slice(0, 3)}:${(clf[7] as string).slice(3)}`
    return checked(Date.parse(iso), text)
  }
  const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(\.\d{1,9})?)?\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?$/i.exec(s)
  if (m === null) throw new Error(`time ${JSON.stringify(text)} is not RFC 3339, "YYYY-MM-DD HH:MM:SS UTC", epoch seconds or milliseconds`)
  const [, y, mo, d, h, mi, sec, frac, off] = m as unknown as [string, string, string, string, string, string, string | undefined, string | undefined, string | undefined]
  const ms = frac === undefined ? 0 : Math.floor(Number(`0${frac}`) * 1000)
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec ?? 0), ms)
  const back = new Date(wall)
  if (back.getUTCMonth() !== Number(mo) - 1 || back.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(sec ?? 0) > 59) throw new Error(`time ${JSON.stringify(text)} is not a valid date`)
  if (off === undefined) {
    if (zone === undefined) throw new Error(`time ${JSON.stringify(text)} has no time zone: give --tz (an IANA zone) or write the offset`)
    return zone.resolve(wall)
  }
  if (/^(Z|UTC|GMT)$/i.test(off)) return wall
  const sign = off.startsWith('-') ? -1 : 1
  const digits = off.slice(1).replace(':', '')
  return wall - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000
}

function checked (ms: number, text: string): number {
  if (Number.isNaN(ms)) throw new Error(`time ${JSON.stringify(text)} is not a valid date`)
  return ms
}

function empty (status: AttributionStatus, reason: string): Attribution {
  const out = Object.fromEntries(ATTRIBUTION_COLUMNS.map((c) => [c, ''])) as Attribution
  out.status = status
  out.reason = reason
  return out
}

function joined (holders: readonly Holder[], pick: (h: Holder) => string | number | undefined | null): string {
  const values = holders.map((h) => { const v = pick(h); return v === undefined || v === null ? '' : String(v) })
  return values.every((v) => v === '') ? '' : values.join(' | ')
}

/**
 * One row's answer. A zone-less time resolves on its own (a report's rows are in no time order):
 * in a DST fold, the earlier of the two instants.
 */
export async function attributeOne (store: LeaseStore, address: string, time: string, opts: AttributeOptions = {}): Promise<Attribution> {
  let t: number
  try {
    parseAddress(address.trim())
    t = reportTime(time, opts.timeZone === undefined ? undefined : new LocalTimeResolver(opts.timeZone))
  } catch (err) {
    return empty('bad-input', (err as Error).message)
  }
  const a = await holderAt(store, address.trim(), t, opts.scope, opts.now)
  if (a.holders.length === 0) {
    if (a.gaps !== undefined) return empty('gap', `input known to be lost: ${a.gaps.map((g) => `${g.from} … ${g.to} (${g.reason})`).join('; ')}`)
    if (!a.covered) return empty('not-covered', a.coverage === undefined ? 'keatrail has no logs of this server' : `keatrail has logs from ${a.coverage.from} to ${a.coverage.to}`)
    const near = [a.before === undefined ? '' : `before: ${a.before.mac ?? a.before.duid ?? a.before.client_id ?? '?'} until ${a.before.end ?? '?'} (${a.before.end_reason})`,
      a.after === undefined ? '' : `after: ${a.after.mac ?? a.after.duid ?? a.after.client_id ?? '?'} from ${a.after.start ?? '?'}`].filter((x) => x !== '')
    return empty('no-holder', `nobody held ${a.address} at ${a.time}${near.length === 0 ? '' : `; ${near.join('; ')}`}`)
  }
  const hs = a.holders
  const out: Attribution = {
    status: 'held',
    reason: a.covered ? '' : `the time lies outside the logs keatrail has${a.coverage === undefined ? '' : ` (${a.coverage.from} … ${a.coverage.to})`}`,
    mac: joined(hs, (h) => h.mac),
    client_id: joined(hs, (h) => h.client_id),
    duid: joined(hs, (h) => h.duid),
    iaid: joined(hs, (h) => h.iaid),
    hostname: joined(hs, (h) => h.hostname),
    lease: joined(hs, (h) => h.lease),
    start: joined(hs, (h) => h.start ?? 'before collection'),
    end: joined(hs, (h) => h.end ?? 'open'),
    end_reason: joined(hs, (h) => h.end_reason),
    certainty: joined(hs, (h) => h.certainty),
    servers: joined(hs, (h) => (h.servers ?? [h.scope]).join(' ')),
    evidence: joined(hs, (h) => h.evidence.join(' '))
  }
  return out
}

const ADDRESS_HEADER = /^(address|addr|ip|ip[ _-]?address|src[ _-]?ip|source[ _-]?ip|ip[ _-]?src|client[ _-]?ip)$/i
const TIME_HEADER = /^(time|timestamp|date|datetime|date[ _-]?time|time[ _-]?utc|utc|seen|first[ _-]?seen)$/i

/** Rows answered between two turns of the event loop (~0.2 ms each on SQLite: ~5 ms). */
const YIELD_EVERY = 25

export interface AttributionRow {
  /** The input's cells, by the input's column names (or address, time, column3 …). */
  input: Record<string, string>
  answer: Attribution
}

/**
 * Answers each row of `rows` (a report's cells, the first row possibly a header naming the
 * address and time columns; otherwise they are the first two) in order, calling `emit` with
 * the column names once and then each answered row (awaited). Rows the CSV reader could not read arrive
 * as `{ bad: reason }` and are answered bad-input. Returns the count of each status.
 */
export async function attributeRows (
  store: LeaseStore,
  rows: AsyncIterable<string[] | { bad: string, raw: string }>,
  emit: { columns: (names: string[]) => void, row: (r: AttributionRow) => void | Promise<void> },
  opts: AttributeOptions = {}
): Promise<Record<AttributionStatus, number>> {
  const counts: Record<AttributionStatus, number> = { held: 0, 'no-holder': 0, 'not-covered': 0, gap: 0, 'bad-input': 0 }
  let names: string[] | undefined
  let addressAt = 0
  let timeAt = 1
  const nameOf = (i: number): string => names?.[i] ?? (i === 0 ? 'address' : i === 1 ? 'time' : `column${i + 1}`)
  const start = (header: string[] | undefined, width: number): void => {
    if (header !== undefined) {
      names = header
      const a = header.findIndex((h) => ADDRESS_HEADER.test(h.trim()))
      const t = header.findIndex((h) => TIME_HEADER.test(h.trim()))
      if (a >= 0) addressAt = a
      if (t >= 0) timeAt = t
    }
    emit.columns([...Array.from({ length: Math.max(width, header?.length ?? 0, 2) }, (_, i) => nameOf(i)), ...ATTRIBUTION_COLUMNS])
  }
  let first = true
  let n = 0
  for await (const row of rows) {
    // Each answer is a few synchronous reads (SQLite): let timers and sockets run between every
    // few dozen, or a batch of 100,000 rows would hold the event loop for its whole length.
    if (++n % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve))
    if (!Array.isArray(row)) {
      if (first) { start(undefined, 2); first = false }
      counts['bad-input']++
      await emit.row({ input: { [nameOf(0)]: row.raw }, answer: empty('bad-input', row.bad) })
      continue
    }
    if (first) {
      first = false
      const header = opts.header !== false && row.length >= 2 && !readable(row[0] ?? '', row[1] ?? '', opts)
      start(header ? row : undefined, row.length)
      if (header) continue
    }
    const input = Object.fromEntries(row.map((v, i) => [nameOf(i), v]))
    const address = row[addressAt]
    const time = row[timeAt]
    const answer = address === undefined || time === undefined || address.trim() === '' || time.trim() === ''
      ? empty('bad-input', `a row needs an address and a time (columns ${nameOf(addressAt)} and ${nameOf(timeAt)})`)
      : await attributeOne(store, address, time, opts)
    counts[answer.status as AttributionStatus]++
    // The caller's await is the backpressure: a slow reader of the answers slows the batch.
    await emit.row({ input, answer })
  }
  if (first) start(undefined, 2)
  return counts
}

/** Whether a first row reads as data: its address or its time can be read (else a header). */
function readable (address: string, time: string, opts: AttributeOptions): boolean {
  try { parseAddress(address.trim()); return true } catch { /* not an address */ }
  try { reportTime(time, opts.timeZone === undefined ? undefined : new LocalTimeResolver(opts.timeZone)); return true } catch { return false }
}
