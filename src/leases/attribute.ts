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
 * be lost; bad-input: the row's address or time cannot be read; error: the store could not
 * answer that row (the reason says why; the batch goes on).
 */
export type AttributionStatus = 'held' | 'no-holder' | 'not-covered' | 'gap' | 'bad-input' | 'error'

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
  // Epoch fractions are cut, as ISO fractions are: a time is never moved into the next second.
  if (/^\d{9,10}(\.\d+)?$/.test(s)) return Math.floor(Number(s) * 1000)
  if (/^\d{13}$/.test(s)) return Number(s)
  const clf = /^(\d{1,2})\/([A-Za-z]{3})\/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})$/.exec(s)
  if (clf !== null) {
    const month = MONTHS.indexOf((clf[2] as string).toLowerCase())
    if (month < 0) throw new Error(`unknown month in ${JSON.stringify(text)}`)
    return fromParts(text, clf[3] as string, String(month + 1), clf[1] as string, clf[4] as string, clf[5] as string, clf[6] as string, undefined, clf[7], zone)
  }
  const m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(\.\d{1,9})?)?\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?$/i.exec(s)
  if (m === null) throw new Error(`time ${JSON.stringify(text)} is not RFC 3339, "YYYY-MM-DD HH:MM:SS UTC", epoch seconds or milliseconds`)
  return fromParts(text, m[1] as string, m[2] as string, m[3] as string, m[4] as string, m[5] as string, m[6] ?? '0', m[7], m[8], zone)
}

/** Checked calendar fields (no rolling over: 31 Feb is refused) to an instant. */
function fromParts (text: string, y: string, mo: string, d: string, h: string, mi: string, sec: string, frac: string | undefined, off: string | undefined, zone: LocalTimeResolver | undefined): number {
  const ms = frac === undefined ? 0 : Math.floor(Number(`0${frac}`) * 1000)
  // A leap second (23:59:60, RFC 3339) is the last instant of its minute's 59th second.
  const leap = Number(sec) === 60 && Number(h) === 23 && Number(mi) === 59
  const date = new Date(0)
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d))
  date.setUTCHours(Number(h), Number(mi), leap ? 59 : Number(sec), leap ? 999 : ms)
  if (date.getUTCFullYear() !== Number(y) || date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || (Number(sec) > 59 && !leap)) {
    throw new Error(`time ${JSON.stringify(text)} is not a valid date`)
  }
  const wall = date.getTime()
  if (off === undefined) {
    if (zone === undefined) throw new Error(`time ${JSON.stringify(text)} has no time zone: give --tz (an IANA zone) or write the offset`)
    return zone.resolve(wall)
  }
  if (/^(Z|UTC|GMT)$/i.test(off)) return wall
  const sign = off.startsWith('-') ? -1 : 1
  const digits = off.slice(1).replace(':', '')
  const oh = Number(digits.slice(0, 2))
  const om = Number(digits.slice(2))
  if (oh > 14 || om > 59) throw new Error(`time ${JSON.stringify(text)} has an impossible offset ${off}`)
  return wall - sign * (oh * 60 + om) * 60_000
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
 * One resolver per zone, shared by every row: with an unbounded fold tolerance it keeps no
 * state that matters (a repeated hour always resolves to its earlier instant, whatever rows came
 * before), and building one per row built an Intl.DateTimeFormat per row.
 */
const resolvers = new Map<string, LocalTimeResolver>()
function resolverFor (zone: string): LocalTimeResolver {
  let r = resolvers.get(zone)
  if (r === undefined) {
    if (resolvers.size >= 64) resolvers.clear()
    r = new LocalTimeResolver(zone, Number.POSITIVE_INFINITY)
    resolvers.set(zone, r)
  }
  return r
}

/**
 * One row's answer. A zone-less time resolves on its own (a report's rows are in no time order):
 * in a DST fold, the earlier of the two instants.
 */
export async function attributeOne (store: LeaseStore, address: string, time: string, opts: AttributeOptions = {}): Promise<Attribution> {
  let t: number
  try {
    parseAddress(address.trim())
    t = reportTime(time, opts.timeZone === undefined ? undefined : resolverFor(opts.timeZone))
  } catch (err) {
    return empty('bad-input', (err as Error).message)
  }
  let a: Awaited<ReturnType<typeof holderAt>>
  try {
    a = await holderAt(store, address.trim(), t, opts.scope, opts.now)
  } catch (err) {
    // The store could not answer this row (a read timeout, a damaged key): the batch goes on.
    return empty('error', (err as Error).message)
  }
  return attributionOf(a)
}

/** A `lease at` answer as one attribution row: its status, why, and the holders' fields joined. */
export function attributionOf (a: Awaited<ReturnType<typeof holderAt>>): Attribution {
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
    reason: [
      a.gaps === undefined ? '' : `input known to be lost around this time: ${a.gaps.map((g) => `${g.from} … ${g.to} (${g.reason})`).join('; ')}`,
      a.covered || a.gaps !== undefined ? '' : `the time lies outside the logs keatrail has${a.coverage === undefined ? '' : ` (${a.coverage.from} … ${a.coverage.to})`}`,
      a.truncated === true ? `more holders than one answer holds: the first ${hs.length}` : ''
    ].filter((x) => x !== '').join('; '),
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
  const counts: Record<AttributionStatus, number> = { held: 0, 'no-holder': 0, 'not-covered': 0, gap: 0, 'bad-input': 0, error: 0 }
  let names: string[] | undefined
  let addressAt = 0
  let timeAt = 1
  const nameOf = (i: number): string => names?.[i] ?? (i === 0 ? 'address' : i === 1 ? 'time' : `column${i + 1}`)
  const start = (header: string[] | undefined, width: number): void => {
    if (header !== undefined) {
      // Names as given, made unique and kept apart from the answer's columns (a report's own
      // `status` or `hostname` column must not be overwritten by the answer's).
      const seen = new Set<string>(ATTRIBUTION_COLUMNS)
      names = header.map((h, i) => {
        let name = h.trim() === '' ? `column${i + 1}` : h.trim()
        if (seen.has(name)) name = `${name}_input`
        for (let k = 2; seen.has(name); k++) name = `${name.replace(/_\d+$/, '')}_${k}`
        seen.add(name)
        return name
      })
      const a = header.findIndex((h) => ADDRESS_HEADER.test(h.trim()))
      const t = header.findIndex((h) => TIME_HEADER.test(h.trim()))
      // One recognised: the other is the first other column.
      addressAt = a >= 0 ? a : t === 0 ? 1 : 0
      timeAt = t >= 0 ? t : header.findIndex((_, i) => i !== addressAt)
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
      // A header names its address or time column; a first row that names neither is data
      // (answered, bad input or not), never dropped.
      const header = opts.header !== false && row.some((c) => ADDRESS_HEADER.test(c.trim()) || TIME_HEADER.test(c.trim()))
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

