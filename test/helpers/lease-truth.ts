import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs'
import { expect } from 'vitest'
import { deriveIntervals } from '../../src/leases/derive.js'
import type { LeaseDomains } from '../../src/leases/domains.js'
import { compareObservations, observeAll } from '../../src/leases/observe.js'
import type { LeaseInterval, LeaseObservation, LeaseStore } from '../../src/leases/types.js'
import { familyOf, WIPE_ACTION, wipeObservation, wipesOf, type LeaseWipe, type SubnetMap } from '../../src/leases/wipes.js'
import type { KeaEvent } from '../../src/parse/event.js'
import { parseBuffer } from './fixtures.js'

/** One full derivation of every key from all events at once: what any store must end up with. */
export function expectedIntervals (events: readonly KeaEvent[], domains?: LeaseDomains): Map<string, LeaseInterval[]> {
  const byKey = new Map<string, ReturnType<typeof observeAll>>()
  for (const o of observeAll(events, domains)) {
    const list = byKey.get(o.key) ?? []
    list.push(o)
    byKey.set(o.key, list)
  }
  // Each key with the wipes of its server: every one of them, whatever was stored when.
  const wipes = wipesOf(events, domains)
  const out = new Map<string, LeaseInterval[]>()
  for (const [key, obs] of byKey) out.set(key, deriveIntervals(everyWipe([...obs].sort(compareObservations), wipes)))
  return out
}

/**
 * A key's observations (sorted) with every wipe of its server and family from its first
 * observation's millisecond on, those it stores made again: the plain reading of what a wipe
 * does, against which WipeRegistry.merge (which keeps only the wipes that can change the
 * derivation) is checked.
 */
export function everyWipe (obs: readonly LeaseObservation[], wipes: readonly LeaseWipe[], subnets?: SubnetMap): LeaseObservation[] {
  const first = obs[0]
  if (first === undefined) return []
  const inSubnet = (w: LeaseWipe): boolean | undefined => w.subnet_id === 0 || subnets === undefined || subnets.size === 0 ? undefined : subnets.holds(first, w)
  const own = wipes.filter((w) => w.scope === first.scope && w.family === familyOf(first.type) && w.ts >= first.ts)
  const ids = new Set(own.map((w) => w.event_id))
  return [...obs.filter((o) => o.action !== WIPE_ACTION || !ids.has(o.event_id)), ...own.map((w) => wipeObservation(w, first, inSubnet(w)))].sort(compareObservations)
}

/**
 * Observations a store holds once every event is derived: one per lease event, and one per
 * interval a wipe ended or marked (the key keeps the wipe its evidence names).
 */
export function expectedObservations (events: readonly KeaEvent[]): number {
  const wipes = new Set(wipesOf(events).map((w) => w.event_id))
  let named = 0
  for (const ivs of expectedIntervals(events).values()) for (const iv of ivs) for (const id of iv.evidence) if (wipes.has(id)) named++
  return observeAll(events).length + named
}

/**
 * Ground truth for lease history from Kea's own memfile lease file, written independently of
 * keatrail's code. Kea appends one CSV row per lease change; a removal row (valid_lifetime 0)
 * carries no time of its own (its expire is the old cltt), so the tailer stamps every row with
 * the moment it appeared in the file.
 */
export class CsvTailer {
  private offset = 0
  private partial = ''
  private timer: NodeJS.Timeout | undefined
  readonly rows: Array<{ fields: string[], at: number }> = []
  header: string[] = []

  constructor (private readonly path: string, private readonly everyMs = 10) {}

  start (): void {
    this.timer = setInterval(() => { this.poll() }, this.everyMs)
  }

  poll (): void {
    if (!existsSync(this.path)) return
    const fd = openSync(this.path, 'r')
    try {
      const buf = Buffer.alloc(1 << 16)
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset)
        if (n <= 0) break
        this.offset += n
        const text = this.partial + buf.subarray(0, n).toString('utf8')
        const lines = text.split('\n')
        this.partial = lines.pop() ?? ''
        const at = Date.now()
        for (const line of lines) {
          if (line === '') continue
          if (this.header.length === 0) { this.header = line.split(','); continue }
          this.rows.push({ fields: line.split(','), at })
        }
      }
    } finally {
      closeSync(fd)
    }
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.poll()
  }
}

/**
 * start/end in epoch ms. Kea writes cltt and expire in whole seconds (truncated): such a time
 * means "somewhere in this second", so it carries a width of 999 ms; a time the tailer saw a
 * row appear carries none.
 */
export interface TruthInterval {
  lease: string
  client: string
  start: number
  end: number
  startWidth: number
  endWidth: number
  /**
   * Ended by a stale reclamation (Kea 3.0, see truthIntervals): the lease file freed the lease
   * at `end`, the log shows nothing until the lease's next change, `endWidth` later.
   */
  stale?: true
}

