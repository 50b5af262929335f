import { UsageError } from '../errors.js'
import { duidLinkLayer, parseAddressOrPrefix } from './address.js'
import { intervalId, sameClient } from './derive.js'
import type { LeaseInterval, LeaseType } from './types.js'

/**
 * One row of Kea's memfile lease file (kea-leases4.csv / kea-leases6.csv). Kea appends a row
 * for every lease change: a holding row has valid_lifetime > 0 and state 0; valid_lifetime 0
 * is a removal (release, delete); state 1 declined, 2 expired-reclaimed. cltt = expire − valid.
 */
export interface MemfileRow {
  type: LeaseType
  /** Address, or prefix with /len. */
  lease: string
  hwaddr?: string
  client_id?: string
  duid?: string
  iaid?: number
  hostname?: string
  subnet_id?: number
  valid: number
  /** Epoch seconds. */
  expire: number
  state: number
  /** When the row was written, epoch ms, if the reader watched the file (the CSV itself has no such column). */
  written?: number
}

function splitCsv (line: string): string[] {
  // Kea escapes commas in text fields as &#x2c; and writes no quotes.
  return line.split(',').map((f) => f.replaceAll('&#x2c', ',').replaceAll('&#x2C', ','))
}

/** Parses a v4 or v6 memfile CSV (by its header). */
export function parseMemfile (text: string, writtenAt?: readonly number[]): MemfileRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  const header = splitCsv(lines[0] ?? '')
  const col = (name: string): number => header.indexOf(name)
  const v6 = col('duid') >= 0
  if (col('address') !== 0 || col('valid_lifetime') < 0 || col('expire') < 0) throw new UsageError('not a Kea memfile lease file: expected a header starting with "address" and holding valid_lifetime and expire')
  const rows: MemfileRow[] = []
  for (let i = 1; i < lines.length; i++) {
    const f = splitCsv(lines[i] as string)
    const get = (name: string): string | undefined => { const c = col(name); const v = c < 0 ? undefined : f[c]; return v === undefined || v === '' ? undefined : v }
    const num = (name: string): number | undefined => { const v = get(name); return v === undefined ? undefined : Number(v) }
    const leaseType = num('lease_type') ?? 0
    const type: LeaseType = !v6 ? 'V4' : leaseType === 2 ? 'IA_PD' : 'IA_NA'
    if (v6 && leaseType === 1) continue // IA_TA: keatrail does not track temporary addresses
    const len = num('prefix_len')
    const address = get('address') as string
    const row: MemfileRow = {
      type,
      lease: type === 'IA_PD' ? `${address}/${len ?? 128}` : address,
      valid: num('valid_lifetime') ?? 0,
      expire: num('expire') ?? 0,
      state: num('state') ?? 0
    }
    const hw = get('hwaddr')
    if (hw !== undefined) row.hwaddr = hw.toLowerCase()
    const cid = get('client_id')
    if (cid !== undefined) row.client_id = cid.toLowerCase()
    const duid = get('duid')
    if (duid !== undefined && duid !== '00') row.duid = duid.toLowerCase()
    const iaid = num('iaid')
    if (iaid !== undefined) row.iaid = iaid
    const host = get('hostname')
    if (host !== undefined) row.hostname = host
    const subnet = num('subnet_id')
    if (subnet !== undefined) row.subnet_id = subnet
    const w = writtenAt?.[i - 1]
    if (w !== undefined) row.written = w
    rows.push(row)
  }
  return rows
}

/**
 * Lease intervals from memfile rows, per address in file order: a holding row by the holder
 * before the lease ran out extends it; by another client, or later, starts a new one; a
 * removal, decline or reclamation ends it. A removal row carries no time of its own: its end
 * is when it was written if known, else the next holding row of the address, else the expiry.
 */