/**
 * Who held what when, per the lease file: per lease in file order, a holding row by the same
 * client before the lease ran out extends it; anything else ends it (at the row's appearance
 * for a removal or decline, at the expiry for a reclamation). v6 leases are keyed by type, and
 * clients by DUID + IAID.
 *
 * A stale reclamation: Kea 3.0 keeps a released lease (state 3) for the next client, and its
 * reclamation timer can write the released copy back as reclaimed (state 2, the previous
 * holder's, appearing before the new holding ran out) just after the lease was given to
 * another client (seen in CI: a released prefix given to DUID …:2f at 16:44:43.180, the stale
 * row, then the prefix given to …:30 at 43.230, …:2f's release refused as "belongs to another
 * client"). The lease file frees the lease there; at INFO the log shows nothing of it, so the
 * holding's end is known only to lie between that row and the lease's next change in the file
 * (or its own expiry): that span is its width, and the interval is marked `stale`.
 */
export function truthIntervals (t: CsvTailer, family: 4 | 6): TruthInterval[] {
  const col = (name: string): number => t.header.indexOf(name)
  const [cAddr, cValid, cExpire, cState] = [col('address'), col('valid_lifetime'), col('expire'), col('state')]
  const out: TruthInterval[] = []
  const open = new Map<string, TruthInterval>()
  // Per lease: an interval a stale reclamation ended, and the latest its end may be.
  const staleEnded = new Map<string, { iv: TruthInterval, until: number }>()
  /** A stale end's width: to the lease's next change at `next`, at most to the holding's expiry. */
  const widen = ({ iv, until }: { iv: TruthInterval, until: number }, next = Infinity): void => { iv.endWidth = Math.max(0, Math.min(next, until) - iv.end) }
  for (const { fields: f, at } of t.rows) {
    const type = family === 4 ? 'V4' : f[col('lease_type')] === '2' ? 'IA_PD' : 'IA_NA'
    const lease = type === 'IA_PD' ? `${f[cAddr]}/${f[col('prefix_len')]}` : f[cAddr] as string
    const client = family === 4 ? (f[col('hwaddr')] ?? '') : `${f[col('duid')] ?? ''}/${f[col('iaid')] ?? ''}`
    const valid = Number(f[cValid])
    const expire = Number(f[cExpire]) * 1000
    const state = Number(f[cState])
    const key = `${type}|${lease}`
    // A stale end's width runs to the lease's next holding, or to a row of its holder: not to
    // the flush timer's second copy of the stale row (Kea 3.0 writes one when it deletes it).
    const ended = staleEnded.get(key)
    if (ended !== undefined && ((valid > 0 && state === 0) || client === ended.iv.client)) {
      widen(ended, at)
      staleEnded.delete(key)
    }
    const cur = open.get(key)
    if (valid > 0 && state === 0) {
      const cltt = expire - valid * 1000
      if (cur !== undefined && cur.client === client && cltt <= cur.end) { cur.end = expire; cur.endWidth = 999; continue }
      if (cur !== undefined) { if (cltt < cur.end) { cur.end = cltt; cur.endWidth = 999 } out.push(cur) }
      open.set(key, { lease: `${type}|${lease}`, client, start: cltt, end: expire, startWidth: 999, endWidth: 999 })
      continue
    }
    if (cur === undefined) continue
    if (state === 2 && at < cur.end) {
      // Reclaimed before it ran out: Kea reclaims only what expired, so this is a stale copy
      // (another client's, or this client's from before it took the lease again).
      staleEnded.set(key, { iv: cur, until: cur.end })
      cur.end = at
      cur.endWidth = 0
      cur.stale = true
      out.push(cur)
      open.delete(key)
      continue
    }
    // A reclamation once the holding ran out leaves its end at the expiry the holding row gave
    // (a copy of an older holding carries an older expire); a removal, release or decline ends
    // it when the row appeared, if before that.
    if (at < cur.end) { cur.end = at; cur.endWidth = 0 }
    out.push(cur)
    open.delete(key)
  }
  // No later change: the end may lie anywhere up to the holding's own expiry.
  for (const ended of staleEnded.values()) widen(ended)
  out.push(...open.values())
  return out.sort((a, b) => a.start - b.start)
}

/**
 * Asserts that a store's lease history equals one full derivation of a log file (each key's
 * intervals: times, how they ended, the client), as the chaos and cluster tests check after
 * their faults. `scope`: the server whose history is asked (the log's own host). Returns the
 * intervals and keys compared.
 */
export async function expectDerivationOf (leases: Pick<LeaseStore, 'intervals'>, log: string, scope?: string): Promise<{ intervals: number, keys: number }> {
  const project = (ivs: Array<{ start: number | null, end: number | null, end_reason: string | null, hwaddr?: string, duid?: string }>): string[] =>
    ivs.map((iv) => `${iv.start}-${iv.end} ${iv.end_reason} ${iv.hwaddr ?? iv.duid ?? ''}`)
  const expected = expectedIntervals((await parseBuffer(readFileSync(log), { timeZone: 'UTC', ...(scope === undefined ? {} : { host: scope }) })).events)
  let intervals = 0
  for (const [key, want] of expected) {
    const [, type, lease] = key.split('|') as [string, string, string]
    const got = await leases.intervals({ ...(type === 'IA_PD' ? { prefix: lease } : { address: lease }), ...(scope === undefined ? {} : { scope }) })
    expect(project(got), key).toEqual(project(want))
    intervals += want.length
  }
  return { intervals, keys: expected.size }
}