export function memfileIntervals (rows: readonly MemfileRow[], scope: string): LeaseInterval[] {
  const byLease = new Map<string, MemfileRow[]>()
  for (const r of rows) {
    const list = byLease.get(r.lease) ?? []
    list.push(r)
    byLease.set(r.lease, list)
  }
  const out: LeaseInterval[] = []
  for (const [lease, list] of byLease) {
    const range = parseAddressOrPrefix(lease)
    const key = `${scope}|${list[0]?.type ?? 'V4'}|${range.text}`
    let cur: LeaseInterval | undefined
    const close = (end: number, reason: LeaseInterval['end_reason'], certain: boolean): void => {
      if (cur === undefined) return
      cur.end = cur.end === null ? end : Math.min(cur.end, end)
      cur.end_reason = reason
      cur.certainty = certain ? 'observed' : 'inferred'
      out.push(cur)
      cur = undefined
    }
    list.forEach((r, i) => {
      const cltt = (r.expire - r.valid) * 1000
      if (r.valid > 0 && r.state === 0) {
        if (cur !== undefined && sameClient(cur, r) && cur.end !== null && cltt <= cur.end) {
          cur.end = r.expire * 1000
          cur.extensions++
          return
        }
        if (cur !== undefined) {
          if (cur.end !== null && cur.end <= cltt) close(cur.end, 'expiry-by-lifetime', false)
          else close(cltt, 'superseded', true)
        }
        cur = {
          id: intervalId(key, `kea-state:${r.expire}:${r.valid}:${r.hwaddr ?? ''}:${r.client_id ?? ''}:${r.duid ?? ''}:${r.iaid ?? ''}`),
          key,
          scope,
          type: r.type,
          lease: range.text,
          lo: range.lo,
          hi: range.hi,
          start: cltt,
          end: r.expire * 1000,
          end_reason: 'expiry-by-lifetime',
          certainty: 'inferred',
          lifetime: r.valid,
          extensions: 0,
          evidence: [],
          origin: 'kea-state'
        }
        if (r.hwaddr !== undefined) cur.hwaddr = r.hwaddr
        if (r.client_id !== undefined) cur.client_id = r.client_id
        if (r.duid !== undefined) {
          cur.duid = r.duid
          const ll = duidLinkLayer(r.duid)
          if (ll !== undefined) cur.duid_ll = ll
        }
        if (r.iaid !== undefined) cur.iaid = r.iaid
        if (r.hostname !== undefined) cur.hostname = r.hostname
        if (r.subnet_id !== undefined) cur.subnet_id = r.subnet_id
        return
      }
      if (cur === undefined) return
      if (r.state === 2) { close(r.expire * 1000, 'reclaim', true); return }
      const reason = r.state === 1 ? 'decline' : 'release'
      if (r.written !== undefined) { close(r.written, reason, true); return }
      const next = list.slice(i + 1).find((x) => x.valid > 0 && x.state === 0)
      close(next === undefined ? (cur.end ?? r.expire * 1000) : (next.expire - next.valid) * 1000, reason, false)
    })
    if (cur !== undefined) out.push(cur)
  }
  return out
}

/** Leases from lease4-get-page / lease6-get-page / *-get-all answers, as memfile rows. */
export function rowsFromLeaseCommand (leases: ReadonlyArray<Record<string, unknown>>, family: 4 | 6): MemfileRow[] {
  const rows: MemfileRow[] = []
  for (const l of leases) {
    const address = l['ip-address']
    const valid = l['valid-lft']
    const cltt = l.cltt
    if (typeof address !== 'string' || typeof valid !== 'number' || typeof cltt !== 'number') continue
    const pd = family === 6 && l.type === 'IA_PD'
    if (family === 6 && l.type === 'IA_TA') continue
    const row: MemfileRow = {
      type: family === 4 ? 'V4' : pd ? 'IA_PD' : 'IA_NA',
      lease: pd ? `${address}/${typeof l['prefix-len'] === 'number' ? l['prefix-len'] : 128}` : address,
      valid,
      expire: cltt + valid,
      state: typeof l.state === 'number' ? l.state : 0
    }
    const str = (k: string): string | undefined => typeof l[k] === 'string' && l[k] !== '' ? (l[k] as string) : undefined
    const hw = str('hw-address')
    if (hw !== undefined) row.hwaddr = hw.toLowerCase()
    const cid = str('client-id')
    if (cid !== undefined) row.client_id = cid.toLowerCase()
    const duid = str('duid')
    if (duid !== undefined) row.duid = duid.toLowerCase()
    if (typeof l.iaid === 'number') row.iaid = l.iaid
    const host = str('hostname')
    if (host !== undefined) row.hostname = host
    if (typeof l['subnet-id'] === 'number') row.subnet_id = l['subnet-id']
    rows.push(row)
  }
  return rows
}
